import Autograd
import PEFT
import TensorCore
import Training

/// A small stand-in for a real language model: frozen embedding → two adaptable projections with a SiLU and a
/// residual → tied output head via the chunked `linearCrossEntropy`. Tokens do not see each other, so padding
/// cannot change a real token's loss.
final class TinyLanguageModel: TrainableLanguageModel {
    let embedding: Variable  // [vocab, dim], frozen and tied to the output head
    let qProj: AdaptedLinear  // model.layers.0.self_attn.q_proj [dim, dim]
    let vProj: AdaptedLinear  // model.layers.0.self_attn.v_proj [dim, dim]
    /// Returns a NaN loss on this (1-based) call of `loss(batch:…)`, to test the non-finite stop.
    var nanOnCall: Int?
    private(set) var calls = 0
    var recomputesActivations = false

    init(vocabulary: Int = 64, dimension: Int = 16, seed: UInt64 = 7) {
        var rng = RandomGenerator(seed: seed)
        embedding = Variable(rng.normal([vocabulary, dimension], std: 0.5), name: "model.embed_tokens.weight")
        let bound = 1 / Float(dimension).squareRoot()
        qProj = AdaptedLinear(path: "model.layers.0.self_attn.q_proj", weight: Variable(rng.uniform([dimension, dimension], low: -bound, high: bound)))
        vProj = AdaptedLinear(path: "model.layers.0.self_attn.v_proj", weight: Variable(rng.uniform([dimension, dimension], low: -bound, high: bound)))
    }

    var adaptedLinears: [AdaptedLinear] { [qProj, vProj] }

    func loss(batch: TokenBatch, training: Bool, rng: inout RandomGenerator) throws -> Variable {
        calls += 1
        if calls == nanOnCall { return Variable(.scalar(.nan)) }
        let x = try Autograd.embedding(ids: batch.inputIDs, table: embedding)  // [rows·length, dim]
        let block = { [qProj, vProj] (inputs: [Variable], rng: inout RandomGenerator) throws -> Variable in
            let h = silu(qProj.forward(inputs[0], rng: &rng, training: training))
            return add(inputs[0], vProj.forward(h, rng: &rng, training: training))
        }
        let y = recomputesActivations ? try recomputed([x], rng: &rng, block) : try block([x], &rng)
        return try linearCrossEntropy(hidden: y, weight: embedding, targets: batch.targets, chunkRows: 16)
    }
}
