// Issue 4 fidelity: a 20-step PyTorch + PEFT training run (fixture peft/llama_lora/curve.*) reproduced with the
// trainer's building blocks: the model's batch loss (`TrainableLanguageModel.loss(batch:)`), global-norm
// clipping and AdamW (lr 1e-2, betas 0.9/0.999, eps 1e-8, weight decay 0.01, constant lr, clip 1.0, dropout 0).
import XCTest
import TensorCore
import Autograd
import NN
import Formats
import PEFT
import Models
import Training
import TestSupport

final class LoRACurveParityTests: XCTestCase {
    struct Curve: Decodable {
        let losses: [Float]
        let grad_norm_before_clip: [Float]
    }

    func testTwentyStepLossCurveMatchesPEFT() throws {
        let curve = try JSONDecoder().decode(Curve.self, from: Data(contentsOf: Fixtures.url("peft/llama_lora/curve.json")))
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("peft/llama_lora/curve.safetensors"))
        let info = try file.info("batches")
        XCTAssertEqual(info.shape, [20, 4, 16])
        let ids = try file.int32s("batches")
        XCTAssertEqual(curve.losses.count, 20)

        let model = try ModelLoader.load(Fixtures.url("peft/base_llama")).model
        try AdapterFiles.loadLoRA(into: model, from: Fixtures.url("peft/llama_lora/adapter"))
        let parameters = model.adapterParameters("default")
        XCTAssertEqual(parameters.count, 8)
        let optimizer = try AdamW(parameters: parameters, learningRate: 1e-2, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01)
        var rng = RandomGenerator(seed: 0)
        var worstLoss: Float = 0, worstNorm: Float = 0
        for step in 0..<20 {
            // input_ids = labels: every one of the 4 × 15 shifted positions is a target.
            let rows = (0..<4).map { r -> [TokenizedExample] in
                let start = (step * 4 + r) * 16
                let row = Array(ids[start..<(start + 16)])
                return [TokenizedExample(ids: row, labels: row)]
            }
            let batch = TokenBatch(rows: rows, paddingID: 0)
            XCTAssertEqual(batch.targetCount, 60)
            optimizer.zeroGrad()
            let loss = try model.loss(batch: batch, training: true, rng: &rng)
            loss.backward()
            let norm = clipGradNorm(parameters.map(\.1), maxNorm: 1.0)
            optimizer.step()
            let lossError = abs(loss.value.scalarValue - curve.losses[step]) / abs(curve.losses[step])
            let normError = abs(norm - curve.grad_norm_before_clip[step]) / curve.grad_norm_before_clip[step]
            worstLoss = max(worstLoss, lossError); worstNorm = max(worstNorm, normError)
            XCTAssertLessThan(lossError, 1e-4, "step \(step): loss \(loss.value.scalarValue) vs \(curve.losses[step])")
            XCTAssertLessThan(normError, 1e-4, "step \(step): grad norm \(norm) vs \(curve.grad_norm_before_clip[step])")
        }
        // The final adapter weights after 20 updates.
        var worstWeight: Float = 0
        for (name, p) in parameters {
            let expected = try file.tensor("final." + name.replacingOccurrences(of: ".weight", with: ".default.weight"))
            let scale = expected.array.map(abs).max() ?? 1
            worstWeight = max(worstWeight, maxAbsDifference(p.value, expected) / scale)
        }
        XCTAssertLessThan(worstWeight, 1e-4)
        print(String(format: "curve parity: max rel. loss error %.2e, grad norm %.2e, final weights %.2e (of max |w|)",
                     worstLoss, worstNorm, worstWeight))
    }
}
