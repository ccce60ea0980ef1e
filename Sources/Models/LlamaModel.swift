// A Llama-family causal language model: token embedding → N decoder layers (RMSNorm → grouped-query
// attention with RoPE → residual → RMSNorm → SwiGLU MLP → residual) → final RMSNorm → output head.
// Every projection is a PEFT `AdaptedLinear` named by its Hugging Face module path, so LoRA adapters trained
// with PEFT on the Hugging Face model load onto it unchanged. Weights use Hugging Face's layouts throughout
// (q/k rows in `rotate_half` order; GGUF's permuted rows are put back when loading).
//
// Files: LlamaModel+Forward.swift (autograd forward, logits, loss), LlamaModel+Inference.swift (the no-graph
// KV-cache path for generation), ModelLoader.swift (GGUF and safetensors weights).
import Foundation
import TensorCore
import Autograd
import NN
import Formats
import PEFT

/// Self-attention projections of one decoder layer (`model.layers.N.self_attn`).
public final class LlamaAttention {
    /// [heads·headDim, hidden], [kvHeads·headDim, hidden], [kvHeads·headDim, hidden], [hidden, heads·headDim].
    public let qProj: AdaptedLinear, kProj: AdaptedLinear, vProj: AdaptedLinear, oProj: AdaptedLinear
    /// Qwen 3: RMSNorm weights [headDim] applied to every head of q and of k before rope (q_norm / k_norm).
    public var queryNorm: Variable?, keyNorm: Variable?

    public init(qProj: AdaptedLinear, kProj: AdaptedLinear, vProj: AdaptedLinear, oProj: AdaptedLinear) {
        self.qProj = qProj; self.kProj = kProj; self.vProj = vProj; self.oProj = oProj
    }
}

/// SwiGLU feed-forward block of one decoder layer (`model.layers.N.mlp`): down(silu(gate(x)) ⊙ up(x)).
public final class LlamaMLP {
    /// [intermediate, hidden], [intermediate, hidden], [hidden, intermediate].
    public let gateProj: AdaptedLinear, upProj: AdaptedLinear, downProj: AdaptedLinear

    public init(gateProj: AdaptedLinear, upProj: AdaptedLinear, downProj: AdaptedLinear) {
        self.gateProj = gateProj; self.upProj = upProj; self.downProj = downProj
    }
}

/// One decoder layer (`model.layers.N`).
public final class LlamaDecoderLayer {
    /// RMSNorm weights [hidden] before attention and before the MLP.
    public let inputNorm: Variable, postAttentionNorm: Variable
    public let attention: LlamaAttention
    public let mlp: LlamaMLP

    public init(inputNorm: Variable, attention: LlamaAttention, postAttentionNorm: Variable, mlp: LlamaMLP) {
        self.inputNorm = inputNorm; self.attention = attention; self.postAttentionNorm = postAttentionNorm; self.mlp = mlp
    }

    /// Projections in Hugging Face module order.
    var linears: [AdaptedLinear] {
        [attention.qProj, attention.kProj, attention.vProj, attention.oProj, mlp.gateProj, mlp.upProj, mlp.downProj]
    }
}

/// A Llama-family causal LM (LlamaForCausalLM).
public final class LlamaModel: AdaptableModel, Module {
    public let config: LlamaConfig
    /// Token embedding [vocab, hidden] (`model.embed_tokens.weight`); a GGUF model keeps it quantized.
    public let embedding: LinearBase
    public let layers: [LlamaDecoderLayer]
    /// Final RMSNorm weight [hidden] (`model.norm.weight`).
    public let norm: Variable
    /// Separate output head [vocab, hidden] (`lm_head`), or nil when tied to the embedding.
    public let lmHead: AdaptedLinear?
    public var isTraining = false
    /// Activation recomputation: the autograd forward keeps only each decoder layer's input and runs the layer
    /// again during backward (one more forward pass of compute for a fraction of the activation memory).
    public var recomputesActivations = false
    /// Most prompt tokens run through the cache path at once (longer prompts are split); bounds scratch memory.
    public var prefillChunkSize = 512
    /// lm_head, or for a tied model the embedding wrapped as a layer (never listed, never adapted).
    let outputHead: AdaptedLinear
    /// Dequantised copy of a quantized tied/untied head, made on first use by the training loss.
    private var denseHeadCache: Variable?

