import Foundation
import XCTest
import TensorCore
import TestSupport
import LinearAlgebra

final class DecompositionTests: XCTestCase {
    /// Thin SVD of tall, wide, square and vector-shaped Gaussians: shapes, ordering, U·S·Vᵀ = M, orthonormal U and V.
    func testThinSVDReconstructsAndIsOrthonormal() throws {
        var rng = RandomGenerator(seed: 11)
        var worst: Float = 0
        for (m, n) in [(40, 25), (25, 40), (64, 64), (1, 7), (7, 1)] {
            let matrix = rng.normal([m, n])
            let f = try svd(matrix)
            let k = min(m, n)
            XCTAssertEqual(f.u.shape, [m, k]); XCTAssertEqual(f.s.shape, [k]); XCTAssertEqual(f.vt.shape, [k, n])
            let s = f.singularValues
            XCTAssertTrue(s.allSatisfy { $0 >= 0 }, "\(m)x\(n)")
            XCTAssertTrue(zip(s, s.dropFirst()).allSatisfy { $0 >= $1 }, "\(m)x\(n) not descending: \(s)")
            let relative = maxAbsDifference(f.reconstructed(), matrix) / TestMatrices.maxAbs(matrix)
            XCTAssertLessThan(relative, 1e-5, "\(m)x\(n) reconstruction")
            XCTAssertLessThan(try orthonormalityError(f.u, of: .columns), 1e-5, "\(m)x\(n) U")
            XCTAssertLessThan(try orthonormalityError(f.vt, of: .rows), 1e-5, "\(m)x\(n) V")
            // Σσ² = ‖M‖_F².
            let energy = s.reduce(0.0) { $0 + Double($1) * Double($1) }
            XCTAssertEqual(energy.squareRoot(), Double(frobeniusNorm(matrix)), accuracy: 1e-5 * energy.squareRoot())
            // The values-only path (no vectors) takes a different LAPACK branch: equal to round-off.
            for (x, y) in zip(try singularValues(matrix), s) { XCTAssertEqual(x, y, accuracy: 2e-6 * s[0], "\(m)x\(n)") }
            worst = max(worst, relative)
        }
        print("thin SVD: worst max |U·S·Vᵀ − M| / max |M| = \(worst)")
    }

    /// Full SVD gives square orthogonal U [m, m] and Vᵀ [n, n] whose leading parts reproduce M.
    func testFullSVDGivesSquareOrthogonalBases() throws {
        var rng = RandomGenerator(seed: 12)
        for (m, n) in [(40, 25), (25, 40)] {
            let matrix = rng.normal([m, n])
            let f = try svd(matrix, full: true)
            XCTAssertEqual(f.u.shape, [m, m]); XCTAssertEqual(f.vt.shape, [n, n])
            XCTAssertLessThan(try orthonormalityError(f.u), 1e-5)
            XCTAssertLessThan(try orthonormalityError(f.u, of: .rows), 1e-5)
            XCTAssertLessThan(try orthonormalityError(f.vt, of: .rows), 1e-5)
            XCTAssertLessThan(try orthonormalityError(f.vt, of: .columns), 1e-5)
            XCTAssertLessThan(maxAbsDifference(f.reconstructed(), matrix) / TestMatrices.maxAbs(matrix), 1e-5)
            XCTAssertEqual(f.singularValues, try svd(matrix).singularValues)
        }
    }

    /// LAPACK.gesvd (QR iteration, gesdd's fallback when divide and conquer fails) gives the same decomposition.
    func testQRIterationSVDAgreesWithDivideAndConquer() throws {
        var rng = RandomGenerator(seed: 16)
        for (m, n, full) in [(40, 25, false), (25, 40, false), (30, 30, false), (12, 7, true), (7, 12, true)] {
            let matrix = rng.normal([m, n])
            let reference = try LAPACK.gesdd(matrix, full: full), robust = try LAPACK.gesvd(matrix, full: full)
            XCTAssertEqual(robust.u.shape, reference.u.shape); XCTAssertEqual(robust.vt.shape, reference.vt.shape)
            for (x, y) in zip(robust.s.array, reference.s.array) { XCTAssertEqual(x, y, accuracy: 2e-6 * reference.s[0]) }
            let f = SVD(u: robust.u, s: robust.s, vt: robust.vt)
            XCTAssertLessThan(maxAbsDifference(f.reconstructed(), matrix) / TestMatrices.maxAbs(matrix), 1e-5, "\(m)x\(n)")
            XCTAssertLessThan(try orthonormalityError(robust.u), 1e-5)
            XCTAssertLessThan(try orthonormalityError(robust.vt, of: .rows), 1e-5)
        }
    }

