// Hyper-parameters of a Llama-family decoder (Llama 2/3, SmolLM, TinyLlama, Qwen 2), read from GGUF
// metadata (`llama.*` keys) or from a Hugging Face config.json.
import Foundation
import Formats
import PEFT

/// The sizes and constants that define a Llama-family model; field names follow Hugging Face's config.json.
public struct LlamaConfig: Equatable, Sendable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    /// Key/value heads (grouped-query attention); equal to `headCount` for plain multi-head attention.
    public var kvHeadCount: Int
    /// Per-head dimension (usually hiddenSize / headCount).
    public var headDim: Int
    public var ropeTheta: Float
    public var rmsNormEps: Float
    /// Longest sequence the model was trained for (max_position_embeddings / llama.context_length).
    public var contextLength: Int
    /// Output head shares the token embedding (no separate lm_head weight).
    public var tieWordEmbeddings: Bool
    /// q/k/v projections carry biases (Qwen 2; Llama with attention_bias).
    public var qkvBias: Bool
    /// o_proj carries a bias (Llama with attention_bias; not Qwen 2).
    public var outputProjectionBias: Bool
    /// gate/up/down projections carry biases (mlp_bias).
    public var mlpBias: Bool
    public var bosTokenID: Int?
    /// Ids that end generation (config.json may list several).
    public var eosTokenIDs: [Int]
    /// The GGUF architecture name of this family (`general.architecture`): llama, qwen2 or qwen3.
    public var architecture: String = "llama"
    /// A per-head RMSNorm on q and k before rope (Qwen 3: q_norm / k_norm, weights [headDim]).
    public var queryKeyNorm: Bool = false

    public init(vocabSize: Int, hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int,
                kvHeadCount: Int, headDim: Int? = nil, ropeTheta: Float = 10_000, rmsNormEps: Float = 1e-5,
                contextLength: Int = 2048, tieWordEmbeddings: Bool = false, qkvBias: Bool = false,
                outputProjectionBias: Bool = false, mlpBias: Bool = false, bosTokenID: Int? = nil, eosTokenIDs: [Int] = []) {
        self.vocabSize = vocabSize; self.hiddenSize = hiddenSize; self.intermediateSize = intermediateSize
        self.layerCount = layerCount; self.headCount = headCount; self.kvHeadCount = kvHeadCount
        self.headDim = headDim ?? hiddenSize / max(headCount, 1)
        self.ropeTheta = ropeTheta; self.rmsNormEps = rmsNormEps; self.contextLength = contextLength
        self.tieWordEmbeddings = tieWordEmbeddings; self.qkvBias = qkvBias
        self.outputProjectionBias = outputProjectionBias; self.mlpBias = mlpBias
        self.bosTokenID = bosTokenID; self.eosTokenIDs = eosTokenIDs
    }

    /// Width of the q projection output (headCount · headDim).
    public var queryWidth: Int { headCount * headDim }
    /// Width of the k and v projection outputs (kvHeadCount · headDim).
    public var kvWidth: Int { kvHeadCount * headDim }

    /// Throws unless every size is positive and the head layout is consistent; `source` names the file.
    public func validate(source: String) throws {
        let sizes: [(String, Int)] = [("vocab_size", vocabSize), ("hidden_size", hiddenSize),
                                      ("intermediate_size", intermediateSize), ("num_hidden_layers", layerCount),
                                      ("num_attention_heads", headCount), ("num_key_value_heads", kvHeadCount),
                                      ("head_dim", headDim), ("max_position_embeddings", contextLength)]
        for (key, value) in sizes where value <= 0 || value > 1 << 24 {
            throw ModelError.invalidValue(file: source, key: key, reason: "\(value) is not in 1...\(1 << 24)")
        }
        guard headCount % kvHeadCount == 0 else {
            throw ModelError.invalidValue(file: source, key: "num_key_value_heads",
                                          reason: "\(kvHeadCount) does not divide num_attention_heads \(headCount)")
        }
        guard headDim % 2 == 0 else { throw ModelError.invalidValue(file: source, key: "head_dim", reason: "\(headDim) is odd; rotary embeddings need pairs") }
        guard ropeTheta.isFinite, ropeTheta > 0 else { throw ModelError.invalidValue(file: source, key: "rope_theta", reason: "\(ropeTheta) is not positive") }
        guard rmsNormEps.isFinite, rmsNormEps >= 0 else { throw ModelError.invalidValue(file: source, key: "rms_norm_eps", reason: "\(rmsNormEps) is not ≥ 0") }
        for (key, id) in [("bos_token_id", bosTokenID)] + eosTokenIDs.map({ ("eos_token_id", Optional($0)) }) {
            if let id, !(0..<vocabSize).contains(id) {
                throw ModelError.invalidValue(file: source, key: key, reason: "\(id) is outside the vocabulary of \(vocabSize)")
            }
        }
    }
}

