// WordPiece (BERT) tokenisation with Hugging Face `tokenizers` semantics:
//   added/special tokens ([CLS], [MASK], ...) matched in the raw text → BertNormalizer → BertPreTokenizer →
//   per word, greedy longest-match-first pieces, continuations prefixed "##"; a word with no full cover, or longer
//   than max_input_chars_per_word scalars, is one [UNK] → the post-processor template ([CLS] A [SEP] / [CLS] A
//   [SEP] B [SEP] with token type ids 0/1) → truncation (longest first, special tokens counted) → padding.
// The files: this one (model, encode, decode, batching), BertNormalizer.swift (normaliser and pre-tokenizer),
// WordPieceTokenizer+HuggingFace.swift (reading tokenizer.json).
import Foundation

/// One piece of a post-processor template: a special token or one of the input sequences, with its type id.
public enum TemplatePiece: Equatable, Sendable {
    case special(ids: [Int], typeID: Int)
    /// 0: the first sequence (A), 1: the pair (B).
    case sequence(index: Int, typeID: Int)
}

/// Ids, token type ids and the attention mask of one encoded input (after truncation and padding).
public struct WordPieceEncoding: Equatable, Sendable {
    public var ids: [Int]
    public var typeIDs: [Int]
    /// 1 for real tokens, 0 for padding.
    public var attentionMask: [Int]
    /// Whether truncation removed tokens.
    public var truncated: Bool
}

/// Rows of equal length for a model: [rows][length] ids, type ids and mask.
public struct WordPieceBatch: Equatable, Sendable {
    public var ids: [[Int32]]
    public var typeIDs: [[Int32]]
    public var attentionMask: [[Int32]]
    public var length: Int { ids.first?.count ?? 0 }
}

/// How rows are padded.
public enum PaddingStrategy: Equatable, Sendable {
    /// Every row as long as the longest.
    case longest
    /// Every row exactly this long (after truncation to it).
    case fixed(Int)
}

/// A WordPiece tokenizer; immutable and safe to share.
public final class WordPieceTokenizer: Tokenizer {
    public let tokens: [String]
    let idForToken: [String: Int]
    public let unknownID: Int
    public let continuingPrefix: String
    public let maxInputCharsPerWord: Int
    /// nil: no normalizer in tokenizer.json.
    public let normalizer: BertNormalizer?
    public let addedTokens: [AddedToken]
    let atomicMatcher: AtomicTokenMatcher
    /// Post-processor templates for one sequence and for a pair.
    public let singleTemplate: [TemplatePiece], pairTemplate: [TemplatePiece]
    /// tokenizer.json's truncation max_length, if any (a default for callers).
    public let defaultMaxLength: Int?
    public let padID: Int, padTypeID: Int
    public let specialTokenIDs: SpecialTokenIDs
    let specialIDs: Set<Int>

