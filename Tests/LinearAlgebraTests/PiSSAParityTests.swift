import XCTest
import TensorCore
import TestSupport
import LinearAlgebra

/// Golden parity with torch.linalg.svd through PEFT's PiSSA initialisation (fixtures/peft/llama_pissa, r = 4,
/// alpha = 8, so scale s = 2): lora_B = U_r·√(S_r/s), lora_A = √(S_r/s)·V_rᵀ of the base q/v projection weights.
final class PiSSAParityTests: XCTestCase {
    func testTruncatedSVDMatchesPEFTPiSSAFactors() throws {
        let base = try SafetensorsFixture.load(Fixtures.url("peft/base_llama/model.safetensors"))
        let io = try SafetensorsFixture.load(Fixtures.url("peft/llama_pissa/io.safetensors"))
        let scale: Float = 2, rank = 4
        var flippedPairs = 0
        for layer in 0..<2 { for projection in ["q_proj", "v_proj"] {
            let name = "model.layers.\(layer).self_attn.\(projection)"
            let weight = try XCTUnwrap(base[name + ".weight"])
            let loraA = try XCTUnwrap(io["init.\(name).lora_A.default.weight"])   // [r, in]
            let loraB = try XCTUnwrap(io["init.\(name).lora_B.default.weight"])   // [out, r]
            let factors = try truncatedSVD(weight, rank: rank)
            // Sign-free check: the principal rank-r part s·B·A equals a·b.
            let torchPart = Tensor.matmul(loraB, loraA, alpha: scale)
            let difference = maxAbsDifference(factors.product(), torchPart)
            XCTAssertLessThan(difference, 2e-6, name)
            print("PiSSA parity \(name): max |a·b − s·B·A| = \(difference)")
            // Singular values: ‖B[:, j]‖² = σ_j / s.
            for j in 0..<rank {
                let columnEnergy = TestMatrices.column(loraB, j).reduce(0) { $0 + $1 * $1 }
                XCTAssertEqual(factors.singularValues[j], columnEnergy * scale, accuracy: 1e-5 * factors.singularValues[0], "\(name) σ\(j)")
            }
            // Factors agree with torch's up to one sign per singular pair (a = √s·B, b = √s·A).
            for j in 0..<rank {
                let ours = TestMatrices.column(factors.a, j), theirs = TestMatrices.column(loraB, j).map { $0 * scale.squareRoot() }
                let sign: Float = zip(ours, theirs).reduce(0) { $0 + $1.0 * $1.1 } >= 0 ? 1 : -1
                if sign < 0 { flippedPairs += 1 }
                for (x, y) in zip(ours, theirs) { XCTAssertEqual(x, sign * y, accuracy: 2e-5, "\(name) a[:, \(j)]") }
                for c in 0..<weight.shape[1] {
                    XCTAssertEqual(factors.b[j, c], sign * loraA[j, c] * scale.squareRoot(), accuracy: 2e-5, "\(name) b[\(j), :]")
                }
            }
        } }
        print("PiSSA parity: \(flippedPairs) of 16 singular pairs have the opposite sign to torch's")
    }
}