// MARK: - GGUF

extension LlamaConfig {
    /// Reads `llama.*` metadata. The vocabulary size comes from `llama.vocab_size`, else the token list, else the
    /// embedding's rows; the head is tied when the file has no `output.weight`.
    public init(gguf file: GGUFFile) throws {
        let source = file.path
        let architecture = file.metadata["general.architecture"]?.stringValue
        guard let architecture else { throw ModelError.missingKey(file: source, key: "general.architecture") }
        guard let arch = GGUFArchitecture.named(architecture) else {
            throw ModelError.unsupportedArchitecture(file: source, key: "general.architecture", value: architecture)
        }
        let p = arch.name  // hyper-parameter keys are "<architecture>.<name>"
        let qkNorm = file.tensorInfo("blk.0.attn_q_norm.weight") != nil
        func int(_ key: String, default value: Int? = nil) throws -> Int {
            guard let raw = file.metadata[key] else {
                if let value { return value }
                throw ModelError.missingKey(file: source, key: key)
            }
            guard let v = raw.intValue else { throw ModelError.invalidValue(file: source, key: key, reason: "expected an integer, got \(raw.summary())") }
            return v
        }
        func float(_ key: String, default value: Float? = nil) throws -> Float {
            guard let raw = file.metadata[key] else {
                if let value { return value }
                throw ModelError.missingKey(file: source, key: key)
            }
            guard let v = raw.floatValue else { throw ModelError.invalidValue(file: source, key: key, reason: "expected a number, got \(raw.summary())") }
            return v
        }
        let hidden = try int("\(p).embedding_length"), heads = try int("\(p).attention.head_count")
        guard heads > 0 else { throw ModelError.invalidValue(file: source, key: "\(p).attention.head_count", reason: "\(heads) is not positive") }
        // Qwen 3 may set head_dim apart from hidden/heads; llama.cpp records it as key_length.
        let headDim = try int("\(p).attention.key_length", default: hidden / heads)
        let valueDim = try int("\(p).attention.value_length", default: headDim)
        guard valueDim == headDim else {
            throw ModelError.unsupportedFeature(file: source, key: "\(p).attention.value_length", value: "\(valueDim) (differs from key_length \(headDim))")
        }
        let ropeDim = try int("\(p).rope.dimension_count", default: headDim)
        guard ropeDim == headDim else {
            throw ModelError.unsupportedFeature(file: source, key: "\(p).rope.dimension_count", value: "\(ropeDim) (partial rotary; head dim is \(headDim))")
        }
        if let scaling = file.metadata["\(p).rope.scaling.type"]?.stringValue, scaling != "none" {
            throw ModelError.unsupportedFeature(file: source, key: "\(p).rope.scaling.type", value: scaling)
        }
        var vocab = try int("\(p).vocab_size", default: file.metadata["tokenizer.ggml.tokens"]?.arrayValue?.count ?? 0)
        if vocab == 0, let embedding = file.tensorInfo("token_embd.weight") { vocab = embedding.shape[0] }
        let eos = try file.metadata["tokenizer.ggml.eos_token_id"].map { _ in try int("tokenizer.ggml.eos_token_id") }
        let bos = try file.metadata["tokenizer.ggml.bos_token_id"].map { _ in try int("tokenizer.ggml.bos_token_id") }
        self.init(vocabSize: vocab, hiddenSize: hidden, intermediateSize: try int("\(p).feed_forward_length"),
                  layerCount: try int("\(p).block_count"), headCount: heads,
                  kvHeadCount: try int("\(p).attention.head_count_kv", default: heads), headDim: headDim,
                  ropeTheta: try float("\(p).rope.freq_base", default: 10_000),
                  rmsNormEps: try float("\(p).attention.layer_norm_rms_epsilon"),
                  contextLength: try int("\(p).context_length", default: 2048),
                  tieWordEmbeddings: file.tensorInfo("output.weight") == nil,
                  qkvBias: file.tensorInfo("blk.0.attn_q.bias") != nil,
                  outputProjectionBias: file.tensorInfo("blk.0.attn_output.bias") != nil,
                  mlpBias: file.tensorInfo("blk.0.ffn_up.bias") != nil,
                  bosTokenID: bos, eosTokenIDs: eos.map { [$0] } ?? [])
        self.architecture = arch.name
        self.queryKeyNorm = qkNorm
        try validate(source: source)
    }
}

// MARK: - Hugging Face config.json

extension LlamaConfig {
    /// Model types read from config.json: Llama itself and the families with the same decoder.
    public static let huggingFaceModelTypes: Set<String> = ["llama", "qwen2", "qwen3", "mistral"]

