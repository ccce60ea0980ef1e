import XCTest
import TensorCore
import Autograd
import TestSupport

final class NormOpsTests: XCTestCase {
    typealias Reference = TransformerOpsReference

    func testRMSNormMatchesReference() throws {
        var rng = RandomGenerator(seed: 1)
        // 13 is not a multiple of the 8-lane reductions: the scalar tail is exercised too.
        for dim in [13, 64] {
            let x = rng.normal([3, 5, dim], mean: 0.5, std: 2), w = rng.normal([dim], mean: 1, std: 0.3)
            let y = try rmsNorm(Variable(x), weight: Variable(w), eps: 1e-5)
            XCTAssertEqual(y.shape, x.shape)
            XCTAssertLessThan(maxAbsDifference(y.value, Reference.rmsNorm(x, w, eps: 1e-5)), 2e-6)
        }
    }

    func testRMSNormGradients() throws {
        var rng = RandomGenerator(seed: 2)
        let x = Variable(rng.normal([2, 3, 12]), requiresGrad: true)
        let w = Variable(rng.normal([12], mean: 1, std: 0.5), requiresGrad: true)
        let weights = rng.normal([2, 3, 12])
        let error = GradientCheck.maxRelativeError(inputs: [x, w], epsilon: 1e-2) { v in
            Reference.weightedSum(try! rmsNorm(v[0], weight: v[1], eps: 1e-5), weights)
        }
        XCTAssertLessThan(error, 5e-4)
    }

    /// A frozen weight receives no gradient, and the input gradient does not depend on whether it is frozen.
    func testRMSNormFrozenWeight() throws {
        var rng = RandomGenerator(seed: 3)
        let xv = rng.normal([4, 10]), wv = rng.normal([10]), seed = rng.normal([4, 10])
        let (x1, w1) = (Variable(xv, requiresGrad: true), Variable(wv, requiresGrad: true))
        try rmsNorm(x1, weight: w1, eps: 1e-5).backward(seed: seed)
        let (x2, w2) = (Variable(xv, requiresGrad: true), Variable(wv))
        try rmsNorm(x2, weight: w2, eps: 1e-5).backward(seed: seed)
        XCTAssertNil(w2.grad)
        XCTAssertNotNil(w1.grad)
        XCTAssertEqual(x1.grad, x2.grad)
        // Nothing requires a gradient: no graph is recorded.
        XCTAssertFalse(try rmsNorm(Variable(xv), weight: Variable(wv), eps: 1e-5).requiresGrad)
    }

    /// Enough rows for the parallel paths (row chunks and per-chunk weight-gradient partials) at SmolLM's width;
    /// the weight gradient equals Σ_rows dOut·x·rstd computed plainly in Double.
    func testRMSNormManyRowsWeightGradient() throws {
        var rng = RandomGenerator(seed: 4)
        let (rows, dim) = (300, 576)
        let x = rng.normal([rows, dim]), w = rng.normal([dim], mean: 1, std: 0.1), seed = rng.normal([rows, dim])
        let wv = Variable(w, requiresGrad: true)
        let y = try rmsNorm(Variable(x), weight: wv, eps: 1e-5)
        XCTAssertLessThan(maxAbsDifference(y.value, Reference.rmsNorm(x, w, eps: 1e-5)), 5e-6)
        y.backward(seed: seed)
        var expected = [Double](repeating: 0, count: dim)
        for r in 0..<rows {
            var ss: Double = 0
            for i in 0..<dim { ss += Double(x[r, i]) * Double(x[r, i]) }
            let rstd = 1 / (ss / Double(dim) + 1e-5).squareRoot()
            for i in 0..<dim { expected[i] += Double(seed[r, i]) * Double(x[r, i]) * rstd }
        }
        XCTAssertLessThan(maxAbsDifference(wv.grad!, Tensor(expected.map(Float.init), shape: [dim])), 1e-4)
    }

