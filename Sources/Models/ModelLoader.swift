// Opening a model from disk: a .gguf file (weights, tokenizer and chat template in one file) or a Hugging
// Face directory (config.json, model.safetensors or shards, tokenizer.json, tokenizer_config.json).
import Foundation
import Formats
import Tokenizers

/// How to load weights.
public struct ModelLoadOptions: Sendable {
    /// Keep GGUF quantized matrices quantized (false: dequantize all weights to Float32).
    public var keepQuantized: Bool
    public init(keepQuantized: Bool = true) { self.keepQuantized = keepQuantized }
}

/// A loaded model with what generation needs besides the weights.
public struct LoadedModel {
    public let model: LlamaModel
    /// nil for a checkpoint without tokenizer files.
    public let tokenizer: BPETokenizer?
    /// The Jinja chat template the model ships, if any.
    public let chatTemplate: String?
    /// Token ids that end a reply: the tokenizer's EOS and the config's eos ids.
    public let stopTokenIDs: Set<Int32>
    /// The file or directory loaded.
    public let source: String
}

public enum ModelLoader {
    /// Loads a `.gguf` file or a Hugging Face checkpoint directory.
    public static func load(_ url: URL, options: ModelLoadOptions = ModelLoadOptions()) throws -> LoadedModel {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw ModelError.unreadable(path: url.path, reason: "no such file or directory")
        }
        return isDirectory.boolValue ? try loadHuggingFace(directory: url) : try loadGGUF(url, options: options)
    }

    /// Loads a GGUF Llama model with its tokenizer (tokenizer.ggml.*) and chat template.
    public static func loadGGUF(_ url: URL, options: ModelLoadOptions = ModelLoadOptions()) throws -> LoadedModel {
        let file = try GGUFFile(url: url)
        let config = try LlamaConfig(gguf: file)
        let permutes = GGUFArchitecture.named(config.architecture)?.permutesQueryKeyRows ?? true
        let model = try LlamaModel(config: config, weights: GGUFWeights(file: file, keepQuantized: options.keepQuantized,
                                                                        permutesQueryKeyRows: permutes))
        let tokenizer = try BPETokenizer(gguf: file)
        guard tokenizer.vocabularySize <= config.vocabSize else {
            throw ModelError.invalidValue(file: file.path, key: "tokenizer.ggml.tokens",
                                          reason: "\(tokenizer.vocabularySize) tokens but the embedding has \(config.vocabSize) rows")
        }
        let stops = Set((config.eosTokenIDs + [tokenizer.specialTokenIDs.eos].compactMap { $0 }).map { Int32($0) })
        return LoadedModel(model: model, tokenizer: tokenizer, chatTemplate: file.metadata["tokenizer.chat_template"]?.stringValue,
                           stopTokenIDs: stops, source: file.path)
    }

    /// Loads config.json and the safetensors weights; tokenizer.json and tokenizer_config.json when present.
    public static func loadHuggingFace(directory: URL) throws -> LoadedModel {
        let configURL = directory.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw ModelError.unreadable(path: directory.path, reason: "no config.json: not a Hugging Face model directory")
        }
        let config = try LlamaConfig(huggingFaceConfig: configURL)
        let model = try LlamaModel(config: config, weights: SafeTensorsWeights(directory: directory))
        var tokenizer: BPETokenizer?
        var template: String?
        let tokenizerURL = directory.appendingPathComponent("tokenizer.json")
        if FileManager.default.fileExists(atPath: tokenizerURL.path) {
            let configFile = directory.appendingPathComponent("tokenizer_config.json")
            let tokenizerConfig = FileManager.default.fileExists(atPath: configFile.path) ? try TokenizerConfig(contentsOf: configFile) : nil
            tokenizer = try BPETokenizer(huggingFaceTokenizer: tokenizerURL, config: tokenizerConfig)
            template = tokenizerConfig?.chatTemplate
            if template == nil {  // newer checkpoints keep it in its own file
                let jinja = directory.appendingPathComponent("chat_template.jinja")
                template = try? String(contentsOf: jinja, encoding: .utf8)
            }
        }
        let stops = Set((config.eosTokenIDs + [tokenizer?.specialTokenIDs.eos].compactMap { $0 }).map { Int32($0) })
        return LoadedModel(model: model, tokenizer: tokenizer, chatTemplate: template, stopTokenIDs: stops, source: directory.path)
    }
}

extension BPETokenizer {
    /// The byte-level BPE tokenizer stored in a GGUF file (tokenizer.ggml.model "gpt2"): tokens, merges,
    /// token types, pre-tokenizer, special ids and the add_bos/add_eos flags.
    public convenience init(gguf file: GGUFFile) throws {
        let m = file.metadata, source = file.path
        guard let kind = m["tokenizer.ggml.model"]?.stringValue else { throw ModelError.missingKey(file: source, key: "tokenizer.ggml.model") }
        guard kind == "gpt2" else {
            throw ModelError.unsupportedFeature(file: source, key: "tokenizer.ggml.model", value: "\"\(kind)\" (only byte-level BPE, \"gpt2\", is supported)")
        }
        guard let tokens = m["tokenizer.ggml.tokens"]?.stringArray else { throw ModelError.missingKey(file: source, key: "tokenizer.ggml.tokens (string array)") }
        guard let merges = m["tokenizer.ggml.merges"]?.stringArray else { throw ModelError.missingKey(file: source, key: "tokenizer.ggml.merges (string array)") }
        var types: [Int32]?
        if let raw = m["tokenizer.ggml.token_type"] {
            guard let ints = raw.intArray, ints.allSatisfy({ Int32(exactly: $0) != nil }) else {
                throw ModelError.invalidValue(file: source, key: "tokenizer.ggml.token_type", reason: "expected an integer array")
            }
            types = ints.map { Int32($0) }
        }
        func id(_ key: String) throws -> Int? {
            guard let raw = m[key] else { return nil }
            guard let v = raw.intValue else { throw ModelError.invalidValue(file: source, key: key, reason: "expected an integer") }
            return v
        }
        func flag(_ key: String, _ fallback: Bool) throws -> Bool {
            guard let raw = m[key] else { return fallback }
            guard let v = raw.boolValue else { throw ModelError.invalidValue(file: source, key: key, reason: "expected a bool") }
            return v
        }
        let special = SpecialTokenIDs(bos: try id("tokenizer.ggml.bos_token_id"), eos: try id("tokenizer.ggml.eos_token_id"),
                                      unknown: try id("tokenizer.ggml.unknown_token_id"), padding: try id("tokenizer.ggml.padding_token_id"))
        try self.init(vocabulary: tokens, merges: merges, tokenTypes: types,
                      preTokenizer: try PreTokenizer(ggufName: m["tokenizer.ggml.pre"]?.stringValue, source: source + ": tokenizer.ggml.pre"),
                      specialTokenIDs: special, addBOS: try flag("tokenizer.ggml.add_bos_token", false),
                      addEOS: try flag("tokenizer.ggml.add_eos_token", false), source: source)
    }
}
