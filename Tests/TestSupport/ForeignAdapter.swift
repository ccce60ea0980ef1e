// An adapter made for another model: the "adapter whose shapes do not fit the model" case of the bad-input tests.
import Foundation
import Models
import PEFT
import TensorCore

/// Saves to `directory` a LoRA adapter (r 4, α 8, on q_proj and v_proj) of a random Llama with hidden size 32 and
/// base_llama's module names: every tensor is named as base_llama expects but sized for 32 inputs, not 64.
public func writeAdapterOfNarrowerLlama(to directory: URL, seed: UInt64) throws {
    var rng = RandomGenerator(seed: seed)
    let small = try LlamaModel(randomWeights: LlamaConfig(vocabSize: 256, hiddenSize: 32, intermediateSize: 64, layerCount: 2,
                                                          headCount: 4, kvHeadCount: 2), rng: &rng)
    let config = LoRAConfig(r: 4, loraAlpha: 8, targetModules: .names(["q_proj", "v_proj"]))
    try small.addLoRA(config, rng: &rng)
    try AdapterFiles.saveLoRA(small, config: config, to: directory)
}
