// The tokenizer interface shared by every vocabulary kind (byte-level BPE now, WordPiece later),
// plus the token kinds and errors they have in common.

/// Ids of the tokens a model treats specially; nil where the vocabulary defines none.
public struct SpecialTokenIDs: Equatable, Sendable {
    /// Beginning of sequence (GGUF tokenizer.ggml.bos_token_id).
    public var bos: Int?
    /// End of sequence / end of turn (GGUF tokenizer.ggml.eos_token_id).
    public var eos: Int?
    /// Stand-in for text the vocabulary cannot express (GGUF tokenizer.ggml.unknown_token_id).
    public var unknown: Int?
    /// Padding (GGUF tokenizer.ggml.padding_token_id).
    public var padding: Int?

    /// Groups the four ids; any may be nil.
    public init(bos: Int? = nil, eos: Int? = nil, unknown: Int? = nil, padding: Int? = nil) {
        self.bos = bos; self.eos = eos; self.unknown = unknown; self.padding = padding
    }
}

/// What a vocabulary entry is, with GGUF's tokenizer.ggml.token_type numbering.
public enum TokenType: Int32, Sendable {
    /// Listed without a type (0); treated like `.normal`.
    case undefined = 0
    /// An ordinary piece produced by merges (1).
    case normal = 1
    /// The unknown-text token (2); matched atomically only when special tokens are parsed.
    case unknown = 2
    /// A control token such as `<|im_start|>` (3); matched atomically only when special tokens are parsed.
    case control = 3
    /// An added token (4); always matched atomically, decoded as its raw text.
    case userDefined = 4
    /// A reserved slot (5); never produced by encoding.
    case unused = 5
    /// A single-byte token (6); in a byte-level vocabulary it decodes like `.normal`.
    case byte = 6

    /// Whether the token's text is literal text (not byte-level symbols) when decoding.
    var decodesAsRawText: Bool {
        switch self {
        case .unknown, .control, .userDefined, .unused: return true
        case .undefined, .normal, .byte: return false
        }
    }

    /// Whether the token is matched as a whole in raw input before pre-tokenisation.
    var isAtomic: Bool { self == .unknown || self == .control || self == .userDefined }

    /// Whether the atomic match is switched off when special tokens are parsed as plain text.
    var isSpecial: Bool { self == .unknown || self == .control }
}

/// Text ⇄ token ids. Implementations are immutable after construction and safe to share across threads.
public protocol Tokenizer: Sendable {
    /// Number of ids in the vocabulary (valid ids are 0..<vocabularySize).
    var vocabularySize: Int { get }
    /// The model's special token ids.
    var specialTokenIDs: SpecialTokenIDs { get }
    /// Ids for `text`. `addSpecialTokens` adds what the tokenizer adds around a sequence (BOS when the model
    /// asks for it); `parseSpecialTokens` matches control tokens such as `<|im_end|>` written in the text
    /// (false: they are encoded as ordinary characters).
    func encode(_ text: String, addSpecialTokens: Bool, parseSpecialTokens: Bool) -> [Int]
    /// Text for `ids`; `skipSpecialTokens` leaves out control tokens. Throws for ids outside the vocabulary.
    func decode(_ ids: [Int], skipSpecialTokens: Bool) throws -> String
    /// The id of a vocabulary entry given its stored text, if present.
    func tokenID(for token: String) -> Int?
    /// The stored text of a vocabulary entry, if `id` is in range.
    func token(for id: Int) -> String?
}

extension Tokenizer {
    /// Ids for `text` with the tokenizer's sequence specials added and control tokens in the text parsed.
    public func encode(_ text: String) -> [Int] { encode(text, addSpecialTokens: true, parseSpecialTokens: true) }
    /// Text for `ids`, control tokens included.
    public func decode(_ ids: [Int]) throws -> String { try decode(ids, skipSpecialTokens: false) }
}

/// Errors from building a tokenizer from data or files, and from decoding; each names what was wrong and where.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case emptyVocabulary(source: String)
    case tokenTypeCountMismatch(source: String, tokens: Int, types: Int)
    case invalidTokenType(source: String, id: Int, type: Int32)
    case malformedMerge(source: String, index: Int, merge: String)
    case mergeTokenMissing(source: String, index: Int, merge: String, token: String)
    case missingByteSymbol(source: String, byte: UInt8, symbol: String)
    case specialTokenOutOfRange(source: String, field: String, id: Int, vocabularySize: Int)
    case unknownPreTokenizer(source: String, name: String)
    case unknownTokenID(id: Int, vocabularySize: Int)
    case fileUnreadable(path: String, reason: String)
    case invalidJSON(path: String, reason: String)
    case missingField(path: String, field: String)
    case invalidField(path: String, field: String, reason: String)
    case unsupported(path: String, field: String, value: String)

    public var description: String {
        switch self {
        case let .emptyVocabulary(source): return "\(source): the vocabulary has no tokens"
        case let .tokenTypeCountMismatch(source, tokens, types):
            return "\(source): token_type has \(types) entries but there are \(tokens) tokens"
        case let .invalidTokenType(source, id, type): return "\(source): token \(id) has invalid token_type \(type) (valid: 0...6)"
        case let .malformedMerge(source, index, merge):
            return "\(source): merge \(index) \"\(merge)\" is not two tokens separated by one space"
        case let .mergeTokenMissing(source, index, merge, token):
            return "\(source): merge \(index) \"\(merge)\" refers to \"\(token)\", which is not in the vocabulary"
        case let .missingByteSymbol(source, byte, symbol):
            return "\(source): the vocabulary lacks the byte-level token \"\(symbol)\" for byte 0x\(String(byte, radix: 16)) and has no unknown token"
        case let .specialTokenOutOfRange(source, field, id, size):
            return "\(source): \(field) = \(id) is outside the vocabulary (size \(size))"
        case let .unknownPreTokenizer(source, name):
            return "\(source): unknown pre-tokenizer \"\(name)\" (known: \(PreTokenizer.knownNames.joined(separator: ", ")))"
        case let .unknownTokenID(id, size): return "token id \(id) is outside the vocabulary (size \(size))"
        case let .fileUnreadable(path, reason): return "\(path): cannot read: \(reason)"
        case let .invalidJSON(path, reason): return "\(path): invalid JSON: \(reason)"
        case let .missingField(path, field): return "\(path): missing field \(field)"
        case let .invalidField(path, field, reason): return "\(path): field \(field): \(reason)"
        case let .unsupported(path, field, value): return "\(path): unsupported \(field) \(value)"
        }
    }
}
