// Randomized truncated SVD (Halko, Martinsson & Tropp 2011, Algorithms 4.4 + 5.1) for matrices too big for a
// full SVD: sketch the range with a Gaussian test matrix, sharpen it by subspace iteration, then take the exact
// SVD of the small projected matrix. Cost O(m·n·l) per pass with l = rank + oversampling, versus O(m·n·min(m,n)).
import TensorCore

/// Approximate top-`rank` SVD of `matrix` [m, n]: U [m, rank], S [rank], Vᵀ [rank, n].
/// `oversampling` extra sketch columns and `powerIterations` rounds of subspace iteration (each re-orthonormalised
/// by QR, so small singular values are not lost to round-off) trade time for accuracy; 10 and 2 suit spectra that
/// decay, more iterations suit flat ones. `rank` must be in 1...min(m, n). Draws n·l normals from `rng`.
public func randomizedSVD(_ matrix: Tensor, rank: Int, oversampling: Int = 10, powerIterations: Int = 2,
                          rng: inout RandomGenerator) throws -> SVD {
    let operation = "randomizedSVD"
    let (m, n) = try MatrixKernels.validatedShape(matrix, operation: operation, argument: "matrix")
    try MatrixKernels.checkRank(rank, rows: m, columns: n, operation: operation)
    guard oversampling >= 0 else {
        throw LinearAlgebraError.invalidArgument(operation: operation, argument: "oversampling", reason: "must be ≥ 0, got \(oversampling)")
    }
    guard powerIterations >= 0 else {
        throw LinearAlgebraError.invalidArgument(operation: operation, argument: "powerIterations",
                                                 reason: "must be ≥ 0, got \(powerIterations)")
    }
    // Sketch width l: never more than min(m, n), where the sketch already spans everything.
    let width = rank + min(oversampling, min(m, n) - rank)
    func orthonormalBasis(_ t: Tensor) throws -> Tensor {
        try MatrixKernels.factoring(t, operation: operation, argument: "sketch of matrix") { try LAPACK.qr(t).q }
    }
    let omega = rng.normal([n, width])                                         // Ω: [n, l]
    var basis = try orthonormalBasis(Tensor.matmul(matrix, omega))             // Q = orth(M·Ω): [m, l]
    for _ in 0..<powerIterations {
        let rowBasis = try orthonormalBasis(Tensor.matmul(matrix, basis, transposeA: true))  // orth(Mᵀ·Q): [n, l]
        basis = try orthonormalBasis(Tensor.matmul(matrix, rowBasis))                        // orth(M·Q̂): [m, l]
    }
    let projected = Tensor.matmul(basis, matrix, transposeA: true)             // B = Qᵀ·M: [l, n]
    let small = try MatrixKernels.factoring(projected, operation: operation, argument: "projected matrix") {
        try LAPACK.gesdd(projected)
    }                                                                          // B = Ũ·S·Vᵀ, Ũ: [l, l]
    let u = Tensor.matmul(basis, small.u)                                      // U = Q·Ũ: [m, l]
    return try SVD(u: u, s: small.s, vt: small.vt).truncated(to: rank)
}