    /// Assembles a model from its parts, checking every shape against `config`.
    public init(config: LlamaConfig, embedding: LinearBase, layers: [LlamaDecoderLayer], norm: Variable,
                lmHead: AdaptedLinear?) throws {
        try config.validate(source: "LlamaModel")
        let c = config, src = "LlamaModel"
        func check(_ name: String, _ shape: [Int], _ expected: [Int]) throws {
            guard shape == expected else { throw ModelError.tensorShape(file: src, tensor: name, expected: expected, got: shape) }
        }
        try check("model.embed_tokens.weight", embedding.shape, [c.vocabSize, c.hiddenSize])
        try check("model.norm.weight", norm.shape, [c.hiddenSize])
        guard layers.count == c.layerCount else {
            throw ModelError.invalidValue(file: src, key: "num_hidden_layers", reason: "config says \(c.layerCount), got \(layers.count) layers")
        }
        for (i, layer) in layers.enumerated() {
            let p = "model.layers.\(i)."
            try check(p + "input_layernorm.weight", layer.inputNorm.shape, [c.hiddenSize])
            try check(p + "post_attention_layernorm.weight", layer.postAttentionNorm.shape, [c.hiddenSize])
            let expected: [(AdaptedLinear, [Int])] = [
                (layer.attention.qProj, [c.queryWidth, c.hiddenSize]), (layer.attention.kProj, [c.kvWidth, c.hiddenSize]),
                (layer.attention.vProj, [c.kvWidth, c.hiddenSize]), (layer.attention.oProj, [c.hiddenSize, c.queryWidth]),
                (layer.mlp.gateProj, [c.intermediateSize, c.hiddenSize]), (layer.mlp.upProj, [c.intermediateSize, c.hiddenSize]),
                (layer.mlp.downProj, [c.hiddenSize, c.intermediateSize])]
            for (linear, shape) in expected { try check(linear.path + ".weight", linear.base.shape, shape) }
        }
        if let lmHead { try check("lm_head.weight", lmHead.base.shape, [c.vocabSize, c.hiddenSize]) }
        else if !c.tieWordEmbeddings {
            throw ModelError.invalidValue(file: src, key: "tie_word_embeddings", reason: "false, but no lm_head was given")
        }
        self.config = config; self.embedding = embedding; self.layers = layers; self.norm = norm; self.lmHead = lmHead
        switch (lmHead, embedding) {
        case (let head?, _): outputHead = head
        case (nil, .dense(let w)): outputHead = AdaptedLinear(path: "lm_head", weight: w)
        case (nil, .quantized(let q)): outputHead = try AdaptedLinear(path: "lm_head", quantizedWeight: q)
        }
    }

    /// A model with random weights in Hugging Face's initialisation (N(0, 0.02) matrices, unit norms, zero
    /// biases); every weight frozen. For tests and experiments.
    public convenience init(randomWeights config: LlamaConfig, rng: inout RandomGenerator) throws {
        try config.validate(source: "LlamaModel")
        func matrix(_ rows: Int, _ cols: Int) -> Variable { Variable(rng.normal([rows, cols], std: 0.02)) }
        func linear(_ path: String, _ rows: Int, _ cols: Int, bias: Bool) -> AdaptedLinear {
            AdaptedLinear(path: path, weight: matrix(rows, cols), bias: bias ? Variable(Tensor(zeros: [rows])) : nil)
        }
        let c = config
        let embedding = matrix(c.vocabSize, c.hiddenSize)
        let layers = (0..<c.layerCount).map { i -> LlamaDecoderLayer in
            let p = "model.layers.\(i)."
            let attention = LlamaAttention(
                qProj: linear(p + "self_attn.q_proj", c.queryWidth, c.hiddenSize, bias: c.qkvBias),
                kProj: linear(p + "self_attn.k_proj", c.kvWidth, c.hiddenSize, bias: c.qkvBias),
                vProj: linear(p + "self_attn.v_proj", c.kvWidth, c.hiddenSize, bias: c.qkvBias),
                oProj: linear(p + "self_attn.o_proj", c.hiddenSize, c.queryWidth, bias: c.outputProjectionBias))
            let mlp = LlamaMLP(gateProj: linear(p + "mlp.gate_proj", c.intermediateSize, c.hiddenSize, bias: c.mlpBias),
                               upProj: linear(p + "mlp.up_proj", c.intermediateSize, c.hiddenSize, bias: c.mlpBias),
                               downProj: linear(p + "mlp.down_proj", c.hiddenSize, c.intermediateSize, bias: c.mlpBias))
            if c.queryKeyNorm {
                attention.queryNorm = Variable(Tensor(repeating: 1, shape: [c.headDim]))
                attention.keyNorm = Variable(Tensor(repeating: 1, shape: [c.headDim]))
            }
            return LlamaDecoderLayer(inputNorm: Variable(Tensor(repeating: 1, shape: [c.hiddenSize])), attention: attention,
                                     postAttentionNorm: Variable(Tensor(repeating: 1, shape: [c.hiddenSize])), mlp: mlp)
        }
        let head = c.tieWordEmbeddings ? nil : linear("lm_head", c.vocabSize, c.hiddenSize, bias: false)
        try self.init(config: c, embedding: .dense(embedding), layers: layers,
                      norm: Variable(Tensor(repeating: 1, shape: [c.hiddenSize])), lmHead: head)
    }

