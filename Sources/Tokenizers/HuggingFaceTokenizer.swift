// Loading a byte-level BPE tokenizer from Hugging Face files: tokenizer.json (model, added tokens,
// normalizer, pre-tokenizer, post-processor) and tokenizer_config.json (special token names, BOS flag,
// chat template). Only the configurations byte-level BPE models use are accepted; anything else is an
// `unsupported` error naming the field, never a silently different tokenizer.
import Foundation

/// The fields of tokenizer_config.json this package uses.
public struct TokenizerConfig: Equatable, Sendable {
    /// Text of the BOS token (bos_token).
    public var bosToken: String?
    /// Text of the EOS token (eos_token).
    public var eosToken: String?
    /// Text of the unknown token (unk_token).
    public var unknownToken: String?
    /// Text of the padding token (pad_token).
    public var paddingToken: String?
    /// add_bos_token, when present.
    public var addBOSToken: Bool?
    /// add_eos_token, when present.
    public var addEOSToken: Bool?
    /// The Jinja chat template ("default" one when several are named).
    public var chatTemplate: String?

    /// A config with the given fields.
    public init(bosToken: String? = nil, eosToken: String? = nil, unknownToken: String? = nil,
                paddingToken: String? = nil, addBOSToken: Bool? = nil, addEOSToken: Bool? = nil,
                chatTemplate: String? = nil) {
        self.bosToken = bosToken; self.eosToken = eosToken; self.unknownToken = unknownToken
        self.paddingToken = paddingToken; self.addBOSToken = addBOSToken; self.addEOSToken = addEOSToken
        self.chatTemplate = chatTemplate
    }

    /// Reads tokenizer_config.json.
    public init(contentsOf url: URL) throws {
        let path = url.path
        let root = try readJSONObject(url)
        func tokenText(_ field: String) throws -> String? {
            switch root[field] {
            case nil, is NSNull: return nil
            case let s as String: return s
            case let d as [String: Any]:
                guard let s = d["content"] as? String else {
                    throw TokenizerError.invalidField(path: path, field: field, reason: "object without string \"content\"")
                }
                return s
            default: throw TokenizerError.invalidField(path: path, field: field, reason: "expected a string or {\"content\": ...}")
            }
        }
        func flag(_ field: String) throws -> Bool? {
            switch root[field] {
            case nil, is NSNull: return nil
            case let b as Bool: return b
            default: throw TokenizerError.invalidField(path: path, field: field, reason: "expected true or false")
            }
        }
        bosToken = try tokenText("bos_token")
        eosToken = try tokenText("eos_token")
        unknownToken = try tokenText("unk_token")
        paddingToken = try tokenText("pad_token")
        addBOSToken = try flag("add_bos_token")
        addEOSToken = try flag("add_eos_token")
        switch root["chat_template"] {
        case nil, is NSNull: chatTemplate = nil
        case let s as String: chatTemplate = s
        case let list as [[String: Any]]:
            let named = list.first { ($0["name"] as? String) == "default" } ?? list.first
            chatTemplate = named?["template"] as? String
        default:
            throw TokenizerError.invalidField(path: path, field: "chat_template", reason: "expected a string or a list of {name, template}")
        }
    }
}

extension BPETokenizer {
    /// Loads tokenizer.json, taking special tokens and the BOS/EOS flags from `config` where it has them.
    public convenience init(huggingFaceTokenizer url: URL, config: TokenizerConfig? = nil) throws {
        let path = url.path
        let root = try readJSONObject(url)
        guard let model = root["model"] as? [String: Any] else { throw TokenizerError.missingField(path: path, field: "model") }
        if let type = model["type"] as? String, type != "BPE" {
            throw TokenizerError.unsupported(path: path, field: "model.type", value: type)
        }
        if model["byte_fallback"] as? Bool == true {
            throw TokenizerError.unsupported(path: path, field: "model.byte_fallback", value: "true")
        }
        for field in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let s = model[field] as? String, !s.isEmpty {
                throw TokenizerError.unsupported(path: path, field: "model.\(field)", value: "\"\(s)\"")
            }
        }
        if let dropout = model["dropout"] as? Double, dropout > 0 {
            throw TokenizerError.unsupported(path: path, field: "model.dropout", value: "\(dropout)")
        }

        // Vocabulary: model.vocab plus added_tokens, by id.
        guard let vocab = model["vocab"] as? [String: Any] else { throw TokenizerError.missingField(path: path, field: "model.vocab") }
        var textByID: [Int: String] = [:]
        textByID.reserveCapacity(vocab.count)
        for (text, value) in vocab {
            guard let id = value as? Int, (0..<maxVocabularySize).contains(id) else {
                throw TokenizerError.invalidField(path: path, field: "model.vocab[\"\(text)\"]", reason: "id \(value) is not in 0..<\(maxVocabularySize)")
            }
            if let other = textByID[id] {
                throw TokenizerError.invalidField(path: path, field: "model.vocab", reason: "id \(id) is given to both \"\(other)\" and \"\(text)\"")
            }
            textByID[id] = text
        }
        let added = try parseAddedTokens(root["added_tokens"], path: path)
        for token in added where textByID[token.id] == nil { textByID[token.id] = token.content }
        guard let maxID = textByID.keys.max() else { throw TokenizerError.emptyVocabulary(source: path) }
        // Ids without an entry stay as unused, empty slots (decoding them yields nothing, as in Hugging Face).
        var tokens = [String](repeating: "", count: maxID + 1)
        var types = [Int32](repeating: TokenType.unused.rawValue, count: maxID + 1)
        for (id, text) in textByID { tokens[id] = text; types[id] = TokenType.normal.rawValue }

