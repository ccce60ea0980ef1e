import XCTest
import Foundation
import TensorCore
import TestSupport

final class ElementwiseKernelTests: XCTestCase {
    func testBinaryOpsSameShapeAndRowBroadcastIncludingParallelPath() {
        var rng = RandomGenerator(seed: 1)
        let a = rng.normal([300, 257]), b = rng.normal([300, 257]), row = rng.normal([257])  // 77k elements: split across threads
        let (pa, pb, pr) = (a.array, b.array, row.array)
        let sum = Tensor.add(a, b).array, prod = Tensor.mul(a, row).array, diff = Tensor.sub(a, row).array
        let quotient = Tensor.div(a, b).array
        for i in stride(from: 0, to: pa.count, by: 97) {
            XCTAssertEqual(sum[i], pa[i] + pb[i])
            XCTAssertEqual(prod[i], pa[i] * pr[i % 257])
            XCTAssertEqual(diff[i], pa[i] - pr[i % 257])
            XCTAssertEqual(quotient[i], pa[i] / pb[i])
        }
        XCTAssertEqual(Tensor.add(Tensor([1, 2, 3, 4], shape: [2, 2]), Tensor([10, 20], shape: [1, 2])).array, [11, 22, 13, 24])
    }

    func testScaleAndAxpy() {
        var x = Tensor([1, 2, 3], shape: [3])
        XCTAssertEqual(x.scaled(by: -2).array, [-2, -4, -6])
        x.addScaled(Tensor([1, 1, 1], shape: [3]), alpha: 0.5)
        XCTAssertEqual(x.array, [1.5, 2.5, 3.5])
        let shared = x
        x.scale(by: 2)
        XCTAssertEqual(x.array, [3, 5, 7])
        XCTAssertEqual(shared.array, [1.5, 2.5, 3.5], "in-place ops respect copy-on-write")
    }

    func testActivationsMatchScalarFormulas() {
        var rng = RandomGenerator(seed: 2)
        let x = rng.normal([20_000], std: 3)
        let s = x.silu().array, ge = x.gelu().array, gt = x.gelu(approximation: .tanh).array, r = x.relu().array
        for (i, v) in x.array.enumerated() where i % 37 == 0 {
            let d = Double(v)
            XCTAssertEqual(Double(s[i]), d / (1 + exp(-d)), accuracy: 1e-5)
            XCTAssertEqual(Double(ge[i]), 0.5 * d * (1 + erf(d / 2.0.squareRoot())), accuracy: 1e-5)
            XCTAssertEqual(Double(gt[i]), 0.5 * d * (1 + tanh((2 / Double.pi).squareRoot() * (d + 0.044715 * d * d * d))), accuracy: 1e-5)
            XCTAssertEqual(r[i], max(v, 0))
        }
    }
}

final class ReductionKernelTests: XCTestCase {
    func testSumsMeansAndNorms() {
        let big = Tensor(repeating: 0.1, shape: [1_000_003])
        XCTAssertEqual(Double(big.sum()), 100_000.3, accuracy: 0.05)  // naive Float accumulation is off by ~1e3
        XCTAssertEqual(big.mean(), 0.1, accuracy: 1e-7)
        let m = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        XCTAssertEqual(m.sumLastDim().array, [6, 15])
        XCTAssertEqual(m.meanLastDim().array, [2, 5])
        XCTAssertEqual(m.maxLastDim().array, [3, 6])
        XCTAssertEqual(m.sumRows().array, [5, 7, 9])
        XCTAssertEqual(Tensor([3, 4], shape: [2]).squaredNorm(), 25)
        XCTAssertEqual(Tensor([3, 4], shape: [2]).l2Norm(), 5)
        XCTAssertEqual(Tensor(repeating: 1e20, shape: [4]).l2Norm(), 2e20, accuracy: 1e14, "no Float overflow of Σx²")
        var rng = RandomGenerator(seed: 3)
        let wide = rng.normal([3, 1001])
        let rowMax = wide.maxLastDim().array
        for r in 0..<3 { XCTAssertEqual(rowMax[r], (0..<1001).map { wide[r, $0] }.max()!) }
    }

    func testMaxPropagatesNaNAndFinitenessCheck() {
        var t = Tensor(zeros: [2, 20])
        t[1, 17] = .nan
        XCTAssertTrue(t.maxLastDim()[1].isNaN)
        XCTAssertEqual(t.maxLastDim()[0], 0)
        XCTAssertFalse(t.isFinite)
        var u = Tensor(zeros: [10_000])
        XCTAssertTrue(u.isFinite)
        u[flat: 9_999] = -.infinity
        XCTAssertFalse(u.isFinite)
        u[flat: 9_999] = .greatestFiniteMagnitude
        XCTAssertTrue(u.isFinite)
    }

