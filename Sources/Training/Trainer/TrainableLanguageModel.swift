// What the trainer needs from a model: adapters to train (PEFT's `AdaptableModel`) and a loss on a batch.
// Model families conform in their own file (e.g. LlamaModel+Trainable.swift), so the trainer knows no family.
import Autograd
import PEFT
import TensorCore

/// A language model the `Trainer` can fine-tune through adapters.
public protocol TrainableLanguageModel: AdaptableModel {
    /// Mean cross-entropy over the batch's targets (`batch.targets`, −100 ignored; 0 when there are none), as a
    /// scalar whose backward reaches the adapter parameters. The model must form logits chunk by chunk
    /// (`linearCrossEntropy`), never the full [tokens, vocabulary] matrix. `training` turns dropout on; `rng`
    /// drives it, and must advance the same way for the same batch so runs and resumed runs agree bit for bit.
    func loss(batch: TokenBatch, training: Bool, rng: inout RandomGenerator) throws -> Variable
    /// Activation recomputation: keep only each layer's input in forward and run the layer again in backward
    /// (the same gradients for about one more forward pass of compute and a fraction of the activation memory).
    var recomputesActivations: Bool { get set }
}