        let merges = try parseMerges(model["merges"], path: path)
        let normalizeToNFC = try parseNormalizer(root["normalizer"], path: path)
        let preTokenizer = try parsePreTokenizer(root["pre_tokenizer"], path: path)
        let (templateBOS, templateEOS) = templateSpecialTokens(root["post_processor"])

        func id(of text: String?, field: String) throws -> Int? {
            guard let text = text else { return nil }
            if let token = added.first(where: { $0.content == text }) { return token.id }
            guard let id = vocab[text] as? Int else {
                throw TokenizerError.invalidField(path: path, field: field, reason: "\"\(text)\" is not in the vocabulary")
            }
            return id
        }
        let bosText = config?.bosToken ?? templateBOS
        let ids = SpecialTokenIDs(
            bos: try id(of: bosText, field: "bos_token"),
            eos: try id(of: config?.eosToken ?? templateEOS, field: "eos_token"),
            unknown: try id(of: config?.unknownToken ?? (model["unk_token"] as? String), field: "unk_token"),
            padding: try id(of: config?.paddingToken, field: "pad_token"))
        let addBOS = config?.addBOSToken ?? (templateBOS != nil && templateBOS == bosText)
        let addEOS = config?.addEOSToken ?? (templateEOS != nil)

        try self.init(vocabulary: tokens, mergePairs: merges, tokenTypes: types, addedTokens: added,
                      preTokenizer: preTokenizer, specialTokenIDs: ids, addBOS: addBOS, addEOS: addEOS,
                      ignoreMerges: model["ignore_merges"] as? Bool ?? false, normalizeToNFC: normalizeToNFC,
                      source: path)
    }
}

/// Largest id accepted from a file, so that a corrupt id cannot make us allocate gigabytes.
private let maxVocabularySize = 4_000_000

func readJSONObject(_ url: URL) throws -> [String: Any] {
    let data: Data
    do { data = try Data(contentsOf: url) } catch {
        throw TokenizerError.fileUnreadable(path: url.path, reason: "\(error.localizedDescription)")
    }
    let object: Any
    do { object = try JSONSerialization.jsonObject(with: data) } catch {
        throw TokenizerError.invalidJSON(path: url.path, reason: "\(error.localizedDescription)")
    }
    guard let dictionary = object as? [String: Any] else {
        throw TokenizerError.invalidJSON(path: url.path, reason: "the top level is not an object")
    }
    return dictionary
}

func parseAddedTokens(_ value: Any?, path: String) throws -> [AddedToken] {
    guard let value = value, !(value is NSNull) else { return [] }
    guard let list = value as? [[String: Any]] else {
        throw TokenizerError.invalidField(path: path, field: "added_tokens", reason: "expected a list of objects")
    }
    return try list.enumerated().map { index, entry in
        let field = "added_tokens[\(index)]"
        guard let id = entry["id"] as? Int, (0..<maxVocabularySize).contains(id) else {
            throw TokenizerError.invalidField(path: path, field: "\(field).id", reason: "missing or outside 0..<\(maxVocabularySize)")
        }
        guard let content = entry["content"] as? String, !content.isEmpty else {
            throw TokenizerError.invalidField(path: path, field: "\(field).content", reason: "missing or empty")
        }
        if entry["single_word"] as? Bool == true {
            throw TokenizerError.unsupported(path: path, field: "\(field).single_word", value: "true")
        }
        return AddedToken(id: id, content: content, isSpecial: entry["special"] as? Bool ?? false,
                          stripsLeft: entry["lstrip"] as? Bool ?? false, stripsRight: entry["rstrip"] as? Bool ?? false)
    }
}

/// Merges as "a b" strings or ["a", "b"] pairs.
private func parseMerges(_ value: Any?, path: String) throws -> [(String, String)] {
    guard let list = value as? [Any] else { throw TokenizerError.missingField(path: path, field: "model.merges") }
    var pairs: [(String, String)] = []
    pairs.reserveCapacity(list.count)
    for (index, item) in list.enumerated() {
        if let s = item as? String {
            let parts = s.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw TokenizerError.malformedMerge(source: path, index: index, merge: s)
            }
            pairs.append((String(parts[0]), String(parts[1])))
        } else if let pair = item as? [String], pair.count == 2, !pair[0].isEmpty, !pair[1].isEmpty {
            pairs.append((pair[0], pair[1]))
        } else {
            throw TokenizerError.malformedMerge(source: path, index: index, merge: "\(item)")
        }
    }
    return pairs
}

