// Reading a WordPiece tokenizer from Hugging Face's tokenizer.json: model (vocab, unk_token,
// continuing_subword_prefix, max_input_chars_per_word), added_tokens, normalizer (BertNormalizer or none),
// pre_tokenizer (BertPreTokenizer), post_processor (TemplateProcessing or BertProcessing), truncation and
// padding. Any other configuration is an `unsupported` error naming the field, never a silently different
// tokenizer. `HuggingFaceTokenizerFile.load` picks WordPiece or byte-level BPE by model.type.
import Foundation

extension WordPieceTokenizer {
    /// Loads tokenizer.json (model.type "WordPiece").
    public convenience init(huggingFaceTokenizer url: URL) throws {
        let path = url.path
        let root = try readJSONObject(url)
        guard let model = root["model"] as? [String: Any] else { throw TokenizerError.missingField(path: path, field: "model") }
        let type = model["type"] as? String ?? "?"
        guard type == "WordPiece" else { throw TokenizerError.unsupported(path: path, field: "model.type", value: type) }
        guard let vocab = model["vocab"] as? [String: Any] else { throw TokenizerError.missingField(path: path, field: "model.vocab") }
        var byID = [String?](repeating: nil, count: vocab.count)
        for (text, value) in vocab {
            guard let id = value as? Int, (0..<vocab.count).contains(id) else {
                throw TokenizerError.invalidField(path: path, field: "model.vocab[\"\(text)\"]", reason: "id \(value) is not in 0..<\(vocab.count)")
            }
            if let other = byID[id] {
                throw TokenizerError.invalidField(path: path, field: "model.vocab", reason: "id \(id) is given to both \"\(other)\" and \"\(text)\"")
            }
            byID[id] = text
        }
        let vocabulary = byID.map { $0 ?? "" }
        let added = try parseAddedTokens(root["added_tokens"], path: path)
        for token in added where token.id >= vocabulary.count || vocabulary[token.id] != token.content {
            throw TokenizerError.unsupported(path: path, field: "added_tokens", value: "\"\(token.content)\" (id \(token.id)) outside the WordPiece vocabulary")
        }
        let normalizer = try Self.parseNormalizer(root["normalizer"], path: path)
        switch root["pre_tokenizer"] {
        case let p as [String: Any] where p["type"] as? String == "BertPreTokenizer": break
        case let p as [String: Any]:
            throw TokenizerError.unsupported(path: path, field: "pre_tokenizer.type", value: p["type"] as? String ?? "?")
        default: throw TokenizerError.missingField(path: path, field: "pre_tokenizer")
        }
        let (single, pair) = try Self.parseTemplates(root["post_processor"], vocab: vocab, path: path)
        var maxLength: Int? = nil
        if let t = root["truncation"] as? [String: Any] {
            if let strategy = t["strategy"] as? String, strategy != "LongestFirst" {
                throw TokenizerError.unsupported(path: path, field: "truncation.strategy", value: strategy)
            }
            if let direction = t["direction"] as? String, direction != "Right" {
                throw TokenizerError.unsupported(path: path, field: "truncation.direction", value: direction)
            }
            maxLength = t["max_length"] as? Int
        }
        var padID: Int? = nil, padTypeID = 0
        if let p = root["padding"] as? [String: Any] {
            if let direction = p["direction"] as? String, direction != "Right" {
                throw TokenizerError.unsupported(path: path, field: "padding.direction", value: direction)
            }
            padID = p["pad_id"] as? Int; padTypeID = p["pad_type_id"] as? Int ?? 0
        }
        try self.init(vocabulary: vocabulary, unknownToken: model["unk_token"] as? String ?? "[UNK]",
                      continuingPrefix: model["continuing_subword_prefix"] as? String ?? "##",
                      maxInputCharsPerWord: model["max_input_chars_per_word"] as? Int ?? 100, normalizer: normalizer,
                      addedTokens: added, singleTemplate: single, pairTemplate: pair, defaultMaxLength: maxLength,
                      padID: padID, padTypeID: padTypeID, source: path)
    }

