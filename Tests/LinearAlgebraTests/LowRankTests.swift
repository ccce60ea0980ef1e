import Foundation
import XCTest
import TensorCore
import TestSupport
import LinearAlgebra

final class LowRankTests: XCTestCase {
    /// σ_i = 10/(1 + i): decays, but slowly enough that every tail is well above round-off.
    static let spectrum: [Float] = (0..<25).map { 10 / Float(1 + $0) }

    /// Truncation at every rank reaches the Eckart–Young errors: Frobenius √(Σ_{i>k} σ_i²) and spectral σ_{k+1}.
    func testTruncationErrorEqualsEckartYoungBound() throws {
        var rng = RandomGenerator(seed: 21)
        for (m, n) in [(40, 25), (25, 40), (64, 64)] {
            let matrix = m == 64 ? rng.normal([m, n])
                                 : try TestMatrices.planted(rows: m, columns: n, singularValues: Self.spectrum, rng: &rng)
            let sigma = try singularValues(matrix)
            var worst: Float = 0
            for k in 1..<min(m, n) {
                let approximation = try lowRankApproximation(matrix, rank: k)
                let error = try reconstructionError(original: matrix, approximation: approximation)
                let bound = try eckartYoungBound(singularValues: sigma, rank: k)
                XCTAssertEqual(error.frobenius, bound.frobenius, accuracy: 1e-4 * bound.frobenius, "\(m)x\(n) k=\(k)")
                XCTAssertEqual(error.spectral, bound.spectral, accuracy: 1e-4 * bound.spectral, "\(m)x\(n) k=\(k)")
                XCTAssertEqual(bound.spectral, sigma[k])
                worst = max(worst, abs(error.frobenius - bound.frobenius) / bound.frobenius,
                            abs(error.spectral - bound.spectral) / bound.spectral)
                XCTAssertEqual(try numericalRank(approximation), k, "\(m)x\(n) rank of the rank-\(k) truncation")
            }
            print("Eckart-Young \(m)x\(n): worst relative gap between truncation error and bound \(worst)")
        }
    }

    /// a·b of `truncatedSVD` equals `lowRankApproximation`, a = U√S has orthogonal columns with ‖a_j‖² = σ_j, and
    /// b = √S·Vᵀ has orthogonal rows with the same norms.
    func testTruncatedFactorsAreBalanced() throws {
        var rng = RandomGenerator(seed: 22)
        let matrix = try TestMatrices.planted(rows: 40, columns: 25, singularValues: Self.spectrum, rng: &rng)
        let factors = try truncatedSVD(matrix, rank: 6)
        XCTAssertEqual(factors.a.shape, [40, 6]); XCTAssertEqual(factors.b.shape, [6, 25]); XCTAssertEqual(factors.rank, 6)
        XCTAssertEqual(factors.singularValues.count, 25)
        XCTAssertLessThan(maxAbsDifference(factors.product(), try lowRankApproximation(matrix, rank: 6)), 1e-5)
        let aGram = Tensor.matmul(factors.a, factors.a, transposeA: true), bGram = Tensor.matmul(factors.b, factors.b, transposeB: true)
        for i in 0..<6 { for j in 0..<6 {
            let expected = i == j ? Self.spectrum[i] : 0
            XCTAssertEqual(aGram[i, j], expected, accuracy: 1e-4 * Self.spectrum[0])
            XCTAssertEqual(bGram[i, j], expected, accuracy: 1e-4 * Self.spectrum[0])
        } }
    }

