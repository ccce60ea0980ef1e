// Sentence-embedding ops: values against closed forms and finite-difference gradients.
import XCTest
import TensorCore
import Autograd
import TestSupport

final class PoolingOpsTests: XCTestCase {
    func testTanhValuesAndGradient() {
        let x = parameter([3, 7], seed: 1, scale: 1.5)
        let y = tanh(x)
        for i in 0..<x.value.count { XCTAssertEqual(y.value[flat: i], Foundation.tanh(x.value[flat: i]), accuracy: 1e-6) }
        XCTAssertLessThan(gradientError([x], epsilon: 1e-2) { tanh($0[0]) }, 5e-4)
    }

    func testMaskedMeanPoolAveragesOnlyRealTokens() throws {
        let h = parameter([2 * 4, 5], seed: 2)
        let mask = Tensor([1, 1, 1, 0, 1, 0, 0, 0], shape: [2, 4])
        let pooled = try maskedMeanPool(h, mask: mask)
        XCTAssertEqual(pooled.shape, [2, 5])
        for e in 0..<5 {
            XCTAssertEqual(pooled.value[0, e], (h.value[0, e] + h.value[1, e] + h.value[2, e]) / 3, accuracy: 1e-6)
            XCTAssertEqual(pooled.value[1, e], h.value[4, e], accuracy: 1e-6)
        }
        XCTAssertLessThan(gradientError([h], epsilon: 1e-2) { try! maskedMeanPool($0[0], mask: mask) }, 5e-4)
        // Padded rows get no gradient at all.
        h.zeroGrad()
        try maskedMeanPool(h, mask: mask).backward(seed: Tensor(repeating: 1, shape: [2, 5]))
        for row in [3, 5, 6, 7] { for e in 0..<5 { XCTAssertEqual(h.grad![row, e], 0) } }
        XCTAssertThrowsError(try maskedMeanPool(h, mask: Tensor(zeros: [3, 4])))
    }

    func testL2NormalizeUnitRowsAndGradient() throws {
        let x = parameter([4, 6], seed: 3)
        let y = try l2Normalize(x)
        for r in 0..<4 {
            var s: Float = 0
            for e in 0..<6 { s += y.value[r, e] * y.value[r, e] }
            XCTAssertEqual(s, 1, accuracy: 1e-5)
        }
        XCTAssertLessThan(gradientError([x], epsilon: 1e-2) { try! l2Normalize($0[0]) }, 5e-4)
        // A zero row stays zero (clamped norm) and its gradient is finite.
        let zero = Variable(Tensor(zeros: [1, 3]), requiresGrad: true)
        let z = try l2Normalize(zero)
        XCTAssertEqual(z.value, Tensor(zeros: [1, 3]))
        z.backward(seed: Tensor([1, 2, 3], shape: [1, 3]))
        XCTAssertTrue(zero.grad!.withUnsafeBufferPointer { $0.allSatisfy(\.isFinite) })
    }

    /// The composite of an embedding loss: pool → normalise → cosine scores → cross-entropy over the batch.
    func testPoolNormalizeContrastiveCompositeGradient() throws {
        let a = parameter([3 * 4, 5], seed: 4), p = parameter([3 * 4, 5], seed: 5)
        let mask = Tensor([1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0], shape: [3, 4])
        let error = GradientCheck.maxRelativeError(inputs: [a, p], epsilon: 1e-2) { v in
            let ea = try! l2Normalize(maskedMeanPool(v[0], mask: mask)), ep = try! l2Normalize(maskedMeanPool(v[1], mask: mask))
            return try! crossEntropy(logits: scale(matmul(ea, ep, transposeB: true), by: 20), targets: [0, 1, 2])
        }
        XCTAssertLessThan(error, 2e-3)
    }
}
