// Issue 5, fidelity: LoRAKit's AdaLoRA training loop against PEFT's on the tiny Llama, from identical initial
// A/E/B on identical batches (golden trace from scripts/reference/make_adalora_trace.py): the loss with the
// orthogonal regulariser, every triplet score, the budget and the kept-triplet pattern after every step, and the
// final adapter.
import XCTest
import TensorCore
import Autograd
import NN
import Formats
import PEFT
import Models
import TestSupport

final class AdaLoRAAllocatorFidelityTests: XCTestCase {
    struct Step: Decodable { let step: Int; let loss: Double; let budget: Int; let rank_pattern: [String: [Bool]]? }
    struct Trace: Decodable { let steps: [Step] }

    /// max |a − b| / max |b|.
    func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
        maxAbsDifference(a, b) / max(b.array.map(abs).max() ?? 0, .leastNormalMagnitude)
    }

    func testRankAllocationFollowsPEFTStepByStep() throws {
        let dir = Fixtures.url("peft/llama_adalora_trace")
        let trace = try JSONDecoder().decode(Trace.self, from: Data(contentsOf: dir.appendingPathComponent("trace.json")))
        let golden = try SafeTensorsFile(contentsOf: dir.appendingPathComponent("trace.safetensors"))
        let model = try ModelLoader.load(Fixtures.url("peft/base_llama")).model
        var config = AdaLoRAConfig(initR: 6, targetR: 2, tinit: 2, tfinal: 3, deltaT: 2, totalStep: 12, loraAlpha: 8,
                                   targetModules: .names(["q_proj", "v_proj"]))
        config.orthRegWeight = 0.5
        var rng = RandomGenerator(seed: 0)
        try model.addAdaLoRA(config, rng: &rng)
        let allocator = try RankAllocator(model: model, config: config)
        for (path, branch) in allocator.modules {
            branch.a.value = try golden.tensor("init.\(path).lora_A")
            branch.e.value = try golden.tensor("init.\(path).lora_E")
            branch.b.value = try golden.tensor("init.\(path).lora_B")
        }
        let ids = try golden.int32s("batches")  // [12, 2, 8]
        let optimizer = try AdamW(parameters: model.adapterParameters("default"), learningRate: 1e-2, weightDecay: 0.01)
        var worstScore: Float = 0, worstE: Float = 0, worstLoss = 0.0
        for expected in trace.steps {
            let t = expected.step
            let batch = (0..<2).map { Array(ids[(t * 16 + $0 * 8)..<(t * 16 + $0 * 8 + 8)]) }
            optimizer.zeroGrad()
            let loss = add(try model.loss(ids: batch, training: true, rng: &rng), try XCTUnwrap(allocator.regularizationLoss()))
            worstLoss = max(worstLoss, abs(Double(loss.value.scalarValue) - expected.loss) / expected.loss)
            loss.backward()
            optimizer.step()
            let report = try allocator.update(step: t)
            XCTAssertEqual(report.budget, expected.budget, "step \(t)")
            XCTAssertEqual(allocator.config.rankPattern.map { Dictionary(uniqueKeysWithValues: $0.map { (String($0.key.dropLast(7)), $0.value) }) },
                           expected.rank_pattern, "kept triplets after step \(t)")
            if t < config.finalStep {
                for (i, (path, _)) in allocator.modules.enumerated() {
                    let ref = try golden.tensor("scores.\(t).\(path)")
                    worstScore = max(worstScore, relativeError(Tensor(allocator.tripletScores()[i], shape: ref.shape), ref))
                }
            }
            for (path, branch) in allocator.modules {
                let ref = try golden.tensor("E.\(t).\(path)")
                worstE = max(worstE, maxAbsDifference(branch.e.value.reshaped(ref.shape), ref))
                // Masked entries are exactly zero on both sides.
                for k in 0..<ref.count where ref[flat: k] == 0 { XCTAssertEqual(branch.e.value[flat: k], 0, "step \(t) \(path) E[\(k)]") }
            }
        }
        XCTAssertLessThan(worstLoss, 1e-6)
        XCTAssertLessThan(worstScore, 1e-4, "triplet scores (relative to the module's largest)")
        XCTAssertLessThan(worstE, 1e-6)
        for (path, branch) in allocator.modules {
            for (name, v) in [("lora_A", branch.a), ("lora_E", branch.e), ("lora_B", branch.b)] {
                XCTAssertLessThan(maxAbsDifference(v.value, try golden.tensor("final.\(path).\(name)")), 1e-5, "\(path).\(name)")
            }
        }
        XCTAssertEqual(allocator.currentRanks.map(\.rank), [0, 2, 0, 6])  // q0, v0, q1, v1 as in trace.json
        print("AdaLoRA fidelity: max rel loss error \(worstLoss), max rel score error \(worstScore), max |ΔE| \(worstE)")
    }
}