/// true for NFC; nil, an empty Sequence or no normalizer → false.
private func parseNormalizer(_ value: Any?, path: String) throws -> Bool {
    guard let value = value, !(value is NSNull) else { return false }
    guard let object = value as? [String: Any], let type = object["type"] as? String else {
        throw TokenizerError.invalidField(path: path, field: "normalizer", reason: "expected an object with a type")
    }
    switch type {
    case "NFC": return true
    case "Sequence":
        let inner = object["normalizers"] as? [Any] ?? []
        if inner.isEmpty { return false }
        if inner.count == 1 { return try parseNormalizer(inner[0], path: path) }
        throw TokenizerError.unsupported(path: path, field: "normalizer", value: "Sequence of \(inner.count)")
    default:
        throw TokenizerError.unsupported(path: path, field: "normalizer.type", value: type)
    }
}

/// Regex patterns of Split pre-tokenizers that correspond to a known rule (with \r \n as escapes).
private let knownSplitPatterns: [String: PreTokenizer] = [
    #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#: .gpt2,
    #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#: .llama3,
    #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#: .qwen2,
]

/// Recognises the pre-tokenizer shapes of byte-level BPE models:
/// ByteLevel(use_regex) → gpt2; [Digits(individual), ByteLevel(use_regex)] → smollm;
/// [Split(known regex, Isolated), ByteLevel(no regex)] or Split alone → that rule.
private func parsePreTokenizer(_ value: Any?, path: String) throws -> PreTokenizer {
    guard let object = value as? [String: Any], let type = object["type"] as? String else {
        throw TokenizerError.missingField(path: path, field: "pre_tokenizer")
    }
    let steps: [[String: Any]]
    if type == "Sequence" {
        guard let list = object["pretokenizers"] as? [[String: Any]] else {
            throw TokenizerError.invalidField(path: path, field: "pre_tokenizer.pretokenizers", reason: "expected a list of objects")
        }
        steps = list
    } else {
        steps = [object]
    }
    var split: PreTokenizer?
    var isolatesDigits = false
    var byteLevelRegex: Bool?
    for (index, step) in steps.enumerated() {
        let field = type == "Sequence" ? "pre_tokenizer.pretokenizers[\(index)]" : "pre_tokenizer"
        switch step["type"] as? String {
        case "ByteLevel":
            if step["add_prefix_space"] as? Bool == true {
                throw TokenizerError.unsupported(path: path, field: "\(field).add_prefix_space", value: "true")
            }
            byteLevelRegex = step["use_regex"] as? Bool ?? true
        case "Digits":
            guard step["individual_digits"] as? Bool == true, split == nil, index == 0 else {
                throw TokenizerError.unsupported(path: path, field: field, value: "Digits other than a leading individual_digits")
            }
            isolatesDigits = true
        case "Split":
            let pattern = ((step["pattern"] as? [String: Any])?["Regex"] as? String ?? "")
                .replacingOccurrences(of: "\r", with: #"\r"#).replacingOccurrences(of: "\n", with: #"\n"#)
            guard let rule = knownSplitPatterns[pattern], step["behavior"] as? String == "Isolated",
                  step["invert"] as? Bool != true, split == nil else {
                throw TokenizerError.unsupported(path: path, field: "\(field)", value: "Split with pattern \(pattern)")
            }
            split = rule
        case let other:
            throw TokenizerError.unsupported(path: path, field: "\(field).type", value: other ?? "nil")
        }
    }
    switch (split, isolatesDigits, byteLevelRegex) {
    case (nil, false, true?): return .gpt2
    case (nil, true, true?): return .smollm
    case (let rule?, false, false?), (let rule?, false, nil): return rule
    default:
        throw TokenizerError.unsupported(path: path, field: "pre_tokenizer", value: "combination of \(steps.compactMap { $0["type"] as? String })")
    }
}

/// The special tokens a TemplateProcessing post-processor puts before and after a single sequence.
private func templateSpecialTokens(_ value: Any?) -> (before: String?, after: String?) {
    guard let object = value as? [String: Any] else { return (nil, nil) }
    if object["type"] as? String == "Sequence", let list = object["processors"] as? [Any] {
        for inner in list {
            let found = templateSpecialTokens(inner)
            if found.before != nil || found.after != nil { return found }
        }
        return (nil, nil)
    }
    guard object["type"] as? String == "TemplateProcessing", let single = object["single"] as? [[String: Any]],
          let sequenceIndex = single.firstIndex(where: { $0["Sequence"] != nil }) else { return (nil, nil) }
    func special(_ k: Int) -> String? { (single[k]["SpecialToken"] as? [String: Any])?["id"] as? String }
    let before = sequenceIndex > 0 ? special(sequenceIndex - 1) : nil
    let after = sequenceIndex + 1 < single.count ? special(sequenceIndex + 1) : nil
    return (before, after)
}
