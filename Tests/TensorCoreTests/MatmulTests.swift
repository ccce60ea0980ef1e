import XCTest
import TensorCore
import TestSupport

final class MatmulTests: XCTestCase {
    func testMatmulAllTransposes() {
        var rng = RandomGenerator(seed: 1)
        let a = rng.normal([5, 7]), b = rng.normal([7, 3])
        func naive(_ a: Tensor, _ b: Tensor) -> Tensor {
            var c = Tensor(zeros: [a.shape[0], b.shape[1]])
            for i in 0..<a.shape[0] { for j in 0..<b.shape[1] {
                var s: Float = 0
                for k in 0..<a.shape[1] { s += a[i, k] * b[k, j] }
                c[i, j] = s
            } }
            return c
        }
        let ref = naive(a, b)
        XCTAssertLessThan(maxAbsDifference(Tensor.matmul(a, b), ref), 1e-5)
        let at = naive(a, Tensor.identityForTest(7)).transposedForTest(), bt = b.transposedForTest()
        XCTAssertLessThan(maxAbsDifference(Tensor.matmul(at, b, transposeA: true), ref), 1e-5)
        XCTAssertLessThan(maxAbsDifference(Tensor.matmul(a, bt, transposeB: true), ref), 1e-5)
        XCTAssertLessThan(maxAbsDifference(Tensor.matmul(at, bt, transposeA: true, transposeB: true), ref), 1e-5)
    }

    func testInnerDimensionMismatchThrows() {
        XCTAssertThrowsError(try Tensor.checkedMatmul(Tensor(zeros: [2, 3]), Tensor(zeros: [4, 2])))
    }

    func testRandomIsReproducibleAndUsesFullStream() {
        var r1 = RandomGenerator(seed: 42), r2 = RandomGenerator(seed: 42)
        XCTAssertEqual(r1.normal([1000]), r2.normal([1000]))
        let u = r1.uniform([100_000])
        let mean = u.array.reduce(0, +) / Float(u.count)
        XCTAssertEqual(mean, 0.5, accuracy: 0.01)
    }
}

extension Tensor {
    static func identityForTest(_ n: Int) -> Tensor {
        var t = Tensor(zeros: [n, n]); for i in 0..<n { t[i, i] = 1 }; return t
    }
    func transposedForTest() -> Tensor {
        var t = Tensor(zeros: [shape[1], shape[0]])
        for i in 0..<shape[0] { for j in 0..<shape[1] { t[j, i] = self[i, j] } }
        return t
    }
}