    /// A tokenizer from a vocabulary by id. `unknownToken` must be in it.
    public init(vocabulary: [String], unknownToken: String = "[UNK]", continuingPrefix: String = "##",
                maxInputCharsPerWord: Int = 100, normalizer: BertNormalizer? = BertNormalizer(),
                addedTokens: [AddedToken] = [], singleTemplate: [TemplatePiece]? = nil, pairTemplate: [TemplatePiece]? = nil,
                defaultMaxLength: Int? = nil, padID: Int? = nil, padTypeID: Int = 0, source: String = "WordPiece") throws {
        guard !vocabulary.isEmpty else { throw TokenizerError.emptyVocabulary(source: source) }
        var index: [String: Int] = [:]
        index.reserveCapacity(vocabulary.count)
        for (id, text) in vocabulary.enumerated() where index[text] == nil { index[text] = id }
        for token in addedTokens where index[token.content] == nil { index[token.content] = token.id }
        guard let unk = index[unknownToken] else {
            throw TokenizerError.invalidField(path: source, field: "model.unk_token", reason: "\"\(unknownToken)\" is not in the vocabulary")
        }
        for token in addedTokens where token.id >= vocabulary.count {
            throw TokenizerError.specialTokenOutOfRange(source: source, field: "added_tokens \"\(token.content)\"", id: token.id, vocabularySize: vocabulary.count)
        }
        func id(_ text: String) -> Int? { index[text] }
        let cls = id("[CLS]"), sep = id("[SEP]")
        let single = singleTemplate ?? [cls.map { .special(ids: [$0], typeID: 0) }, .sequence(index: 0, typeID: 0),
                                        sep.map { .special(ids: [$0], typeID: 0) }].compactMap { $0 }
        let pair = pairTemplate ?? single + [.sequence(index: 1, typeID: 1)] + (sep.map { [.special(ids: [$0], typeID: 1)] } ?? [])
        for piece in single + pair {
            if case .special(let ids, _) = piece, let bad = ids.first(where: { !(0..<vocabulary.count).contains($0) }) {
                throw TokenizerError.specialTokenOutOfRange(source: source, field: "post_processor", id: bad, vocabularySize: vocabulary.count)
            }
        }
        tokens = vocabulary; idForToken = index; unknownID = unk
        self.continuingPrefix = continuingPrefix; self.maxInputCharsPerWord = maxInputCharsPerWord
        self.normalizer = normalizer; self.addedTokens = addedTokens
        atomicMatcher = AtomicTokenMatcher(addedTokens)
        self.singleTemplate = single; self.pairTemplate = pair; self.defaultMaxLength = defaultMaxLength
        let pad = padID ?? id("[PAD]") ?? 0
        self.padID = pad; self.padTypeID = padTypeID
        specialTokenIDs = SpecialTokenIDs(bos: cls, eos: sep, unknown: unk, padding: pad)
        specialIDs = Set(addedTokens.filter(\.isSpecial).map(\.id))
    }

    public var vocabularySize: Int { tokens.count }
    public func tokenID(for token: String) -> Int? { idForToken[token] }
    public func token(for id: Int) -> String? { (0..<tokens.count).contains(id) ? tokens[id] : nil }

    // MARK: Encoding

    /// Ids of `text` without special tokens around it (added tokens in the text matched when `parseSpecialTokens`).
    public func pieces(_ text: String, parseSpecialTokens: Bool = true) -> [Int] {
        let raw = ScalarText(text.unicodeScalars)
        var ids: [Int] = []
        for segment in atomicMatcher.segments(of: raw, parseSpecial: parseSpecialTokens) {
            switch segment {
            case .token(let id): ids.append(id)
            case .text(let range):
                let scalars = Array(raw.scalars[range])
                let normalized = normalizer?.normalize(scalars) ?? scalars
                for word in BertPreTokenizer.split(normalized) { wordPieces(normalized[word], into: &ids) }
            }
        }
        return ids
    }

    /// Greedy longest-match-first pieces of one word; the whole word is [UNK] when any part has no match.
    func wordPieces(_ word: ArraySlice<Unicode.Scalar>, into ids: inout [Int]) {
        guard word.count <= maxInputCharsPerWord else { ids.append(unknownID); return }
        let scalars = Array(word)
        var found: [Int] = []
        var start = 0
        while start < scalars.count {
            var end = scalars.count
            var match: Int? = nil
            while end > start {
                var piece = start > 0 ? continuingPrefix : ""
                piece.unicodeScalars.append(contentsOf: scalars[start..<end])
                if let id = idForToken[piece] { match = id; break }
                end -= 1
            }
            guard let id = match else { ids.append(unknownID); return }
            found.append(id)
            start = end
        }
        ids += found
    }

    /// Tokenizer protocol: [CLS] pieces [SEP] when `addSpecialTokens`; no truncation.
    public func encode(_ text: String, addSpecialTokens: Bool, parseSpecialTokens: Bool) -> [Int] {
        let ids = pieces(text, parseSpecialTokens: parseSpecialTokens)
        return addSpecialTokens ? apply(singleTemplate, [ids]).ids : ids
    }

