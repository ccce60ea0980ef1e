// A BERT encoder (BertModel): word + position + token-type embeddings → LayerNorm → N post-LN encoder layers
// (self-attention over every unpadded token → output dense → LayerNorm(· + residual) → intermediate dense →
// GELU → output dense → LayerNorm(· + residual)) → optional pooler (tanh of a dense layer on [CLS]).
// Every linear layer is a PEFT `AdaptedLinear` named by its Hugging Face module path, so PEFT's BERT target
// names (query, key, value, dense) select the same layers. `prefix` is "" for a bare BertModel and "bert." inside
// BertForSequenceClassification, as PEFT sees them. The base model's own dropout is not applied: fine-tuning
// regularises through LoRA dropout, as for Llama.
//
// Files: BertModel.swift (parts, loading), BertModel+Forward.swift (autograd forward, pooling),
// BertSequenceClassifier.swift (classification head).
import Foundation
import TensorCore
import Autograd
import Formats
import PEFT

/// LayerNorm weight and bias [hidden].
public struct BertLayerNorm {
    public let weight: Variable, bias: Variable
}

/// One encoder layer (`encoder.layer.N`).
public final class BertLayer {
    /// attention.self.query / key / value [hidden, hidden], attention.output.dense [hidden, hidden].
    public let query: AdaptedLinear, key: AdaptedLinear, value: AdaptedLinear, attentionOutput: AdaptedLinear
    /// attention.output.LayerNorm.
    public let attentionNorm: BertLayerNorm
    /// intermediate.dense [intermediate, hidden], output.dense [hidden, intermediate].
    public let intermediate: AdaptedLinear, output: AdaptedLinear
    /// output.LayerNorm.
    public let outputNorm: BertLayerNorm

    public init(query: AdaptedLinear, key: AdaptedLinear, value: AdaptedLinear, attentionOutput: AdaptedLinear,
                attentionNorm: BertLayerNorm, intermediate: AdaptedLinear, output: AdaptedLinear, outputNorm: BertLayerNorm) {
        self.query = query; self.key = key; self.value = value; self.attentionOutput = attentionOutput
        self.attentionNorm = attentionNorm; self.intermediate = intermediate; self.output = output; self.outputNorm = outputNorm
    }

    var linears: [AdaptedLinear] { [query, key, value, attentionOutput, intermediate, output] }
}

/// A BERT encoder with Hugging Face module names.
public final class BertModel: AdaptableModel {
    public let config: BertConfig
    /// "" (BertModel) or "bert." (inside BertForSequenceClassification): the start of every module path.
    public let prefix: String
    /// [vocab, hidden], [maxPositions, hidden], [typeVocab, hidden].
    public let wordEmbeddings: Variable, positionEmbeddings: Variable, tokenTypeEmbeddings: Variable
    public let embeddingNorm: BertLayerNorm
    public let layers: [BertLayer]
    /// pooler.dense [hidden, hidden], nil when the checkpoint has no pooler.
    public let pooler: AdaptedLinear?
    /// Activation recomputation: the autograd forward keeps only each layer's input and runs the layer again in
    /// backward (training memory for one more forward of compute).
    public var recomputesActivations = false

    public init(config: BertConfig, prefix: String, wordEmbeddings: Variable, positionEmbeddings: Variable,
                tokenTypeEmbeddings: Variable, embeddingNorm: BertLayerNorm, layers: [BertLayer], pooler: AdaptedLinear?) throws {
        try config.validate(source: "BertModel")
        let c = config, src = "BertModel"
        func check(_ name: String, _ shape: [Int], _ expected: [Int]) throws {
            guard shape == expected else { throw ModelError.tensorShape(file: src, tensor: prefix + name, expected: expected, got: shape) }
        }
        try check("embeddings.word_embeddings.weight", wordEmbeddings.shape, [c.vocabSize, c.hiddenSize])
        try check("embeddings.position_embeddings.weight", positionEmbeddings.shape, [c.maxPositions, c.hiddenSize])
        try check("embeddings.token_type_embeddings.weight", tokenTypeEmbeddings.shape, [c.typeVocabSize, c.hiddenSize])
        guard layers.count == c.layerCount else {
            throw ModelError.invalidValue(file: src, key: "num_hidden_layers", reason: "config says \(c.layerCount), got \(layers.count) layers")
        }
        for layer in layers {
            for (l, shape) in [(layer.query, [c.hiddenSize, c.hiddenSize]), (layer.key, [c.hiddenSize, c.hiddenSize]),
                               (layer.value, [c.hiddenSize, c.hiddenSize]), (layer.attentionOutput, [c.hiddenSize, c.hiddenSize]),
                               (layer.intermediate, [c.intermediateSize, c.hiddenSize]), (layer.output, [c.hiddenSize, c.intermediateSize])] {
                try check(String(l.path.dropFirst(prefix.count)) + ".weight", l.base.shape, shape)
            }
        }
        if let pooler { try check("pooler.dense.weight", pooler.base.shape, [c.hiddenSize, c.hiddenSize]) }
        self.config = config; self.prefix = prefix; self.wordEmbeddings = wordEmbeddings
        self.positionEmbeddings = positionEmbeddings; self.tokenTypeEmbeddings = tokenTypeEmbeddings
        self.embeddingNorm = embeddingNorm; self.layers = layers; self.pooler = pooler
    }

