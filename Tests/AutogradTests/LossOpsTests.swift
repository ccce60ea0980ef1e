import XCTest
import Autograd
import TensorCore
import TestSupport

final class LossOpsTests: XCTestCase {
    func testCrossEntropyByHandWithIgnoredRow() throws {
        // Row 0: logits [1, 2, 3], target 2 → log(e¹+e²+e³) − 3 = 0.40760596 (python3 math).
        // Row 1 ignored; row 2: uniform logits, target 0 → log 3.
        let logits = Variable(Tensor([1, 2, 3, 5, 5, 5, 0, 0, 0], shape: [3, 3]), requiresGrad: true)
        let loss = try crossEntropy(logits: logits, targets: [2, -100, 0])
        XCTAssertEqual(loss.value.scalarValue, Float((0.40760596444438013 + log(3.0)) / 2), accuracy: 1e-6)
        loss.backward()
        let g = logits.grad!
        XCTAssertEqual(g[0, 0], 0.09003057317038046 / 2, accuracy: 1e-6)
        XCTAssertEqual(g[0, 2], (0.6652409557748219 - 1) / 2, accuracy: 1e-6)
        XCTAssertEqual([g[1, 0], g[1, 1], g[1, 2]], [0, 0, 0])
        XCTAssertEqual(g[2, 0], (1.0 / 3 - 1) / 2, accuracy: 1e-6)
    }

    func testCrossEntropyAllIgnoredIsZeroNotNaN() throws {
        let logits = Variable(Tensor([1, 2, 3, 4], shape: [2, 2]), requiresGrad: true)
        let loss = try crossEntropy(logits: logits, targets: [-100, -100])
        XCTAssertEqual(loss.value.scalarValue, 0)
        loss.backward()
        XCTAssertEqual(logits.grad!.array, [0, 0, 0, 0])
        let fused = try linearCrossEntropy(hidden: parameter([2, 3], seed: 1), weight: parameter([4, 3], seed: 2),
                                           targets: [7, 7], ignoreIndex: 7)
        XCTAssertEqual(fused.value.scalarValue, 0)
    }

    func testCrossEntropyRejectsBadTargets() {
        let logits = Variable(Tensor(zeros: [2, 3]))
        XCTAssertThrowsError(try crossEntropy(logits: logits, targets: [0, 3])) { error in
            XCTAssertTrue("\(error)".contains("target 3 at row 1"), "\(error)")
        }
        XCTAssertThrowsError(try crossEntropy(logits: logits, targets: [0]))
        XCTAssertThrowsError(try linearCrossEntropy(hidden: Variable(Tensor(zeros: [2, 4])), weight: Variable(Tensor(zeros: [3, 4])),
                                                    targets: [0, -5]))
        XCTAssertThrowsError(try linearCrossEntropy(hidden: Variable(Tensor(zeros: [2, 4])), weight: Variable(Tensor(zeros: [3, 5])),
                                                    targets: [0, 1]))
    }

    func testCrossEntropyGradient() {
        let logits = parameter([5, 7], seed: 3, scale: 2)
        let err = GradientCheck.maxRelativeError(inputs: [logits]) { v in
            try! crossEntropy(logits: v[0], targets: [3, -100, 0, 6, 3])
        }
        XCTAssertLessThan(err, 2e-3)
    }

    func testLinearCrossEntropyMatchesUnfusedInValueAndGradients() throws {
        let targets: [Int32] = [3, -100, 0, 10, 3, 7, -100]
        for chunk in [1, 2, 3, 256] {
            let h1 = parameter([7, 6], seed: 4), w1 = parameter([11, 6], seed: 5)
            let h2 = Variable(h1.value, requiresGrad: true), w2 = Variable(w1.value, requiresGrad: true)
            let fused = try linearCrossEntropy(hidden: h1, weight: w1, targets: targets, chunkRows: chunk)
            let plain = try crossEntropy(logits: linear(h2, weight: w2), targets: targets)
            XCTAssertEqual(fused.value.scalarValue, plain.value.scalarValue, accuracy: 1e-5)
            scale(fused, by: 1.5).backward(); scale(plain, by: 1.5).backward()
            XCTAssertLessThan(maxAbsDifference(h1.grad!, h2.grad!), 1e-6, "chunk \(chunk)")
            XCTAssertLessThan(maxAbsDifference(w1.grad!, w2.grad!), 1e-6, "chunk \(chunk)")
            XCTAssertEqual(h1.grad![1, 0], 0, "ignored row gets no gradient")
        }
    }

    func testLinearCrossEntropyGradientAndFrozenWeight() {
        let h = parameter([4, 5], seed: 6), w = parameter([9, 5], seed: 7)
        let err = GradientCheck.maxRelativeError(inputs: [h, w]) { v in
            try! linearCrossEntropy(hidden: v[0], weight: v[1], targets: [8, 0, -100, 4], chunkRows: 3)
        }
        XCTAssertLessThan(err, 2e-3)
        let frozen = Variable(w.value)
        h.zeroGrad()
        try! linearCrossEntropy(hidden: h, weight: frozen, targets: [8, 0, -100, 4], chunkRows: 2).backward()
        XCTAssertNil(frozen.grad)
        XCTAssertNotNil(h.grad)
    }
}