    /// The model input for `text` (and `pair`): template applied, truncated to `maxLength` tokens in all (special
    /// tokens included; longest first for pairs, as Hugging Face), not padded.
    public func encoding(_ text: String, pair: String? = nil, maxLength: Int? = nil, parseSpecialTokens: Bool = true) -> WordPieceEncoding {
        var first = pieces(text, parseSpecialTokens: parseSpecialTokens)
        var second = pair.map { pieces($0, parseSpecialTokens: parseSpecialTokens) }
        let template = second == nil ? singleTemplate : pairTemplate
        var truncated = false
        if let maxLength {
            let added = template.reduce(0) { if case .special(let ids, _) = $1 { return $0 + ids.count }; return $0 }
            let room = max(maxLength - added, 0)
            if var b = second {
                var n1 = first.count, n2 = b.count
                if n1 + n2 > room {
                    truncated = true
                    // The shorter keeps its length when the longer can take the rest; else both get half.
                    let swapped = n1 > n2
                    if swapped { swap(&n1, &n2) }
                    n2 = n1 > room ? n1 : max(n1, room - n1)
                    if n1 + n2 > room { n1 = room / 2; n2 = n1 + room % 2 }
                    if swapped { swap(&n1, &n2) }
                    first = Array(first.prefix(n1)); b = Array(b.prefix(n2)); second = b
                }
            } else if first.count > room {
                truncated = true
                first = Array(first.prefix(room))
            }
        }
        var result = apply(template, second.map { [first, $0] } ?? [first])
        result.truncated = truncated
        return result
    }

    func apply(_ template: [TemplatePiece], _ sequences: [[Int]]) -> WordPieceEncoding {
        var ids: [Int] = [], types: [Int] = []
        for piece in template {
            switch piece {
            case let .special(pieceIDs, typeID): ids += pieceIDs; types += Array(repeating: typeID, count: pieceIDs.count)
            case let .sequence(index, typeID):
                guard index < sequences.count else { continue }
                ids += sequences[index]; types += Array(repeating: typeID, count: sequences[index].count)
            }
        }
        return WordPieceEncoding(ids: ids, typeIDs: types, attentionMask: Array(repeating: 1, count: ids.count), truncated: false)
    }

    /// Encodings padded on the right with [PAD] (type `padTypeID`, mask 0) into one batch.
    public func batch(_ encodings: [WordPieceEncoding], padding: PaddingStrategy = .longest) -> WordPieceBatch {
        let width: Int
        switch padding {
        case .longest: width = encodings.map(\.ids.count).max() ?? 0
        case .fixed(let n): width = n
        }
        var out = WordPieceBatch(ids: [], typeIDs: [], attentionMask: [])
        for e in encodings {
            let n = min(e.ids.count, width), fill = width - n
            out.ids.append(e.ids.prefix(n).map(Int32.init) + Array(repeating: Int32(padID), count: fill))
            out.typeIDs.append(e.typeIDs.prefix(n).map(Int32.init) + Array(repeating: Int32(padTypeID), count: fill))
            out.attentionMask.append(Array(repeating: 1, count: n) + Array(repeating: 0, count: fill))
        }
        return out
    }

    /// Encodes and pads texts in one call (`maxLength` defaults to tokenizer.json's truncation length).
    public func batch(_ texts: [String], pairs: [String]? = nil, maxLength: Int? = nil, padding: PaddingStrategy = .longest) -> WordPieceBatch {
        let limit = maxLength ?? defaultMaxLength
        let encodings = texts.indices.map { encoding(texts[$0], pair: pairs?[$0], maxLength: limit) }
        return batch(encodings, padding: padding)
    }

    // MARK: Decoding

    /// Pieces joined by spaces, "##" continuations glued to the word before, then Hugging Face's cleanup of
    /// spaces before punctuation and contractions.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool) throws -> String {
        var text = ""
        for id in ids {
            guard (0..<tokens.count).contains(id) else { throw TokenizerError.unknownTokenID(id: id, vocabularySize: tokens.count) }
            if skipSpecialTokens && specialIDs.contains(id) { continue }
            let piece = tokens[id]
            if piece.hasPrefix(continuingPrefix) && !text.isEmpty { text += piece.dropFirst(continuingPrefix.count) }
            else { text += (text.isEmpty ? "" : " ") + piece }
        }
        for (from, to) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
                           (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
            text = text.replacingOccurrences(of: from, with: to)
        }
        return text
    }
}