    /// [[3, 0], [4, 5]]: MᵀM = [[25, 20], [20, 25]] has eigenvalues 45 and 5, so σ = (3√5, √5). The matrix is not
    /// symmetric, so a transposition slip in the row-major wrapper would reconstruct Mᵀ instead.
    func testHandComputedSingularValues() throws {
        let matrix = Tensor([3, 0, 4, 5], shape: [2, 2])
        let f = try svd(matrix)
        XCTAssertEqual(f.singularValues[0], 3 * Float(5).squareRoot(), accuracy: 1e-6)
        XCTAssertEqual(f.singularValues[1], Float(5).squareRoot(), accuracy: 1e-6)
        XCTAssertLessThan(maxAbsDifference(f.reconstructed(), matrix), 1e-6)
        XCTAssertEqual(try spectralNorm(matrix), 3 * Float(5).squareRoot(), accuracy: 1e-6)
        XCTAssertEqual(frobeniusNorm(matrix), Float(50).squareRoot(), accuracy: 1e-6)
    }

    /// Planted singular values come back to Float precision.
    func testRecoversPlantedSingularValues() throws {
        var rng = RandomGenerator(seed: 13)
        let planted: [Float] = (0..<20).map { 5 * Float(pow(0.8, Double($0))) }
        let matrix = try TestMatrices.planted(rows: 50, columns: 30, singularValues: planted, rng: &rng)
        let s = try singularValues(matrix)
        for i in 0..<20 { XCTAssertEqual(s[i], planted[i], accuracy: 2e-6 * planted[0], "σ\(i)") }
        for i in 20..<30 { XCTAssertLessThan(s[i], 2e-6 * planted[0], "σ\(i) should be round-off") }
    }

    /// Reduced QR of tall, wide and square matrices: Q orthonormal columns, R exactly upper triangular, Q·R = M.
    func testQRFactorsTallWideAndSquare() throws {
        var rng = RandomGenerator(seed: 14)
        for (m, n) in [(40, 25), (25, 40), (30, 30), (6, 1), (1, 6)] {
            let matrix = rng.normal([m, n])
            let (q, r) = try qr(matrix)
            let k = min(m, n)
            XCTAssertEqual(q.shape, [m, k]); XCTAssertEqual(r.shape, [k, n])
            XCTAssertLessThan(try orthonormalityError(q), 1e-5, "\(m)x\(n)")
            for i in 0..<k { for j in 0..<min(i, n) { XCTAssertEqual(r[i, j], 0, "R[\(i), \(j)] of \(m)x\(n)") } }
            XCTAssertLessThan(maxAbsDifference(Tensor.matmul(q, r), matrix), 1e-5, "\(m)x\(n)")
            // |R_ii| is the norm of M's i-th column after removing its part along the earlier ones: |R_00| = ‖M[:, 0]‖.
            let firstColumn = TestMatrices.column(matrix, 0).reduce(0) { $0 + $1 * $1 }.squareRoot()
            XCTAssertEqual(abs(r[0, 0]), firstColumn, accuracy: 1e-5 * firstColumn)
        }
    }

    /// QR of a matrix whose columns are already orthonormal returns them up to sign, with R = diag(±1).
    func testQROfOrthonormalColumnsIsSignedIdentity() throws {
        var rng = RandomGenerator(seed: 15)
        let basis = try qr(rng.normal([20, 6])).q
        let (q, r) = try qr(basis)
        for i in 0..<6 {
            XCTAssertEqual(abs(r[i, i]), 1, accuracy: 1e-5)
            for row in 0..<20 { XCTAssertEqual(q[row, i] * r[i, i], basis[row, i], accuracy: 1e-5) }
        }
    }

    /// Empty matrices factor to empty factors instead of calling LAPACK with zero sizes.
    func testEmptyMatricesFactorTrivially() throws {
        let f = try svd(Tensor(zeros: [0, 5]))
        XCTAssertEqual(f.u.shape, [0, 0]); XCTAssertEqual(f.s.shape, [0]); XCTAssertEqual(f.vt.shape, [0, 5])
        let full = try svd(Tensor(zeros: [3, 0]), full: true)
        XCTAssertEqual(full.u, Tensor([1, 0, 0, 0, 1, 0, 0, 0, 1], shape: [3, 3]))
        let (q, r) = try qr(Tensor(zeros: [4, 0]))
        XCTAssertEqual(q.shape, [4, 0]); XCTAssertEqual(r.shape, [0, 0])
        XCTAssertEqual(try numericalRank(Tensor(zeros: [0, 3])), 0)
    }
}