    func testLayerNormMatchesReference() throws {
        var rng = RandomGenerator(seed: 5)
        let x = rng.normal([4, 7, 19], mean: 0.3, std: 1.5)
        let w = rng.normal([19], mean: 1, std: 0.2), b = rng.normal([19], std: 0.2)
        let y = try layerNorm(Variable(x), weight: Variable(w), bias: Variable(b), eps: 1e-12)
        XCTAssertLessThan(maxAbsDifference(y.value, Reference.layerNorm(x, w, b, eps: 1e-12)), 3e-6)
        let plain = try layerNorm(Variable(x), weight: nil, bias: nil, eps: 1e-5)
        XCTAssertLessThan(maxAbsDifference(plain.value, Reference.layerNorm(x, nil, nil, eps: 1e-5)), 3e-6)
        // Rows with |mean| ≫ std (1000 ± 0.015): the shifted two-pass statistics keep full precision.
        let shifted = Tensor(x.array.map { $0 * 0.01 + 1000 }, shape: x.shape)
        let ys = try layerNorm(Variable(shifted), weight: Variable(w), bias: Variable(b), eps: 1e-12)
        XCTAssertLessThan(maxAbsDifference(ys.value, Reference.layerNorm(shifted, w, b, eps: 1e-12)), 2e-6)
    }

    func testLayerNormGradients() throws {
        var rng = RandomGenerator(seed: 6)
        let x = Variable(rng.normal([3, 2, 10], mean: 0.5), requiresGrad: true)
        let w = Variable(rng.normal([10], mean: 1, std: 0.5), requiresGrad: true)
        let b = Variable(rng.normal([10]), requiresGrad: true)
        let weights = rng.normal([3, 2, 10])
        let error = GradientCheck.maxRelativeError(inputs: [x, w, b], epsilon: 1e-2) { v in
            Reference.weightedSum(try! layerNorm(v[0], weight: v[1], bias: v[2], eps: 1e-5), weights)
        }
        XCTAssertLessThan(error, 5e-4)
        let errorNoAffine = GradientCheck.maxRelativeError(inputs: [x], epsilon: 1e-2) { v in
            Reference.weightedSum(try! layerNorm(v[0], weight: nil, bias: nil, eps: 1e-5), weights)
        }
        XCTAssertLessThan(errorNoAffine, 5e-4)
    }

    /// Many rows: the chunked weight/bias gradients equal Σ_rows dOut·x̂ and Σ_rows dOut; a frozen bias gets none.
    func testLayerNormManyRowsParameterGradients() throws {
        var rng = RandomGenerator(seed: 7)
        let (rows, dim) = (200, 384)
        let x = rng.normal([rows, dim]), seed = rng.normal([rows, dim])
        let w = Variable(rng.normal([dim], mean: 1, std: 0.1), requiresGrad: true)
        let b = Variable(rng.normal([dim], std: 0.1), requiresGrad: true)
        let frozenBias = Variable(b.value)
        try layerNorm(Variable(x), weight: w, bias: b, eps: 1e-12).backward(seed: seed)
        var dw = [Double](repeating: 0, count: dim), db = dw
        let normalised = Reference.layerNorm(x, nil, nil, eps: 1e-12)
        for r in 0..<rows { for i in 0..<dim {
            dw[i] += Double(seed[r, i]) * Double(normalised[r, i]); db[i] += Double(seed[r, i])
        } }
        XCTAssertLessThan(maxAbsDifference(w.grad!, Tensor(dw.map(Float.init), shape: [dim])), 1e-4)
        XCTAssertLessThan(maxAbsDifference(b.grad!, Tensor(db.map(Float.init), shape: [dim])), 1e-4)
        let w2 = Variable(w.value, requiresGrad: true)
        try layerNorm(Variable(x), weight: w2, bias: frozenBias, eps: 1e-12).backward(seed: seed)
        XCTAssertNil(frozenBias.grad)
        XCTAssertLessThan(maxAbsDifference(w2.grad!, w.grad!), 1e-6)
    }

    func testNormArgumentErrors() {
        let x = Variable(Tensor(zeros: [2, 8]))
        XCTAssertThrowsError(try rmsNorm(x, weight: Variable(Tensor(zeros: [7])), eps: 1e-5)) { error in
            XCTAssertEqual(error as? TensorError, .shapeMismatch(operation: "rmsNorm weight", expected: [8], got: [7]))
        }
        XCTAssertThrowsError(try layerNorm(x, weight: nil, bias: Variable(Tensor(zeros: [2, 8])), eps: 1e-5))
        XCTAssertThrowsError(try rmsNorm(x, weight: Variable(Tensor(zeros: [8])), eps: -1))
        XCTAssertThrowsError(try rmsNorm(Variable(Tensor.scalar(1)), weight: Variable(Tensor(zeros: [1])), eps: 1e-5))
    }
}
