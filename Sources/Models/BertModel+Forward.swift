// The BERT forward pass through autograd (training, gradient checks, embeddings): frozen weights record
// nothing, so only adapter parameters and the activations leading to them are kept for backward.
import Foundation
import TensorCore
import Autograd
import PEFT

/// A batch of encoder inputs: rows of equal length, right-padded.
public struct EncoderBatch: Sendable {
    /// [rows][length] token ids, token type ids and the 0/1 attention mask.
    public var ids: [[Int32]], typeIDs: [[Int32]], attentionMask: [[Int32]]
    public var rows: Int { ids.count }
    public var length: Int { ids.first?.count ?? 0 }

    /// Type ids default to 0 and the mask to all ones.
    public init(ids: [[Int32]], typeIDs: [[Int32]]? = nil, attentionMask: [[Int32]]? = nil) {
        self.ids = ids
        self.typeIDs = typeIDs ?? ids.map { $0.map { _ in 0 } }
        self.attentionMask = attentionMask ?? ids.map { $0.map { _ in 1 } }
    }

    /// The mask as a [rows, length] Float tensor.
    public var maskTensor: Tensor { Tensor(attentionMask.flatMap { $0.map(Float.init) }, shape: [rows, length]) }
}

extension BertModel {
    /// Last hidden states [rows·length, hidden] (row b·T + t is token t of sequence b). Padded keys are masked out of
    /// every attention; padded positions still get (unused) hidden states, as in Hugging Face.
    public func forward(_ batch: EncoderBatch, training: Bool = false, rng: inout RandomGenerator) throws -> Variable {
        let (rows, length) = try validate(batch)
        let c = config
        var positions = [Int32](repeating: 0, count: rows * length)
        for r in 0..<rows { for t in 0..<length { positions[r * length + t] = Int32(t) } }
        let words = try embedding(ids: batch.ids.flatMap { $0 }, table: wordEmbeddings)
        let summed = add(add(words, try embedding(ids: positions, table: positionEmbeddings)),
                         try embedding(ids: batch.typeIDs.flatMap { $0 }, table: tokenTypeEmbeddings))
        var h = try layerNorm(summed, weight: embeddingNorm.weight, bias: embeddingNorm.bias, eps: c.layerNormEps)
        let mask = try additiveKeyPaddingMask(fromAttentionMask: batch.maskTensor)
        for layer in layers {
            if recomputesActivations {
                h = try recomputed([h], rng: &rng) { [self] inputs, rng in
                    try encoderLayer(layer, inputs[0], mask: mask, rows: rows, length: length, training: training, rng: &rng)
                }
            } else {
                h = try encoderLayer(layer, h, mask: mask, rows: rows, length: length, training: training, rng: &rng)
            }
        }
        return h
    }

    /// One post-LN encoder layer on h [B·T, hidden].
    func encoderLayer(_ layer: BertLayer, _ h: Variable, mask: Tensor, rows: Int, length: Int, training: Bool,
                      rng: inout RandomGenerator) throws -> Variable {
        let c = config
        // [B·T, hidden] → [B, heads, T, D]
        func heads(_ y: Variable) -> Variable { permute(reshape(y, [rows, length, c.headCount, c.headDim]), [0, 2, 1, 3]) }
        let q = heads(layer.query.forward(h, rng: &rng, training: training))
        let k = heads(layer.key.forward(h, rng: &rng, training: training))
        let v = heads(layer.value.forward(h, rng: &rng, training: training))
        let attended = try scaledDotProductAttention(q: q, k: k, v: v, causal: false, keyPaddingMask: mask)
        let merged = reshape(permute(attended, [0, 2, 1, 3]), [rows * length, c.hiddenSize])
        let a = layer.attentionOutput.forward(merged, rng: &rng, training: training)
        let x = try layerNorm(add(a, h), weight: layer.attentionNorm.weight, bias: layer.attentionNorm.bias, eps: c.layerNormEps)
        let inner = activation(layer.intermediate.forward(x, rng: &rng, training: training))
        let o = layer.output.forward(inner, rng: &rng, training: training)
        return try layerNorm(add(o, x), weight: layer.outputNorm.weight, bias: layer.outputNorm.bias, eps: c.layerNormEps)
    }

    func activation(_ x: Variable) -> Variable {
        switch config.activation {
        case "relu": return relu(x)
        case "gelu_new", "gelu_pytorch_tanh": return gelu(x, approximation: .tanh)
        default: return gelu(x)
        }
    }

    /// BertPooler: tanh(dense(h[CLS])) → [rows, hidden]. Throws when the checkpoint has no pooler.
    public func pooled(_ hidden: Variable, rows: Int, length: Int, training: Bool, rng: inout RandomGenerator) throws -> Variable {
        guard let pooler else { throw ModelError.missingTensor(file: "BertModel", tensor: prefix + "pooler.dense.weight") }
        let first = try embedding(ids: (0..<rows).map { Int32($0 * length) }, table: hidden)  // row 0 of each sequence
        return tanh(pooler.forward(first, rng: &rng, training: training))
    }

    /// Sentence embeddings [rows, hidden]: the mean of the unpadded hidden states, then (when `normalize`) unit L2
    /// norm, as sentence-transformers' Pooling(mean) + Normalize.
    public func sentenceEmbeddings(_ batch: EncoderBatch, normalize: Bool = true, training: Bool = false,
                                   rng: inout RandomGenerator) throws -> Variable {
        let hidden = try forward(batch, training: training, rng: &rng)
        let pooled = try maskedMeanPool(hidden, mask: batch.maskTensor)
        return normalize ? try l2Normalize(pooled) : pooled
    }

    /// (rows, length) after checking shapes, ids, type ids and the mask.
    func validate(_ batch: EncoderBatch) throws -> (Int, Int) {
        guard let length = batch.ids.first?.count, length > 0 else {
            throw ModelError.invalidArgument(name: "ids", reason: "need at least one non-empty row")
        }
        guard length <= config.maxPositions else { throw ModelError.contextOverflow(tokens: length, contextLength: config.maxPositions) }
        for (name, table) in [("ids", batch.ids), ("token type ids", batch.typeIDs), ("attention mask", batch.attentionMask)] {
            guard table.count == batch.ids.count else {
                throw ModelError.invalidArgument(name: name, reason: "\(table.count) rows for \(batch.ids.count) rows of ids")
            }
            if let bad = table.firstIndex(where: { $0.count != length }) {
                throw ModelError.invalidArgument(name: name, reason: "row \(bad) has \(table[bad].count) entries, row 0 of ids has \(length)")
            }
        }
        for (r, row) in batch.ids.enumerated() {
            if let t = row.firstIndex(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
                throw ModelError.invalidArgument(name: "token id", reason: "\(row[t]) at row \(r), position \(t) is outside the vocabulary 0..<\(config.vocabSize)")
            }
        }
        for (r, row) in batch.typeIDs.enumerated() {
            if let t = row.firstIndex(where: { $0 < 0 || Int($0) >= config.typeVocabSize }) {
                throw ModelError.invalidArgument(name: "token type id", reason: "\(row[t]) at row \(r), position \(t) is outside 0..<\(config.typeVocabSize)")
            }
        }
        for (r, row) in batch.attentionMask.enumerated() {
            guard row.allSatisfy({ $0 == 0 || $0 == 1 }) else { throw ModelError.invalidArgument(name: "attention mask", reason: "row \(r) has values other than 0 and 1") }
            guard row.contains(1) else { throw ModelError.invalidArgument(name: "attention mask", reason: "row \(r) masks every token") }
        }
        return (batch.ids.count, length)
    }
}
