// Writing a byte-level BPE tokenizer as Hugging Face files (tokenizer.json, tokenizer_config.json,
// special_tokens_map.json), so a model whose tokenizer came from a GGUF file (tokenizer.ggml.*) can be saved as a
// Hugging Face directory that both `BPETokenizer(huggingFaceTokenizer:)` and the `tokenizers` library load with
// the same encoding. Only shapes the reader in HuggingFaceTokenizer.swift accepts are written, so a round trip
// is exact; a rule without a tokenizer.json form (llama.cpp's fallback "default") is an `unsupported` error.
import Foundation

/// The three JSON documents of a Hugging Face tokenizer.
public struct HuggingFaceTokenizerFiles {
    /// tokenizer.json: model (vocab, merges), added tokens, normalizer, pre-tokenizer, post-processor, decoder.
    public let tokenizer: Data
    /// tokenizer_config.json: special token names, add_bos/add_eos flags, chat template, tokenizer class.
    public let tokenizerConfig: Data
    /// special_tokens_map.json: the special token names alone.
    public let specialTokensMap: Data
}

extension BPETokenizer {
    /// The Hugging Face files for this tokenizer; `chatTemplate` and `modelMaxLength` go to tokenizer_config.json.
    /// `path` names the destination in errors.
    public func huggingFaceFiles(chatTemplate: String?, modelMaxLength: Int?, path: String = "tokenizer.json") throws -> HuggingFaceTokenizerFiles {
        func text(_ id: Int?) -> Any { id.map { tokens[$0] as Any } ?? NSNull() }
        let tokenizer: [String: Any] = [
            "version": "1.0",
            "truncation": NSNull(),
            "padding": NSNull(),
            "added_tokens": addedTokens.map { token -> [String: Any] in
                ["id": token.id, "content": token.content, "single_word": false, "lstrip": token.stripsLeft,
                 "rstrip": token.stripsRight, "normalized": !token.isSpecial, "special": token.isSpecial]
            },
            "normalizer": normalizesToNFC ? ["type": "NFC"] as Any : NSNull(),
            "pre_tokenizer": try huggingFacePreTokenizer(path: path),
            "post_processor": huggingFacePostProcessor(),
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": text(specialTokenIDs.unknown),
                "continuing_subword_prefix": NSNull(), "end_of_word_suffix": NSNull(), "fuse_unk": false,
                "byte_fallback": false, "ignore_merges": ignoresMerges,
                "vocab": huggingFaceVocabulary(), "merges": huggingFaceMerges(),
            ] as [String: Any],
        ]
        var config: [String: Any] = [
            "tokenizer_class": "PreTrainedTokenizerFast",
            "add_bos_token": addsBOS, "add_eos_token": addsEOS,
            "clean_up_tokenization_spaces": false,
            "added_tokens_decoder": Dictionary(uniqueKeysWithValues: addedTokens.map { token in
                (String(token.id), ["content": token.content, "single_word": false, "lstrip": token.stripsLeft,
                                    "rstrip": token.stripsRight, "normalized": !token.isSpecial, "special": token.isSpecial] as [String: Any])
            }),
        ]
        var special: [String: Any] = [:]
        for (key, id) in [("bos_token", specialTokenIDs.bos), ("eos_token", specialTokenIDs.eos),
                          ("unk_token", specialTokenIDs.unknown), ("pad_token", specialTokenIDs.padding)] {
            if let id { special[key] = tokens[id] }
        }
        config.merge(special) { _, new in new }
        if let chatTemplate { config["chat_template"] = chatTemplate }
        if let modelMaxLength { config["model_max_length"] = modelMaxLength }
        return HuggingFaceTokenizerFiles(tokenizer: try Self.jsonData(tokenizer, path: path),
                                         tokenizerConfig: try Self.jsonData(config, path: path),
                                         specialTokensMap: try Self.jsonData(special, path: path))
    }

    /// token text → id. Strings that occur more than once keep their first id (the one encoding produces);
    /// empty entries (unused slots) are left out, as a JSON object cannot hold them apart.
    func huggingFaceVocabulary() -> [String: Int] {
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() where !token.isEmpty && vocab[token] == nil { vocab[token] = id }
        return vocab
    }

    /// Merges in rank order as "left right" strings, or as [left, right] pairs when a token contains a space.
    func huggingFaceMerges() -> [Any] {
        let ranked = mergeTable.map { key, value in (rank: value >> 32, left: Int(key >> 32), right: Int(key & 0xFFFF_FFFF)) }
            .sorted { $0.rank < $1.rank }
        let pairs = ranked.map { (tokens[$0.left], tokens[$0.right]) }
        if pairs.contains(where: { $0.0.contains(" ") || $0.1.contains(" ") }) { return pairs.map { [$0.0, $0.1] } }
        return pairs.map { "\($0.0) \($0.1)" }
    }

    func huggingFacePreTokenizer(path: String) throws -> [String: Any] {
        func byteLevel(regex: Bool) -> [String: Any] {
            ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": regex]
        }
        func split(_ pattern: String) -> [String: Any] {
            ["type": "Split", "pattern": ["Regex": pattern], "behavior": "Isolated", "invert": false]
        }
        switch preTokenizer {
        case .gpt2: return byteLevel(regex: true)
        case .smollm:
            return ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel(regex: true)]]
        case .llama3: return ["type": "Sequence", "pretokenizers": [split(Self.llama3SplitPattern), byteLevel(regex: false)]]
        case .qwen2: return ["type": "Sequence", "pretokenizers": [split(Self.qwen2SplitPattern), byteLevel(regex: false)]]
        case .bpeDefault:
            throw TokenizerError.unsupported(path: path, field: "pre_tokenizer",
                                             value: "\"default\" (llama.cpp's fallback rule has no tokenizer.json form)")
        }
    }

    /// BOS/EOS added by a TemplateProcessing step when the tokenizer adds them; otherwise byte-level offsets only.
    func huggingFacePostProcessor() -> [String: Any] {
        let bos = addsBOS ? specialTokenIDs.bos : nil, eos = addsEOS ? specialTokenIDs.eos : nil
        guard bos != nil || eos != nil else {
            return ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true]
        }
        func piece(_ id: Int?, typeID: Int) -> [[String: Any]] {
            id.map { [["SpecialToken": ["id": tokens[$0], "type_id": typeID]]] } ?? []
        }
        let single = piece(bos, typeID: 0) + [["Sequence": ["id": "A", "type_id": 0]]] + piece(eos, typeID: 0)
        let pair = single + piece(bos, typeID: 1) + [["Sequence": ["id": "B", "type_id": 1]]] + piece(eos, typeID: 1)
        var specials: [String: Any] = [:]
        for id in [bos, eos].compactMap({ $0 }) { specials[tokens[id]] = ["id": tokens[id], "ids": [id], "tokens": [tokens[id]]] }
        return ["type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials]
    }

    // The Split patterns of Llama 3 and Qwen 2 exactly as their tokenizer.json files spell them (the reader
    // recognises these strings).
    static let llama3SplitPattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2SplitPattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    static func jsonData(_ object: [String: Any], path: String) throws -> Data {
        do {
            var data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            data.append(0x0A)
            return data
        } catch {
            throw TokenizerError.invalidJSON(path: path, reason: "cannot serialise: \(error.localizedDescription)")
        }
    }
}
