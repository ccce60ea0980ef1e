import XCTest
import Autograd
import TensorCore
import TestSupport

final class LinearOpsTests: XCTestCase {
    func testLinearForwardByHand() {
        // x [2, 3], W [2, 3], b [2]: y[i, o] = Σ_k x[i,k]·W[o,k] + b[o]
        let x = Variable(Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3]))
        let w = Variable(Tensor([1, 0, -1, 0.5, 0.5, 0.5], shape: [2, 3]))
        let b = Variable(Tensor([10, -1], shape: [2]))
        let y = linear(x, weight: w, bias: b)
        XCTAssertEqual(y.shape, [2, 2])
        XCTAssertEqual(y.value.array, [8, 2, 8, 6.5])  // [1−3+10, 3−1, 4−6+10, 7.5−1]
        XCTAssertEqual(linear(x, weight: w).value.array, [-2, 3, -2, 7.5])
    }

    func testLinearGradientsMatchFiniteDifferences() {
        let x = parameter([2, 3, 5], seed: 1), w = parameter([4, 5], seed: 2), b = parameter([4], seed: 3)
        let err = gradientError([x, w, b]) { v in linear(v[0], weight: v[1], bias: v[2]) }
        XCTAssertLessThan(err, 2e-3)
        let errNoBias = gradientError([x, w]) { v in linear(v[0], weight: v[1]) }
        XCTAssertLessThan(errNoBias, 2e-3)
    }

    func testFrozenWeightGetsNoGradientButInputDoes() {
        let x = parameter([3, 4], seed: 4)
        let w = Variable(RandomGenerator(seed: 5).normalTensor([2, 4]))  // frozen
        let b = Variable(Tensor([0.5, -0.5], shape: [2]))                // frozen
        sum(linear(x, weight: w, bias: b)).backward()
        XCTAssertNil(w.grad)
        XCTAssertNil(b.grad)
        // d/dx Σ x·Wᵀ = column sums of W, for every row of x.
        let colSums = (0..<4).map { k in w.value[0, k] + w.value[1, k] }
        for i in 0..<3 { for k in 0..<4 { XCTAssertEqual(x.grad![i, k], colSums[k], accuracy: 1e-6) } }
    }

    func testConstantInputGetsNoGradient() {
        let x = Variable(Tensor([1, 2], shape: [1, 2]))
        let w = parameter([3, 2], seed: 6)
        sum(linear(x, weight: w)).backward()
        XCTAssertNil(x.grad)
        // dW[o, k] = Σ_rows dY[o]·x[k] = x[k]
        XCTAssertEqual(w.grad!.array, [1, 2, 1, 2, 1, 2])
    }

    func testGradientsAccumulateAcrossTwoUses() {
        let x = Variable(Tensor([1, 2], shape: [1, 2]))
        let w = parameter([1, 2], seed: 7)
        sum(add(linear(x, weight: w), linear(x, weight: w))).backward()
        XCTAssertEqual(w.grad!.array, [2, 4])
    }

    func testMatmulForwardByHand() {
        let a = Variable(Tensor([1, 2, 3, 4], shape: [2, 2])), b = Variable(Tensor([5, 6, 7, 8], shape: [2, 2]))
        XCTAssertEqual(matmul(a, b).value.array, [19, 22, 43, 50])
        XCTAssertEqual(matmul(a, b, transposeA: true).value.array, [26, 30, 38, 44])
        XCTAssertEqual(matmul(a, b, transposeB: true).value.array, [17, 23, 39, 53])
        XCTAssertEqual(matmul(a, b, transposeA: true, transposeB: true).value.array, [23, 31, 34, 46])
    }

    func testMatmulGradientsAllTransposes() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = parameter(ta ? [4, 3] : [3, 4], seed: 10), b = parameter(tb ? [5, 4] : [4, 5], seed: 11)
            let err = gradientError([a, b]) { v in matmul(v[0], v[1], transposeA: ta, transposeB: tb) }
            XCTAssertLessThan(err, 2e-3, "transposeA \(ta) transposeB \(tb)")
        }
    }

    func testBatchedMatmulGradients() {
        for (ta, tb) in [(false, false), (true, true), (false, true)] {
            let a = parameter(ta ? [2, 4, 3] : [2, 3, 4], seed: 12), b = parameter(tb ? [2, 5, 4] : [2, 4, 5], seed: 13)
            let err = gradientError([a, b]) { v in matmul(v[0], v[1], transposeA: ta, transposeB: tb) }
            XCTAssertLessThan(err, 2e-3, "transposeA \(ta) transposeB \(tb)")
        }
        let a = parameter([2, 3, 4], seed: 14), b = parameter([4, 2], seed: 15)
        XCTAssertEqual(matmul(a, b).shape, [2, 3, 2])
        XCTAssertLessThan(gradientError([a, b]) { v in matmul(v[0], v[1]) }, 2e-3)
    }
}

extension RandomGenerator {
    func normalTensor(_ shape: [Int]) -> Tensor { var r = self; return r.normal(shape) }
}
