import Foundation
import XCTest
import TensorCore
import TestSupport
import LinearAlgebra

final class RandomizedSVDTests: XCTestCase {
    /// 500x300 with σ_i = e^{−i/4}: the top-10 singular values match the exact SVD within 1e-3 relative, the
    /// factors are orthonormal, and the rank-10 error is within 1e-3 of Eckart–Young.
    func testMatchesExactSVDOnDecayingSpectrum() throws {
        var rng = RandomGenerator(seed: 31)
        let spectrum: [Float] = (0..<300).map { Float(exp(-Double($0) / 4)) }
        let matrix = try TestMatrices.planted(rows: 500, columns: 300, singularValues: spectrum, rng: &rng)
        let exact = try singularValues(matrix)
        var sketchRNG = RandomGenerator(seed: 32)
        let approx = try randomizedSVD(matrix, rank: 10, rng: &sketchRNG)
        XCTAssertEqual(approx.u.shape, [500, 10]); XCTAssertEqual(approx.s.shape, [10]); XCTAssertEqual(approx.vt.shape, [10, 300])
        var worst: Float = 0
        for i in 0..<10 {
            let relative = abs(approx.singularValues[i] - exact[i]) / exact[i]
            XCTAssertLessThan(relative, 1e-3, "σ\(i): \(approx.singularValues[i]) vs \(exact[i])")
            worst = max(worst, relative)
        }
        XCTAssertLessThan(try orthonormalityError(approx.u), 1e-4)
        XCTAssertLessThan(try orthonormalityError(approx.vt, of: .rows), 1e-4)
        let error = try reconstructionError(original: matrix, approximation: approx.reconstructed())
        let bound = try eckartYoungBound(singularValues: exact, rank: 10)
        XCTAssertLessThan(error.frobenius, bound.frobenius * 1.001)
        XCTAssertGreaterThan(error.frobenius, bound.frobenius * (1 - 1e-5))
        print("randomized SVD 500x300: worst top-10 relative σ error \(worst), Frobenius error / bound \(error.frobenius / bound.frobenius)")
        XCTAssertEqual(sketchRNG.position, 2 * 300 * 20, "draws n·l normals (two counters each)")
    }

    /// Power iterations matter on a slowly decaying spectrum: 2 rounds beat none, and the same seed gives the same result.
    func testPowerIterationsSharpenAndSeedReproduces() throws {
        var rng = RandomGenerator(seed: 33)
        let spectrum: [Float] = (0..<120).map { 1 / Float(1 + $0).squareRoot() }
        let matrix = try TestMatrices.planted(rows: 200, columns: 120, singularValues: spectrum, rng: &rng)
        let bound = try eckartYoungBound(singularValues: try singularValues(matrix), rank: 5)
        func error(_ iterations: Int) throws -> Float {
            var sketch = RandomGenerator(seed: 34)
            let f = try randomizedSVD(matrix, rank: 5, oversampling: 5, powerIterations: iterations, rng: &sketch)
            return try reconstructionError(original: matrix, approximation: f.reconstructed()).frobenius / bound.frobenius
        }
        let none = try error(0), two = try error(2)
        XCTAssertLessThan(two, none)
        XCTAssertLessThan(two, 1.01)
        XCTAssertEqual(try error(2), two)
        print("randomized SVD flat spectrum: Frobenius error / bound, q=0: \(none), q=2: \(two)")
    }

    /// A sketch as wide as the matrix captures it entirely: the result equals the exact truncated SVD.
    func testFullWidthSketchIsExact() throws {
        var rng = RandomGenerator(seed: 35)
        let matrix = rng.normal([30, 12])
        let approx = try randomizedSVD(matrix, rank: 4, oversampling: 100, powerIterations: 0, rng: &rng)
        let exact = try singularValues(matrix)
        for i in 0..<4 { XCTAssertEqual(approx.singularValues[i], exact[i], accuracy: 1e-5 * exact[0]) }
    }
}
