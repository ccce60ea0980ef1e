// The decoder families beyond plain Llama, against transformers (fixtures from scripts/reference/make_family_fixtures.py):
// Llama with attention and MLP biases, Mistral, Qwen 2 (q/k/v biases, tied head), Qwen 3 (per-head q/k RMSNorm,
// head_dim ≠ hidden/heads). Each loads from its Hugging Face directory and from a GGUF laid out as llama.cpp's
// converter does (q/k rows permuted for architecture llama only), gives transformers' logits, generates
// transformers' greedy tokens through the KV-cache path, and trains: LoRA gradients match finite differences.
import XCTest
import Foundation
import TensorCore
import Autograd
import Formats
import PEFT
import Models
import TestSupport

final class ModelFamilyTests: XCTestCase {
    static let families = ["llama_bias": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3"]

    struct Reference { let ids: [[Int32]]; let logits: Tensor; let greedy: [Int32] }

    func reference(_ family: String) throws -> Reference {
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("families/\(family)/reference.safetensors"))
        let ids = try file.int64s("ids").map { Int32($0) }, width = try file.info("ids").shape[1]
        let rows = stride(from: 0, to: ids.count, by: width).map { Array(ids[$0..<($0 + width)]) }
        return Reference(ids: rows, logits: try file.tensor("logits"), greedy: try file.int64s("greedy").map { Int32($0) })
    }

    func models(_ family: String) throws -> [(String, LlamaModel)] {
        [("hf", try ModelLoader.load(Fixtures.url("families/\(family)/hf")).model),
         ("gguf", try ModelLoader.load(Fixtures.url("families/\(family)/model.gguf")).model)]
    }

    func testLogitsMatchTransformers() throws {
        for (family, arch) in Self.families.sorted(by: { $0.key < $1.key }) {
            let ref = try reference(family)
            for (kind, model) in try models(family) {
                XCTAssertEqual(model.config.architecture, arch, "\(family) \(kind)")
                XCTAssertEqual(model.config.queryKeyNorm, family == "qwen3", "\(family) \(kind)")
                let logits = try model.logits(ids: ref.ids)
                XCTAssertLessThan(maxAbsDifference(logits, ref.logits), 1e-4, "\(family) \(kind)")
            }
        }
    }

    func testGreedyGenerationThroughTheCacheMatchesTransformers() throws {
        for family in Self.families.keys.sorted() {
            let ref = try reference(family)
            for (kind, model) in try models(family) {
                let cache = KVCache(config: model.config)
                var tokens = Array(ref.greedy.prefix(4))
                var logits = try model.forward(tokens: tokens, cache: cache)
                while tokens.count < ref.greedy.count {
                    let next = Int32(logits.array.indices.max { logits[flat: $0] < logits[flat: $1] }!)
                    tokens.append(next)
                    logits = try model.forward(tokens: [next], cache: cache)
                }
                XCTAssertEqual(tokens, ref.greedy, "\(family) \(kind)")
            }
        }
    }

    /// LoRA on every projection of the families with new paths (biases, q/k norms): the backward through them
    /// matches central differences of the loss.
    func testLoRAGradientsMatchFiniteDifferences() throws {
        for family in ["llama_bias", "qwen3", "qwen2"] {
            let model = try ModelLoader.load(Fixtures.url("families/\(family)/model.gguf")).model
            var rng = RandomGenerator(seed: 11)
            var config = LoRAConfig(r: 2, loraAlpha: 4, targetModules: .allLinear)
            config.initialization = .random   // B ≠ 0, so gradients reach A as well
            _ = try model.addLoRA(config, rng: &rng)
            let params = model.adapterParameters("default").filter { $0.0.contains("layers.0.self_attn.q_proj") || $0.0.contains("layers.1.self_attn.k_proj") }
            XCTAssertEqual(params.count, 4)
            let ids = try reference(family).ids
            let error = GradientCheck.maxRelativeError(inputs: params.map(\.1), epsilon: 1e-2) { _ in
                var r = RandomGenerator(seed: 0)
                return try! model.loss(ids: ids, training: false, rng: &r)
            }
            XCTAssertLessThan(error, 2e-2, family)
        }
    }
}
