import XCTest
import TensorCore
import Autograd
import NN

final class NormalizationLayerTests: XCTestCase {
    func testRMSNormLayerValuesAndNames() throws {
        let norm = try RMSNorm(weight: Tensor([1, 2], shape: [2]), eps: 0)
        let y = try norm(Variable(Tensor([3, 4], shape: [1, 2]))).value
        let rms = Float(12.5).squareRoot()  // sqrt((9 + 16) / 2)
        XCTAssertEqual(y[0, 0], 3 / rms, accuracy: 1e-6)
        XCTAssertEqual(y[0, 1], 8 / rms, accuracy: 1e-6)
        XCTAssertEqual(norm.namedParameters().map(\.0), ["weight"])
        XCTAssertThrowsError(try RMSNorm(weight: Tensor(zeros: [2, 2]), eps: 1e-5))
    }

    func testLayerNormLayerNormalisesAndHasGradients() throws {
        let norm = LayerNorm(dimension: 4)
        var rng = RandomGenerator(seed: 2)
        let x = Variable(rng.normal([3, 4], mean: 5, std: 2))
        let y = try norm(x).value
        for r in 0..<3 {
            let row = (0..<4).map { y[r, $0] }
            XCTAssertEqual(row.reduce(0, +) / 4, 0, accuracy: 1e-5)
            XCTAssertEqual(row.map { $0 * $0 }.reduce(0, +) / 4, 1, accuracy: 1e-3)  // eps 1e-5 shrinks it a hair
        }
        let error = GradientCheck.maxRelativeError(inputs: [norm.weight, norm.bias]) { _ in
            sum(mul(try! norm(x), try! norm(x)))
        }
        XCTAssertLessThan(error, 2e-3)
        XCTAssertEqual(norm.namedParameters().map(\.0), ["weight", "bias"])
    }
}
