// The autograd forward pass (training, gradient checks, reference logits) and the causal-LM loss.
// Frozen weights record nothing, so only the adapter parameters and the activations on the way to them are
// kept for backward. Generation uses the no-graph path in LlamaModel+Inference.swift instead.
import Foundation
import TensorCore
import Autograd
import Formats
import PEFT

extension LlamaModel {
    /// Hidden states after the final norm, [B·T, hidden] (row b·T + t is token t of sequence b), for a batch of
    /// equal-length rows of token ids. `rng` drives adapter dropout when `training`.
    public func forward(ids: [[Int32]], training: Bool = false, rng: inout RandomGenerator) throws -> Variable {
        let (batch, length) = try validateBatch(ids)
        let c = config
        var h = try embed(ids.flatMap { $0 })                                     // [B·T, hidden]
        let table = try RotaryTable(start: 0, count: length, dim: c.headDim, theta: c.ropeTheta)
        for layer in layers {
            if recomputesActivations {  // keep only the layer's input; backward runs the layer again
                h = try recomputed([h], rng: &rng) { [self] inputs, rng in
                    try decoderLayer(layer, inputs[0], table: table, batch: batch, length: length, training: training, rng: &rng)
                }
            } else {
                h = try decoderLayer(layer, h, table: table, batch: batch, length: length, training: training, rng: &rng)
            }
        }
        return try rmsNorm(h, weight: norm, eps: c.rmsNormEps)
    }

    /// One decoder layer on the residual stream h [B·T, hidden]: pre-norm attention and SwiGLU MLP, each added back.
    private func decoderLayer(_ layer: LlamaDecoderLayer, _ input: Variable, table: RotaryTable, batch: Int, length: Int,
                              training: Bool, rng: inout RandomGenerator) throws -> Variable {
        let c = config
        var h = input
        let x = try rmsNorm(h, weight: layer.inputNorm, eps: c.rmsNormEps)
        let a = layer.attention
        // [B·T, heads·D] → [B, heads, T, D]
        func heads(_ y: Variable, _ n: Int) -> Variable { permute(reshape(y, [batch, length, n, c.headDim]), [0, 2, 1, 3]) }
        // Qwen 3's q/k norms act on each head's D values: [B·T, n·D] viewed as [B·T·n, D].
        func headNorm(_ y: Variable, _ weight: Variable?, _ n: Int) throws -> Variable {
            guard let weight else { return y }
            return reshape(try rmsNorm(reshape(y, [batch * length * n, c.headDim]), weight: weight, eps: c.rmsNormEps), [batch * length, n * c.headDim])
        }
        let q = try rotaryEmbedding(heads(headNorm(a.qProj.forward(x, rng: &rng, training: training), a.queryNorm, c.headCount), c.headCount), table: table, layout: .halfSplit)
        let k = try rotaryEmbedding(heads(headNorm(a.kProj.forward(x, rng: &rng, training: training), a.keyNorm, c.kvHeadCount), c.kvHeadCount), table: table, layout: .halfSplit)
        let v = heads(a.vProj.forward(x, rng: &rng, training: training), c.kvHeadCount)
        let attended = try scaledDotProductAttention(q: q, k: k, v: v, causal: true)   // [B, heads, T, D]
        let merged = reshape(permute(attended, [0, 2, 1, 3]), [batch * length, c.queryWidth])
        h = add(h, a.oProj.forward(merged, rng: &rng, training: training))
        let y = try rmsNorm(h, weight: layer.postAttentionNorm, eps: c.rmsNormEps)
        let m = layer.mlp
        let gated = swiglu(gate: m.gateProj.forward(y, rng: &rng, training: training), up: m.upProj.forward(y, rng: &rng, training: training))
        return add(h, m.downProj.forward(gated, rng: &rng, training: training))
    }

