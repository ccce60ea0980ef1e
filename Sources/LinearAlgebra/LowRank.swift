// Best low-rank approximations and how good they are. By Eckart–Young–Mirsky, truncating the SVD to the top k
// triplets gives the rank-k matrix nearest to M in both the Frobenius and the spectral norm, with errors
// sqrt(Σ_{i>k} σ_i²) and σ_{k+1}: that is the bound every LoRA adapter of rank k lives under.
import TensorCore

/// Rank-k factors with M ≈ a·b: a = U_k·√S_k [m, k] and b = √S_k·V_kᵀ [k, n].
/// (In PEFT's naming for a weight [out, in], `a` is lora_B and `b` is lora_A.)
public struct LowRankFactors: Sendable {
    /// Left factor U_k·√S_k: [m, k].
    public var a: Tensor
    /// Right factor √S_k·V_kᵀ: [k, n].
    public var b: Tensor
    /// All min(m, n) singular values of the factored matrix, descending; the first k were kept.
    public var singularValues: [Float]

    /// Creates factors from their parts (shapes as documented on the properties).
    public init(a: Tensor, b: Tensor, singularValues: [Float]) { self.a = a; self.b = b; self.singularValues = singularValues }

    /// The kept rank k.
    public var rank: Int { a.shape[1] }

    /// a·b: the rank-k approximation [m, n].
    public func product() -> Tensor { Tensor.matmul(a, b) }
}

/// The best rank-`rank` factorisation of `matrix` [m, n] via its SVD; `rank` must be in 1...min(m, n).
public func truncatedSVD(_ matrix: Tensor, rank: Int) throws -> LowRankFactors {
    let (m, n) = try MatrixKernels.validatedShape(matrix, operation: "truncatedSVD", argument: "matrix")
    try MatrixKernels.checkRank(rank, rows: m, columns: n, operation: "truncatedSVD")
    let full = try svd(matrix)
    let kept = try full.truncated(to: rank)
    let roots = kept.singularValues.map { $0.squareRoot() }
    return LowRankFactors(a: MatrixKernels.scalingColumns(kept.u, by: roots),
                          b: MatrixKernels.scalingRows(kept.vt, by: roots),
                          singularValues: full.singularValues)
}

/// The nearest rank-`rank` matrix to `matrix` [m, n]: U_k·diag(S_k)·V_kᵀ; `rank` must be in 1...min(m, n).
public func lowRankApproximation(_ matrix: Tensor, rank: Int) throws -> Tensor {
    let (m, n) = try MatrixKernels.validatedShape(matrix, operation: "lowRankApproximation", argument: "matrix")
    try MatrixKernels.checkRank(rank, rows: m, columns: n, operation: "lowRankApproximation")
    return try svd(matrix).truncated(to: rank).reconstructed()
}

/// The number of singular values above `tolerance`; by default σ_max·max(m, n)·ε as numpy's `matrix_rank`.
public func numericalRank(_ matrix: Tensor, tolerance: Float? = nil) throws -> Int {
    let (m, n) = try MatrixKernels.validatedShape(matrix, operation: "numericalRank", argument: "matrix")
    if let tolerance, !(tolerance.isFinite && tolerance >= 0) {
        throw LinearAlgebraError.invalidArgument(operation: "numericalRank", argument: "tolerance",
                                                 reason: "must be finite and ≥ 0, got \(tolerance)")
    }
    let values = try singularValues(matrix)
    let threshold = tolerance ?? (values.first ?? 0) * Float(max(m, n)) * Float.ulpOfOne
    return values.filter { $0 > threshold }.count
}

/// How far `approximation` is from `original` (same shape): ‖original − approximation‖ in the Frobenius norm
/// and in the spectral norm (the largest singular value of the difference).
public func reconstructionError(original: Tensor, approximation: Tensor) throws -> (frobenius: Float, spectral: Float) {
    _ = try MatrixKernels.validatedShape(original, operation: "reconstructionError", argument: "original")
    _ = try MatrixKernels.validatedShape(approximation, operation: "reconstructionError", argument: "approximation")
    guard original.shape == approximation.shape else {
        throw LinearAlgebraError.shapeMismatch(operation: "reconstructionError", first: "original", firstShape: original.shape,
                                               second: "approximation", secondShape: approximation.shape)
    }
    let residual = MatrixKernels.difference(original, approximation)
    let frobenius = Float(MatrixKernels.sumOfSquares(residual).squareRoot())
    let spectral = try MatrixKernels.factoring(residual, operation: "reconstructionError", argument: "original − approximation") {
        try LAPACK.singularValues(residual).array.first ?? 0
    }
    return (frobenius, spectral)
}

/// The smallest error any rank-`rank` matrix can reach (Eckart–Young–Mirsky), given all singular values of the
/// target (descending, non-negative): Frobenius sqrt(Σ_{i>k} σ_i²) and spectral σ_{k+1} (0 when k = count).
/// `rank` may be 0...singularValues.count.
public func eckartYoungBound(singularValues: [Float], rank: Int) throws -> (frobenius: Float, spectral: Float) {
    guard (0...singularValues.count).contains(rank) else {
        throw LinearAlgebraError.invalidArgument(operation: "eckartYoungBound", argument: "rank",
                                                 reason: "\(rank) is outside 0...\(singularValues.count) (the number of singular values)")
    }
    if let bad = singularValues.firstIndex(where: { !($0.isFinite && $0 >= 0) }) {
        throw LinearAlgebraError.invalidArgument(operation: "eckartYoungBound", argument: "singularValues",
                                                 reason: "entry \(bad) is \(singularValues[bad]); singular values are finite and ≥ 0")
    }
    if let unsorted = singularValues.indices.dropFirst().first(where: { singularValues[$0] > singularValues[$0 - 1] }) {
        throw LinearAlgebraError.invalidArgument(operation: "eckartYoungBound", argument: "singularValues",
                                                 reason: "not descending at index \(unsorted)")
    }
    let tail = singularValues[rank...]
    let frobenius = tail.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    return (Float(frobenius), tail.first ?? 0)
}