    func testSoftmaxFamilyAgainstDoublePrecision() {
        var rng = RandomGenerator(seed: 4)
        let x = rng.normal([3, 50_000], std: 5)
        let sm = x.softmax(), lsm = x.logSoftmax(), lse = x.logSumExpLastDim()
        for r in 0..<3 {
            let row = (0..<50_000).map { Double(x[r, $0]) }
            let m = row.max()!, ref = m + log(row.reduce(0) { $0 + exp($1 - m) })
            XCTAssertEqual(Double(lse[r]), ref, accuracy: 1e-4)
            XCTAssertEqual(Double(lsm[r, 123]), row[123] - ref, accuracy: 1e-4)
            XCTAssertEqual(Double(sm[r, 123]), exp(row[123] - ref), accuracy: 1e-7)
            XCTAssertEqual((0..<50_000).reduce(0.0) { $0 + Double(sm[r, $1]) }, 1, accuracy: 1e-4)
        }
    }
}

final class ShapeKernelTests: XCTestCase {
    func testTransposeOddSizes() {
        var rng = RandomGenerator(seed: 5)
        let a = rng.normal([37, 70])
        let t = a.transposed()
        XCTAssertEqual(t.shape, [70, 37])
        for i in 0..<37 { for j in 0..<70 where (i + j) % 5 == 0 { XCTAssertEqual(t[j, i], a[i, j]) } }
        XCTAssertEqual(t.transposed(), a)
    }

    func testEveryRank4PermutationAgainstIndexArithmetic() {
        let dims = [2, 3, 4, 5]
        let x = Tensor((0..<120).map(Float.init), shape: dims)  // value = flat source index
        func permutations(_ a: [Int]) -> [[Int]] {
            a.count <= 1 ? [a] : a.flatMap { e in permutations(a.filter { $0 != e }).map { [e] + $0 } }
        }
        for perm in permutations([0, 1, 2, 3]) {
            let y = x.permuted(perm)
            XCTAssertEqual(y.shape, perm.map { dims[$0] })
            let strides = [60, 20, 5, 1]
            for flat in 0..<120 {
                // Decompose the output index, then map each output axis back to its source axis.
                var rem = flat, src = 0
                for d in (0..<4).reversed() { let n = y.shape[d]; src += (rem % n) * strides[perm[d]]; rem /= n }
                XCTAssertEqual(y[flat: flat], Float(src), "perm \(perm)")
            }
        }
        let r3 = Tensor((0..<24).map(Float.init), shape: [2, 3, 4]).permuted([2, 0, 1])
        XCTAssertEqual(r3.shape, [4, 2, 3])
        XCTAssertEqual(r3[1, 1, 2], Float(1 * 12 + 2 * 4 + 1))
    }

    func testSliceConcatRoundTripAndAddSlice() {
        let x = Tensor((0..<24).map(Float.init), shape: [2, 3, 4])
        let a = x.sliced(dimension: 1, range: 0..<1), b = x.sliced(dimension: -2, range: 1..<3)
        XCTAssertEqual(a.shape, [2, 1, 4])
        XCTAssertEqual(a.array, [0, 1, 2, 3, 12, 13, 14, 15])
        XCTAssertEqual(Tensor.concat([a, b], dimension: 1), x)
        XCTAssertEqual(Tensor.concat([x.sliced(dimension: 2, range: 0..<3), x.sliced(dimension: 2, range: 3..<4)], dimension: -1), x)
        var z = Tensor(zeros: [2, 3, 4])
        z.addSlice(b, dimension: 1, range: 1..<3)
        z.addSlice(a, dimension: 1, range: 0..<1)
        XCTAssertEqual(z, x)
    }

    func testGatherAndScatterRows() throws {
        let table = Tensor([0, 1, 10, 11, 20, 21], shape: [3, 2])
        XCTAssertEqual(try table.gatherRows([1, 1, 0]).array, [10, 11, 10, 11, 0, 1])
        XCTAssertThrowsError(try table.gatherRows([0, 3]))
        var g = Tensor(zeros: [3, 2])
        g.scatterAddRows(Tensor([1, 2, 3, 4, 5, 6], shape: [3, 2]), ids: [2, 0, 2])
        XCTAssertEqual(g.array, [3, 4, 0, 0, 6, 8])
    }
}

final class FastMathTests: XCTestCase {
    func testFastExpWithinTwoUlpAndEdgeCases() {
        var worstUlp: Float = 0
        var x: Float = -86.6
        while x < 88.7 {
            let ref = Float(exp(Double(x)))
            worstUlp = max(worstUlp, abs(fastExp(x) - ref) / ref.ulp)
            x += 0.0137
        }
        XCTAssertLessThanOrEqual(worstUlp, 2, "worst error \(worstUlp) ulp")
        print("fastExp worst error over [-86.6, 88.7]: \(worstUlp) ulp")
        XCTAssertEqual(fastExp(0), 1)
        XCTAssertEqual(fastExp(-.infinity), 0)
        XCTAssertEqual(fastExp(-1000), 0)
        XCTAssertEqual(fastExp(.infinity), .infinity)
        XCTAssertEqual(fastExp(89), .infinity)
        XCTAssertTrue(fastExp(88.72).isFinite)
        XCTAssertTrue(fastExp(.nan).isNaN)
        XCTAssertEqual(fastTanh(0.3), Float(tanh(0.3)), accuracy: 2e-7)
        XCTAssertEqual(fastTanh(-20), -1)
        XCTAssertEqual(fastSigmoid(2), Float(1 / (1 + exp(-2.0))), accuracy: 1e-7)
    }
}