    // MARK: AdaptableModel

    /// Every projection in model order (layer by layer q, k, v, o, gate, up, down), then lm_head if untied.
    public var adaptedLinears: [AdaptedLinear] { layers.flatMap(\.linears) + (lmHead.map { [$0] } ?? []) }

    public var outputHeadNames: Set<String> { ["lm_head"] }

    // MARK: Module

    /// Dense parameters with Hugging Face names ("model.layers.0.self_attn.q_proj.weight"); quantized weights are
    /// not Float32 parameters and are left out, as is a tied head (it is the embedding).
    public var localParameters: [(String, Variable)] {
        var out: [(String, Variable)] = []
        if case .dense(let e) = embedding { out.append(("model.embed_tokens.weight", e)) }
        func add(_ linear: AdaptedLinear) {
            if let w = linear.denseWeight { out.append((linear.path + ".weight", w)) }
            if let b = linear.bias { out.append((linear.path + ".bias", b)) }
        }
        for (i, layer) in layers.enumerated() {
            out.append(("model.layers.\(i).input_layernorm.weight", layer.inputNorm))
            for l in layer.linears[0..<4] { add(l) }
            if let n = layer.attention.queryNorm { out.append(("model.layers.\(i).self_attn.q_norm.weight", n)) }
            if let n = layer.attention.keyNorm { out.append(("model.layers.\(i).self_attn.k_norm.weight", n)) }
            out.append(("model.layers.\(i).post_attention_layernorm.weight", layer.postAttentionNorm))
            for l in layer.linears[4...] { add(l) }
        }
        out.append(("model.norm.weight", norm))
        if let lmHead { add(lmHead) }
        return out
    }

    public var children: [(String, any Module)] { [] }

    // MARK: Heads

    /// The output head as a frozen dense weight [vocab, hidden] for the chunked training loss: the embedding or
    /// lm_head itself when dense, else a Float32 copy made once (113 MB for a 49152 × 576 head).
    public func denseHeadWeight() -> Variable {
        let base = lmHead?.base ?? embedding
        switch base {
        case .dense(let w): return w
        case .quantized(let q):
            if let cached = denseHeadCache { return cached }
            let w = Variable(q.dequantized(), requiresGrad: false, name: lmHead == nil ? "model.embed_tokens.weight" : "lm_head.weight")
            denseHeadCache = w
            return w
        }
    }

    /// Bytes held by the weights: quantized blocks plus Float32 tensors (embedding, norms, biases, dense matrices).
    public var weightBytes: Int {
        func bytes(_ b: LinearBase) -> Int {
            switch b {
            case .dense(let w): return w.value.count * 4
            case .quantized(let q): return q.byteCount
            }
        }
        var total = bytes(embedding) + norm.value.count * 4
        for layer in layers {
            total += (layer.inputNorm.value.count + layer.postAttentionNorm.value.count) * 4
            total += ((layer.attention.queryNorm?.value.count ?? 0) + (layer.attention.keyNorm?.value.count ?? 0)) * 4
            for l in layer.linears { total += bytes(l.base) + (l.bias?.value.count ?? 0) * 4 }
        }
        if let lmHead { total += bytes(lmHead.base) }
        return total
    }
}
