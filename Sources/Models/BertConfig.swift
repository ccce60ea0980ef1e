// BERT hyper-parameters from a Hugging Face config.json (model_type "bert"): sizes, GELU flavour, LayerNorm
// epsilon, and, for a sequence classifier, the label names. Other encoder families (RoBERTa's offset positions,
// relative position embeddings) are typed errors, never a silently different model.
import Foundation
import Autograd

/// A BERT encoder's shape.
public struct BertConfig: Equatable, Sendable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var intermediateSize: Int
    public var maxPositions: Int
    public var typeVocabSize: Int
    public var layerNormEps: Float
    /// hidden_act: "gelu" (erf), "gelu_new"/"gelu_pytorch_tanh" (tanh), or "relu".
    public var activation: String
    public var padTokenID: Int
    /// id2label of a classification checkpoint, by id (empty for a bare encoder).
    public var labels: [String]

    public var headDim: Int { hiddenSize / headCount }

    /// all-MiniLM-L6-v2's shape by default.
    public init(vocabSize: Int = 30522, hiddenSize: Int = 384, layerCount: Int = 6, headCount: Int = 12,
                intermediateSize: Int = 1536, maxPositions: Int = 512, typeVocabSize: Int = 2, layerNormEps: Float = 1e-12,
                activation: String = "gelu", padTokenID: Int = 0, labels: [String] = []) {
        self.vocabSize = vocabSize; self.hiddenSize = hiddenSize; self.layerCount = layerCount; self.headCount = headCount
        self.intermediateSize = intermediateSize; self.maxPositions = maxPositions; self.typeVocabSize = typeVocabSize
        self.layerNormEps = layerNormEps; self.activation = activation; self.padTokenID = padTokenID; self.labels = labels
    }

    static let activations: Set<String> = ["gelu", "gelu_new", "gelu_pytorch_tanh", "relu"]

    /// Reads config.json; `model_type` must be "bert".
    public init(huggingFaceConfig url: URL) throws {
        let path = url.path
        let object: [String: Any]
        do {
            guard let o = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else {
                throw ModelError.unreadable(path: path, reason: "config.json is not a JSON object")
            }
            object = o
        } catch let error as ModelError { throw error } catch {
            throw ModelError.unreadable(path: path, reason: "cannot read config.json: \(error.localizedDescription)")
        }
        let type = object["model_type"] as? String ?? "?"
        guard type == "bert" else {
            throw ModelError.unsupportedArchitecture(file: path, key: "model_type", value: type)
        }
        func int(_ key: String, _ fallback: Int? = nil) throws -> Int {
            guard let v = object[key] else {
                if let fallback { return fallback }
                throw ModelError.missingKey(file: path, key: key)
            }
            guard let i = v as? Int, i > 0 || key == "pad_token_id" else {
                throw ModelError.invalidValue(file: path, key: key, reason: "\(v) is not a positive integer")
            }
            return i
        }
        if let p = object["position_embedding_type"] as? String, p != "absolute" {
            throw ModelError.unsupportedFeature(file: path, key: "position_embedding_type", value: p)
        }
        let activation = object["hidden_act"] as? String ?? "gelu"
        guard Self.activations.contains(activation) else {
            throw ModelError.unsupportedFeature(file: path, key: "hidden_act", value: activation)
        }
        var labels: [String] = []
        if let map = object["id2label"] as? [String: Any] {
            let pairs = try map.map { key, value -> (Int, String) in
                guard let i = Int(key), i >= 0, i < map.count, let name = value as? String else {
                    throw ModelError.invalidValue(file: path, key: "id2label", reason: "entry \(key): \(value) is not id → name for ids 0..<\(map.count)")
                }
                return (i, name)
            }
            labels = pairs.sorted { $0.0 < $1.0 }.map(\.1)
        }
        self.init(vocabSize: try int("vocab_size"), hiddenSize: try int("hidden_size"), layerCount: try int("num_hidden_layers"),
                  headCount: try int("num_attention_heads"), intermediateSize: try int("intermediate_size"),
                  maxPositions: try int("max_position_embeddings", 512), typeVocabSize: try int("type_vocab_size", 2),
                  layerNormEps: Float(object["layer_norm_eps"] as? Double ?? 1e-12), activation: activation,
                  padTokenID: try int("pad_token_id", 0), labels: labels)
        try validate(source: path)
    }

    /// Sizes must divide and be positive.
    public func validate(source: String) throws {
        for (key, v) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("num_hidden_layers", layerCount),
                         ("num_attention_heads", headCount), ("intermediate_size", intermediateSize),
                         ("max_position_embeddings", maxPositions), ("type_vocab_size", typeVocabSize)] where v <= 0 {
            throw ModelError.invalidValue(file: source, key: key, reason: "\(v) must be positive")
        }
        guard hiddenSize % headCount == 0 else {
            throw ModelError.invalidValue(file: source, key: "num_attention_heads", reason: "\(headCount) does not divide hidden_size \(hiddenSize)")
        }
        guard Self.activations.contains(activation) else { throw ModelError.unsupportedFeature(file: source, key: "hidden_act", value: activation) }
    }

    /// Whether a config.json describes a BERT model (model_type "bert"), without reading further.
    public static func isBert(_ configURL: URL) -> Bool {
        guard let data = try? Data(contentsOf: configURL),
              let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
        return o["model_type"] as? String == "bert"
    }
}