    /// 200 other rank-k factorisations never beat the bound: random Gaussian pairs scaled by their best scalar,
    /// subspace-iteration (alternating least squares) fits after 1–4 steps, and the optimum plus small noise.
    func testNoRankKFactorisationBeatsTheBound() throws {
        var rng = RandomGenerator(seed: 23)
        let (m, n) = (40, 25)
        let matrix = try TestMatrices.planted(rows: m, columns: n, singularValues: Self.spectrum, rng: &rng)
        let sigma = try singularValues(matrix)
        var smallestMargin = (frobenius: Float.infinity, spectral: Float.infinity)
        for trial in 0..<200 {
            let k = 1 + trial % 8
            var product: Tensor
            switch trial % 3 {
            case 0:  // Random pair, scaled by c = ⟨M, ab⟩ / ‖ab‖², the best multiple of it.
                let raw = Tensor.matmul(rng.normal([m, k]), rng.normal([k, n]))
                let c = zip(matrix.array, raw.array).reduce(0.0) { $0 + Double($1.0 * $1.1) } / TestMatrices.squaredDistance(raw, Tensor(zeros: [m, n]))
                product = Tensor(raw.array.map { $0 * Float(c) }, shape: [m, n])
            case 1:  // Alternating least squares: a = M·orth(bᵀ), then b = orth(a)ᵀ·M, for 1...4 rounds.
                var rowBasis = try qr(rng.normal([n, k])).q        // [n, k]
                var columnBasis = Tensor(zeros: [m, k])
                for _ in 0..<(1 + trial % 4) {
                    columnBasis = try qr(Tensor.matmul(matrix, rowBasis)).q               // [m, k]
                    rowBasis = try qr(Tensor.matmul(matrix, columnBasis, transposeA: true)).q
                }
                product = Tensor.matmul(columnBasis, Tensor.matmul(columnBasis, matrix, transposeA: true))
            default:  // The optimum with both factors perturbed by 1–10% noise.
                let best = try truncatedSVD(matrix, rank: k)
                let eps = Float(0.01 + 0.09 * Double(trial % 10) / 9)
                let a = Tensor(zip(best.a.array, rng.normal([m, k]).array).map { $0 + eps * $1 }, shape: [m, k])
                let b = Tensor(zip(best.b.array, rng.normal([k, n]).array).map { $0 + eps * $1 }, shape: [k, n])
                product = Tensor.matmul(a, b)
            }
            XCTAssertEqual(try numericalRank(product) <= k, true)
            let error = try reconstructionError(original: matrix, approximation: product)
            let bound = try eckartYoungBound(singularValues: sigma, rank: k)
            let margin = (error.frobenius / bound.frobenius - 1, error.spectral / bound.spectral - 1)
            XCTAssertGreaterThan(margin.0, -1e-5, "trial \(trial) (k=\(k)) beat the Frobenius bound")
            XCTAssertGreaterThan(margin.1, -1e-5, "trial \(trial) (k=\(k)) beat the spectral bound")
            smallestMargin = (min(smallestMargin.frobenius, margin.0), min(smallestMargin.spectral, margin.1))
        }
        print("200 rank-k factorisations: smallest relative excess over the bound \(smallestMargin)")
    }

    /// Keeping every triplet reproduces the matrix to round-off, and the bound is then zero.
    func testFullRankTruncationReconstructsExactly() throws {
        var rng = RandomGenerator(seed: 24)
        for (m, n) in [(40, 25), (25, 40), (64, 64)] {
            let matrix = rng.normal([m, n])
            let factors = try truncatedSVD(matrix, rank: min(m, n))
            let relative = maxAbsDifference(factors.product(), matrix) / TestMatrices.maxAbs(matrix)
            XCTAssertLessThan(relative, 1e-5, "\(m)x\(n)")
            let bound = try eckartYoungBound(singularValues: factors.singularValues, rank: min(m, n))
            XCTAssertEqual(bound.frobenius, 0); XCTAssertEqual(bound.spectral, 0)
            print("full-rank \(m)x\(n): max |a·b − M| / max |M| = \(relative)")
        }
    }

    /// Planted rank-k matrices have numerical rank exactly k, both as Gaussian products a·b and with planted spectra.
    func testNumericalRankOfPlantedProducts() throws {
        var rng = RandomGenerator(seed: 25)
        for k in [0, 1, 3, 7] {
            for (m, n) in [(40, 25), (25, 40), (64, 64)] {
                let product = Tensor.matmul(rng.normal([m, k]), rng.normal([k, n]))
                XCTAssertEqual(try numericalRank(product), k, "Gaussian product \(m)x\(n) rank \(k)")
                if k > 0 {
                    let spread: [Float] = (0..<k).map { Float(pow(10, -Double($0) / 2)) }   // σ from 1 down to 10^-3
                    let planted = try TestMatrices.planted(rows: m, columns: n, singularValues: spread, rng: &rng)
                    XCTAssertEqual(try numericalRank(planted), k, "planted \(m)x\(n) rank \(k)")
                }
            }
        }
        // An explicit tolerance counts the singular values above it.
        var rng2 = RandomGenerator(seed: 26)
        let matrix = try TestMatrices.planted(rows: 30, columns: 20, singularValues: [8, 4, 2, 1, 0.5], rng: &rng2)
        XCTAssertEqual(try numericalRank(matrix, tolerance: 1.5), 3)
        XCTAssertEqual(try numericalRank(matrix, tolerance: 0.1), 5)
    }

    /// The bound itself on hand-made values.
    func testEckartYoungBoundArithmetic() throws {
        let sigma: [Float] = [5, 4, 3, 0]
        let b0 = try eckartYoungBound(singularValues: sigma, rank: 0)
        XCTAssertEqual(b0.frobenius, Float(50).squareRoot(), accuracy: 1e-6); XCTAssertEqual(b0.spectral, 5)
        let b1 = try eckartYoungBound(singularValues: sigma, rank: 1)
        XCTAssertEqual(b1.frobenius, 5, accuracy: 1e-6); XCTAssertEqual(b1.spectral, 4)
        let b3 = try eckartYoungBound(singularValues: sigma, rank: 3)
        XCTAssertEqual(b3.frobenius, 0); XCTAssertEqual(b3.spectral, 0)
    }
}