    static func parseNormalizer(_ value: Any?, path: String) throws -> BertNormalizer? {
        switch value {
        case nil, is NSNull: return nil
        case let n as [String: Any]:
            let type = n["type"] as? String ?? "?"
            guard type == "BertNormalizer" else { throw TokenizerError.unsupported(path: path, field: "normalizer.type", value: type) }
            return BertNormalizer(cleanText: n["clean_text"] as? Bool ?? true, handleChineseChars: n["handle_chinese_chars"] as? Bool ?? true,
                                  stripAccents: n["strip_accents"] as? Bool, lowercase: n["lowercase"] as? Bool ?? true)
        default: throw TokenizerError.invalidField(path: path, field: "normalizer", reason: "expected an object or null")
        }
    }

    /// (single, pair) templates; nil fields fall back to [CLS] A [SEP] (B [SEP]).
    static func parseTemplates(_ value: Any?, vocab: [String: Any], path: String) throws -> ([TemplatePiece]?, [TemplatePiece]?) {
        guard let p = value as? [String: Any] else { return (nil, nil) }
        let type = p["type"] as? String ?? "?"
        switch type {
        case "BertProcessing":
            guard let cls = p["cls"] as? [Any], cls.count == 2, let clsID = cls[1] as? Int,
                  let sep = p["sep"] as? [Any], sep.count == 2, let sepID = sep[1] as? Int else {
                throw TokenizerError.invalidField(path: path, field: "post_processor", reason: "cls and sep must be [token, id]")
            }
            let single: [TemplatePiece] = [.special(ids: [clsID], typeID: 0), .sequence(index: 0, typeID: 0), .special(ids: [sepID], typeID: 0)]
            return (single, single + [.sequence(index: 1, typeID: 1), .special(ids: [sepID], typeID: 1)])
        case "TemplateProcessing":
            var specials: [String: [Int]] = [:]
            for (name, entry) in p["special_tokens"] as? [String: Any] ?? [:] {
                guard let ids = (entry as? [String: Any])?["ids"] as? [Int] else {
                    throw TokenizerError.invalidField(path: path, field: "post_processor.special_tokens.\(name)", reason: "no ids")
                }
                specials[name] = ids
            }
            func template(_ field: String) throws -> [TemplatePiece] {
                guard let list = p[field] as? [[String: Any]] else {
                    throw TokenizerError.missingField(path: path, field: "post_processor.\(field)")
                }
                return try list.enumerated().map { i, item in
                    if let s = item["SpecialToken"] as? [String: Any], let name = s["id"] as? String {
                        guard let ids = specials[name] ?? (vocab[name] as? Int).map({ [$0] }) else {
                            throw TokenizerError.invalidField(path: path, field: "post_processor.\(field)[\(i)]", reason: "unknown special token \(name)")
                        }
                        return .special(ids: ids, typeID: s["type_id"] as? Int ?? 0)
                    }
                    if let s = item["Sequence"] as? [String: Any], let name = s["id"] as? String, name == "A" || name == "B" {
                        return .sequence(index: name == "A" ? 0 : 1, typeID: s["type_id"] as? Int ?? 0)
                    }
                    throw TokenizerError.invalidField(path: path, field: "post_processor.\(field)[\(i)]", reason: "expected SpecialToken or Sequence A/B")
                }
            }
            return (try template("single"), try template("pair"))
        default: throw TokenizerError.unsupported(path: path, field: "post_processor.type", value: type)
        }
    }
}

/// Either tokenizer kind a Hugging Face directory may hold.
public enum HuggingFaceTokenizerFile {
    /// tokenizer.json's model.type ("BPE", "WordPiece", ...), or a typed error when the file cannot say.
    public static func modelType(_ url: URL) throws -> String {
        let root = try readJSONObject(url)
        guard let model = root["model"] as? [String: Any] else { throw TokenizerError.missingField(path: url.path, field: "model") }
        guard let type = model["type"] as? String else {
            // Old files leave BPE implicit: a merges list says so.
            if model["merges"] != nil { return "BPE" }
            throw TokenizerError.missingField(path: url.path, field: "model.type")
        }
        return type
    }

    /// A WordPiece or byte-level BPE tokenizer by model.type; any other type (Unigram, WordLevel, ...) is
    /// `TokenizerError.unsupported(field: "model.type")`.
    public static func load(_ url: URL, config: TokenizerConfig? = nil) throws -> any Tokenizer {
        switch try modelType(url) {
        case "WordPiece": return try WordPieceTokenizer(huggingFaceTokenizer: url)
        case "BPE": return try BPETokenizer(huggingFaceTokenizer: url, config: config)
        case let other: throw TokenizerError.unsupported(path: url.path, field: "model.type", value: other)
        }
    }
}
