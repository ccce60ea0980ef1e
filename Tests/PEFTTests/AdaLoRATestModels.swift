import Foundation
import TensorCore
import Autograd
import Formats
import PEFT
import TestSupport

/// The attention projections of the fixture Llama (`base_llama`) as a flat model: every linear that PEFT's
/// llama_adalora adapter targets, with Hugging Face paths, so adapter files and merged weights can be checked
/// without the full transformer.
final class LlamaProjections: AdaptableModel {
    let adaptedLinears: [AdaptedLinear]

    init() throws {
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("peft/base_llama/model.safetensors"))
        adaptedLinears = try (0..<2).flatMap { layer in
            try ["q_proj", "k_proj", "v_proj", "o_proj"].map { name in
                let path = "model.layers.\(layer).self_attn.\(name)"
                return AdaptedLinear(path: path, weight: Variable(try file.tensor(path + ".weight")))
            }
        }
    }

    /// Each projection applied to the same input x [tokens, 64], outputs concatenated along the features.
    func outputs(_ x: Tensor) -> Tensor {
        var rng = RandomGenerator(seed: 0)
        return Tensor.concat(adaptedLinears.map { $0.forward(Variable(x), rng: &rng, training: false).value }, dimension: 1)
    }
}

/// Fills every AdaLoRA parameter's gradient with seeded noise, as a backward pass would.
func fillGradients(_ modules: [(path: String, branch: AdaLoRABranch)], rng: inout RandomGenerator) {
    for (_, b) in modules { for p in [b.a, b.e, b.b] { p.grad = rng.normal(p.shape) } }
}
