// LlamaModel as a `TrainableLanguageModel`: a `TokenBatch` becomes the rows of ids and HF labels its loss takes.
// The batch's targets are already shifted (position t → labels[t + 1] of the same example); the model shifts its
// labels itself, so it gets labels[0] = −100, labels[t + 1] = targets[t]: the same targets, packing masks included.
// Right padding needs no attention mask under causal attention: real tokens never see the padding after them.
import Autograd
import Models
import TensorCore

extension LlamaModel: TrainableLanguageModel {
    public func loss(batch: TokenBatch, training: Bool, rng: inout RandomGenerator) throws -> Variable {
        let n = batch.length
        let ids = (0..<batch.rows).map { Array(batch.inputIDs[($0 * n)..<($0 * n + n)]) }
        let labels = (0..<batch.rows).map { [ignoredLabel] + batch.targets[($0 * n)..<($0 * n + n - 1)] }
        return try loss(ids: ids, labels: labels, ignoreIndex: ignoredLabel, training: training, rng: &rng)
    }
}