    /// Reads a Hugging Face config.json (`model_type` llama, qwen2 or mistral without sliding windows).
    public init(huggingFaceConfig url: URL) throws {
        let source = url.path
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelError.unreadable(path: source, reason: "cannot read (\(error.localizedDescription))")
        }
        let root: [String: JSONValue]
        do { root = try JSONValue.parseObject(data, source: source) } catch {
            throw ModelError.unreadable(path: source, reason: "invalid JSON: \(error)")
        }
        try self.init(huggingFaceConfig: root, source: source)
    }

    /// Reads an already parsed config.json object; `source` names the file in errors.
    public init(huggingFaceConfig root: [String: JSONValue], source: String) throws {
        guard let modelType = root["model_type"]?.stringValue else { throw ModelError.missingKey(file: source, key: "model_type") }
        guard Self.huggingFaceModelTypes.contains(modelType) else {
            throw ModelError.unsupportedArchitecture(file: source, key: "model_type", value: modelType)
        }
        func value(_ key: String) -> JSONValue? { root[key].flatMap { $0.isNull ? nil : $0 } }
        func int(_ key: String, default fallback: Int? = nil) throws -> Int {
            guard let raw = value(key) else {
                if let fallback { return fallback }
                throw ModelError.missingKey(file: source, key: key)
            }
            guard let v = raw.intValue else { throw ModelError.invalidValue(file: source, key: key, reason: "expected an integer") }
            return v
        }
        func number(_ raw: JSONValue?, _ key: String, default fallback: Double) throws -> Double {
            guard let raw else { return fallback }
            guard let v = raw.doubleValue else { throw ModelError.invalidValue(file: source, key: key, reason: "expected a number") }
            return v
        }
        func flag(_ key: String, default fallback: Bool) throws -> Bool {
            guard let raw = value(key) else { return fallback }
            guard let v = raw.boolValue else { throw ModelError.invalidValue(file: source, key: key, reason: "expected true or false") }
            return v
        }
        if let act = value("hidden_act")?.stringValue, act != "silu" {
            throw ModelError.unsupportedFeature(file: source, key: "hidden_act", value: act)
        }
        if modelType != "llama", let window = value("sliding_window"), try flag("use_sliding_window", default: modelType == "mistral"),
           window.intValue != nil {
            throw ModelError.unsupportedFeature(file: source, key: "sliding_window", value: "\(window.intValue ?? 0)")
        }
        // Transformers 5 nests rope settings in rope_parameters; older files have rope_theta and rope_scaling.
        let rope = value("rope_parameters")?.objectValue ?? value("rope_scaling")?.objectValue ?? [:]
        let ropeType = rope["rope_type"]?.stringValue ?? rope["type"]?.stringValue ?? "default"
        guard ropeType == "default" else {
            throw ModelError.unsupportedFeature(file: source, key: "rope_parameters.rope_type", value: ropeType)
        }
        let theta = try number(rope["rope_theta"] ?? value("rope_theta"), "rope_theta", default: 10_000)
        let heads = try int("num_attention_heads"), hidden = try int("hidden_size")
        let eos: [Int]
        switch value("eos_token_id") {
        case nil: eos = []
        case .some(.array(let items)):
            eos = try items.map { guard let v = $0.intValue else { throw ModelError.invalidValue(file: source, key: "eos_token_id", reason: "expected integers") }; return v }
        case .some(let single):
            guard let v = single.intValue else { throw ModelError.invalidValue(file: source, key: "eos_token_id", reason: "expected an integer or a list") }
            eos = [v]
        }
        let attentionBias = try flag("attention_bias", default: false)
        self.init(vocabSize: try int("vocab_size"), hiddenSize: hidden, intermediateSize: try int("intermediate_size"),
                  layerCount: try int("num_hidden_layers"), headCount: heads,
                  kvHeadCount: try int("num_key_value_heads", default: heads),
                  headDim: try int("head_dim", default: hidden / max(heads, 1)),
                  ropeTheta: Float(theta), rmsNormEps: Float(try number(value("rms_norm_eps"), "rms_norm_eps", default: 1e-6)),
                  contextLength: try int("max_position_embeddings", default: 2048),
                  tieWordEmbeddings: try flag("tie_word_embeddings", default: false),
                  qkvBias: modelType == "qwen2" || attentionBias, outputProjectionBias: modelType != "qwen2" && attentionBias,
                  mlpBias: try flag("mlp_bias", default: false),
                  bosTokenID: try value("bos_token_id").map { _ in try int("bos_token_id") }, eosTokenIDs: eos)
        architecture = GGUFArchitecture.forHuggingFaceModelType(modelType)?.name ?? "llama"
        queryKeyNorm = modelType == "qwen3"
        try validate(source: source)
    }
}