    /// Logits [B, T, vocab] through the autograd path (every position; use generation for long sequences).
    public func logits(ids: [[Int32]]) throws -> Tensor {
        var rng = RandomGenerator(seed: 0)
        let hidden = try forward(ids: ids, training: false, rng: &rng)
        return try head(hidden, rng: &rng, training: false).value.reshaped([ids.count, ids.first?.count ?? 0, config.vocabSize])
    }

    /// The output head applied to hidden states [N, hidden] → [N, vocab] (with lm_head's adapters if any).
    public func head(_ hidden: Variable, rng: inout RandomGenerator, training: Bool) throws -> Variable {
        outputHead.forward(hidden, rng: &rng, training: training)
    }

    /// Mean causal-LM cross-entropy with Hugging Face semantics: `labels` (default: the ids themselves) are
    /// shifted here, so position t predicts labels[t + 1]; the last position and labels equal to `ignoreIndex`
    /// (−100) count for nothing. The head is applied chunk by chunk (the [tokens, vocab] logits never exist at
    /// once) unless lm_head carries active adapters, which need the full adapted head.
    public func loss(ids: [[Int32]], labels: [[Int32]]? = nil, ignoreIndex: Int32 = -100, training: Bool = true,
                     rng: inout RandomGenerator) throws -> Variable {
        let labels = labels ?? ids
        guard labels.count == ids.count, zip(labels, ids).allSatisfy({ $0.count == $1.count }) else {
            throw ModelError.invalidArgument(name: "labels", reason: "shape \(labels.map(\.count)) differs from ids \(ids.map(\.count))")
        }
        var targets: [Int32] = []
        targets.reserveCapacity(ids.count * (ids.first?.count ?? 0))
        for row in labels { targets += row.dropFirst(); if !row.isEmpty { targets.append(ignoreIndex) } }
        let hidden = try forward(ids: ids, training: training, rng: &rng)
        if let lmHead, !lmHead.adaptersDisabled, lmHead.mergedAdapterNames.isEmpty, !lmHead.activeAdapterNames.isEmpty {
            return try crossEntropy(logits: lmHead.forward(hidden, rng: &rng, training: training), targets: targets, ignoreIndex: ignoreIndex)
        }
        return try linearCrossEntropy(hidden: hidden, weight: denseHeadWeight(), targets: targets, ignoreIndex: ignoreIndex)
    }

    /// (batch, length) after checking the rows are non-empty, equal in length, within the context and in the vocabulary.
    func validateBatch(_ ids: [[Int32]]) throws -> (Int, Int) {
        guard let length = ids.first?.count, length > 0 else {
            throw ModelError.invalidArgument(name: "ids", reason: "need at least one non-empty row")
        }
        if let bad = ids.firstIndex(where: { $0.count != length }) {
            throw ModelError.invalidArgument(name: "ids", reason: "row \(bad) has \(ids[bad].count) tokens, row 0 has \(length); rows must be equal in length")
        }
        guard length <= config.contextLength else { throw ModelError.contextOverflow(tokens: length, contextLength: config.contextLength) }
        try validateTokens(ids.joined())
        return (ids.count, length)
    }

    func validateTokens<S: Sequence>(_ ids: S) throws where S.Element == Int32 {
        for (i, id) in ids.enumerated() where id < 0 || Int(id) >= config.vocabSize {
            throw ModelError.invalidArgument(name: "token id", reason: "\(id) at position \(i) is outside the vocabulary 0..<\(config.vocabSize)")
        }
    }

    /// Embedding rows for `ids` as a Variable [n, hidden] (differentiable for a trainable dense table).
    func embed(_ ids: [Int32]) throws -> Variable {
        switch embedding {
        case .dense(let table): return try Autograd.embedding(ids: ids, table: table)
        case .quantized(let q):
            let d = q.columns
            return Variable(Tensor(shape: [ids.count, d]) { out in
                for (i, id) in ids.enumerated() { q.dequantizeRows(Int(id)..<(Int(id) + 1), into: out.baseAddress! + i * d) }
            })
        }
    }
}
