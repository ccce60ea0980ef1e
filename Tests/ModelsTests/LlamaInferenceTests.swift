// A random tiny Llama (Qwen 2-style q/k/v biases, grouped heads): the KV-cache path against the autograd path,
// token by token across a cache resize, rewinding the cache, the Module view of its weights, and a finite-
// difference check of the loss gradient with respect to a LoRA parameter.
import XCTest
import TensorCore
import Autograd
import NN
import PEFT
import Models
import TestSupport

final class LlamaInferenceTests: XCTestCase {
    static let config = LlamaConfig(vocabSize: 50, hiddenSize: 32, intermediateSize: 48, layerCount: 2, headCount: 4,
                                    kvHeadCount: 2, ropeTheta: 10_000, rmsNormEps: 1e-5, contextLength: 320,
                                    tieWordEmbeddings: false, qkvBias: true)

    func makeModel() throws -> LlamaModel {
        var rng = RandomGenerator(seed: 21)
        let model = try LlamaModel(randomWeights: Self.config, rng: &rng)
        // Non-zero biases and norms so every term is exercised.
        for (name, p) in model.namedParameters() where name.hasSuffix("bias") || name.hasSuffix("norm.weight") || name.hasSuffix("layernorm.weight") {
            p.value = Tensor.add(p.value, rng.normal(p.shape, std: 0.1))
        }
        return model
    }

    /// Prefill of 250 tokens, then 30 single-token steps across the cache's 256 → 512 resize: each step's logits
    /// equal the autograd forward of the whole sequence at that position.
    func testIncrementalDecodingMatchesFullForward() throws {
        let model = try makeModel()
        var rng = RandomGenerator(seed: 4)
        let ids = (0..<280).map { _ in Int32(rng.nextUInt64() % 50) }
        let full = try model.logits(ids: [ids]).reshaped([280, 50])
        let cache = KVCache(config: model.config)
        let prefill = try model.forward(tokens: Array(ids[0..<250]), cache: cache, allLogits: true)
        XCTAssertLessThan(maxAbsDifference(prefill, full.sliced(dimension: 0, range: 0..<250)), 1e-4)
        for t in 250..<280 {
            let step = try model.forward(tokens: [ids[t]], cache: cache)
            XCTAssertLessThan(maxAbsDifference(step, full.sliced(dimension: 0, range: t..<(t + 1)).reshaped([50])), 1e-4, "position \(t)")
        }
        XCTAssertEqual(cache.length, 280)
        XCTAssertEqual(cache.capacity, 320)  // doubled past 256, capped at the context
        XCTAssertEqual(cache.tokens, ids)
        // A prompt longer than one prefill chunk (run as several) gives the same logits.
        model.prefillChunkSize = 64
        let chunked = try model.forward(tokens: ids, cache: KVCache(config: model.config), allLogits: true)
        model.prefillChunkSize = 512
        XCTAssertLessThan(maxAbsDifference(chunked, full), 1e-4)
        // Rewind to 100 and feed a chunk of 5: the same logits as before.
        cache.truncate(to: 100)
        let again = try model.forward(tokens: Array(ids[100..<105]), cache: cache, allLogits: true)
        XCTAssertLessThan(maxAbsDifference(again, full.sliced(dimension: 0, range: 100..<105)), 1e-4)
        // Past the context: a typed error, nothing changed.
        XCTAssertThrowsError(try model.forward(tokens: [Int32](repeating: 1, count: 300), cache: cache)) {
            XCTAssertEqual($0 as? ModelError, .contextOverflow(tokens: 405, contextLength: 320))
        }
        XCTAssertEqual(cache.length, 105)
    }

    func testModuleNamesAndStateDictRoundTrip() throws {
        let model = try makeModel()
        let names = model.namedParameters().map(\.0)
        XCTAssertEqual(names.count, 1 + 2 * 12 + 1 + 1)   // embedding, per layer 2 norms + 7 weights + 3 biases, norm, lm_head
        XCTAssertTrue(names.contains("model.layers.1.self_attn.k_proj.bias"))
        XCTAssertTrue(names.contains("lm_head.weight"))
        let other = try makeModel()
        var rng = RandomGenerator(seed: 99)
        for (_, p) in other.namedParameters() { p.value = rng.normal(p.shape) }
        try other.load(stateDict: model.stateDict())
        let ids: [[Int32]] = [[1, 2, 3, 4]]
        XCTAssertEqual(try other.logits(ids: ids), try model.logits(ids: ids))
    }

    /// ∂loss/∂lora_B of o_proj by central differences (Float64 accumulation is not available, so a loose 2e-2
    /// relative tolerance on the largest entries).
    func testLossGradientMatchesFiniteDifferences() throws {
        let model = try makeModel()
        var rng = RandomGenerator(seed: 8)
        var config = LoRAConfig(r: 2, loraAlpha: 4, targetModules: .names(["o_proj", "down_proj"]))
        config.initialization = .random
        try model.addLoRA(config, rng: &rng)
        let ids: [[Int32]] = [[3, 7, 1, 9, 4, 4], [0, 2, 8, 5, 6, 1]]
        var lossRNG = RandomGenerator(seed: 0)
        let loss = try model.loss(ids: ids, training: false, rng: &lossRNG)
        loss.backward()
        let (name, b) = model.adapterParameters("default").first { $0.0.hasSuffix("layers.0.self_attn.o_proj.lora_B.weight") }!
        let grad = try XCTUnwrap(b.grad, name)
        let h: Float = 1e-2
        for i in [0, 5, 17, 40] {
            let original = b.value[flat: i]
            b.value[flat: i] = original + h
            let up = try model.loss(ids: ids, training: false, rng: &lossRNG).value.scalarValue
            b.value[flat: i] = original - h
            let down = try model.loss(ids: ids, training: false, rng: &lossRNG).value.scalarValue
            b.value[flat: i] = original
            let numeric = (up - down) / (2 * h)
            XCTAssertEqual(grad[flat: i], numeric, accuracy: 2e-2 * max(abs(numeric), 1e-2), "\(name)[\(i)]")
        }
    }
}
