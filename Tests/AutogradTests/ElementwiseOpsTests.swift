import XCTest
import Autograd
import TensorCore
import TestSupport

final class ElementwiseOpsTests: XCTestCase {
    func testForwardValuesAndRowBroadcast() {
        let a = Variable(Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])), row = Variable(Tensor([10, 20, 30], shape: [3]))
        XCTAssertEqual(add(a, row).value.array, [11, 22, 33, 14, 25, 36])
        XCTAssertEqual(sub(a, row).value.array, [-9, -18, -27, -6, -15, -24])
        XCTAssertEqual(mul(a, row).value.array, [10, 40, 90, 40, 100, 180])
        XCTAssertEqual(mul(a, a).value.array, [1, 4, 9, 16, 25, 36])
        XCTAssertEqual(scale(a, by: -2).value.array, [-2, -4, -6, -8, -10, -12])
        XCTAssertEqual(sum(a).value.scalarValue, 21)
        XCTAssertEqual(mean(a).value.scalarValue, 3.5)
        XCTAssertEqual(sumLastDim(a).value.array, [6, 15])
        XCTAssertEqual(meanLastDim(a).value.array, [2, 5])
    }

    func testBroadcastRowGradientIsSumOverRows() {
        let a = parameter([2, 3], seed: 1), row = parameter([3], seed: 2)
        sum(add(a, row)).backward()
        XCTAssertEqual(row.grad!.array, [2, 2, 2])
        XCTAssertEqual(a.grad!.array, [1, 1, 1, 1, 1, 1])
    }

    func testElementwiseGradients() {
        let a = parameter([3, 4], seed: 3), b = parameter([3, 4], seed: 4), row = parameter([1, 4], seed: 5)
        XCTAssertLessThan(gradientError([a, b]) { v in add(v[0], v[1]) }, 2e-3)
        XCTAssertLessThan(gradientError([a, b]) { v in sub(v[0], v[1]) }, 2e-3)
        XCTAssertLessThan(gradientError([a, b]) { v in mul(v[0], v[1]) }, 2e-3)
        XCTAssertLessThan(gradientError([a, row]) { v in add(v[0], v[1]) }, 2e-3)
        XCTAssertLessThan(gradientError([a, row]) { v in sub(v[0], v[1]) }, 2e-3)
        XCTAssertLessThan(gradientError([a, row]) { v in mul(v[0], v[1]) }, 2e-3)
        XCTAssertLessThan(gradientError([a]) { v in scale(v[0], by: 1.7) }, 2e-3)
    }

    func testReductionGradients() {
        let x = parameter([2, 3, 4], seed: 6)
        XCTAssertLessThan(GradientCheck.maxRelativeError(inputs: [x]) { v in sum(v[0]) }, 2e-3)
        XCTAssertLessThan(GradientCheck.maxRelativeError(inputs: [x]) { v in mean(v[0]) }, 2e-3)
        XCTAssertLessThan(gradientError([x]) { v in sumLastDim(v[0]) }, 2e-3)
        XCTAssertLessThan(gradientError([x]) { v in meanLastDim(v[0]) }, 2e-3)
        x.zeroGrad()
        mean(x).backward()
        XCTAssertEqual(x.grad![1, 2, 3], 1 / 24, accuracy: 1e-7)
    }

    func testMSELossValueAndGradient() {
        let a = Variable(Tensor([1, 2, 3, 4], shape: [2, 2]), requiresGrad: true)
        let b = Variable(Tensor([0, 2, 5, 4], shape: [2, 2]), requiresGrad: true)
        let loss = mseLoss(a, b)
        XCTAssertEqual(loss.value.scalarValue, (1 + 0 + 4 + 0) / 4)
        loss.backward()
        XCTAssertEqual(a.grad!.array, [0.5, 0, -1, 0])  // 2(a − b)/4
        XCTAssertEqual(b.grad!.array, [-0.5, 0, 1, 0])
        let x = parameter([3, 5], seed: 7), y = parameter([3, 5], seed: 8)
        XCTAssertLessThan(GradientCheck.maxRelativeError(inputs: [x, y]) { v in mseLoss(v[0], v[1]) }, 2e-3)
    }
}