    /// Every linear layer in model order (layer by layer query, key, value, attention.output.dense,
    /// intermediate.dense, output.dense), then pooler.dense.
    public var adaptedLinears: [AdaptedLinear] { layers.flatMap(\.linears) + (pooler.map { [$0] } ?? []) }
    public var outputHeadNames: Set<String> { [] }

    // MARK: Building

    /// Builds the model from tensors addressed by their names without `prefix` ("embeddings.word_embeddings.weight").
    convenience init(config c: BertConfig, prefix: String, tensor: (String) throws -> Tensor, has: (String) -> Bool) throws {
        func variable(_ name: String) throws -> Variable { Variable(try tensor(name), name: prefix + name) }
        func norm(_ path: String) throws -> BertLayerNorm {
            BertLayerNorm(weight: try variable(path + ".weight"), bias: try variable(path + ".bias"))
        }
        func linear(_ path: String) throws -> AdaptedLinear {
            AdaptedLinear(path: prefix + path, weight: try variable(path + ".weight"), bias: try variable(path + ".bias"))
        }
        let layers = try (0..<c.layerCount).map { i -> BertLayer in
            let p = "encoder.layer.\(i)."
            return BertLayer(query: try linear(p + "attention.self.query"), key: try linear(p + "attention.self.key"),
                             value: try linear(p + "attention.self.value"), attentionOutput: try linear(p + "attention.output.dense"),
                             attentionNorm: try norm(p + "attention.output.LayerNorm"), intermediate: try linear(p + "intermediate.dense"),
                             output: try linear(p + "output.dense"), outputNorm: try norm(p + "output.LayerNorm"))
        }
        try self.init(config: c, prefix: prefix, wordEmbeddings: try variable("embeddings.word_embeddings.weight"),
                      positionEmbeddings: try variable("embeddings.position_embeddings.weight"),
                      tokenTypeEmbeddings: try variable("embeddings.token_type_embeddings.weight"),
                      embeddingNorm: try norm("embeddings.LayerNorm"), layers: layers,
                      pooler: has("pooler.dense.weight") ? try linear("pooler.dense") : nil)
    }

    /// Random weights in Hugging Face's initialisation (N(0, 0.02) matrices and embeddings, unit LayerNorms, zero
    /// biases), all frozen; for tests.
    public convenience init(randomWeights config: BertConfig, prefix: String = "", pooler: Bool = true, rng: inout RandomGenerator) throws {
        try config.validate(source: "BertModel")
        let c = config
        var tensors: [String: Tensor] = [:]
        func matrix(_ name: String, _ rows: Int, _ cols: Int) { tensors[name] = rng.normal([rows, cols], std: 0.02) }
        func vector(_ name: String, _ n: Int, _ value: Float) { tensors[name] = Tensor(repeating: value, shape: [n]) }
        func linear(_ path: String, _ rows: Int, _ cols: Int) { matrix(path + ".weight", rows, cols); vector(path + ".bias", rows, 0) }
        func norm(_ path: String) { vector(path + ".weight", c.hiddenSize, 1); vector(path + ".bias", c.hiddenSize, 0) }
        matrix("embeddings.word_embeddings.weight", c.vocabSize, c.hiddenSize)
        matrix("embeddings.position_embeddings.weight", c.maxPositions, c.hiddenSize)
        matrix("embeddings.token_type_embeddings.weight", c.typeVocabSize, c.hiddenSize)
        norm("embeddings.LayerNorm")
        for i in 0..<c.layerCount {
            let p = "encoder.layer.\(i)."
            for name in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
                linear(p + name, c.hiddenSize, c.hiddenSize)
            }
            norm(p + "attention.output.LayerNorm")
            linear(p + "intermediate.dense", c.intermediateSize, c.hiddenSize)
            linear(p + "output.dense", c.hiddenSize, c.intermediateSize)
            norm(p + "output.LayerNorm")
        }
        if pooler { linear("pooler.dense", c.hiddenSize, c.hiddenSize) }
        try self.init(config: c, prefix: prefix, tensor: { name in
            guard let t = tensors[name] else { throw ModelError.missingTensor(file: "random", tensor: name) }
            return t
        }, has: { tensors[$0] != nil })
    }

    /// Loads config.json and model.safetensors (or shards) from a Hugging Face directory. The tensors may be
    /// stored bare (BertModel) or under "bert." (a BertFor… checkpoint); `prefix` sets the module paths.
    public static func load(directory: URL, prefix: String = "") throws -> BertModel {
        let config = try BertConfig(huggingFaceConfig: directory.appendingPathComponent("config.json"))
        let weights = try SafeTensorsWeights(directory: directory)
        let stored = weights.contains("bert.embeddings.word_embeddings.weight") ? "bert." : ""
        return try BertModel(config: config, prefix: prefix, tensor: { name in
            guard weights.contains(stored + name) else { throw ModelError.missingTensor(file: weights.source, tensor: stored + name) }
            return try weights.tensor(stored + name)
        }, has: { weights.contains(stored + $0) })
    }
}
