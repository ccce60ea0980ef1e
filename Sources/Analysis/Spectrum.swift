// The singular-value spectrum of a weight or of an adapter's ΔW, and what it says about low-rank structure:
// numerical rank, the energy the top-k directions capture, and the best rank-k relative error (Eckart–Young:
// ‖M − M_k‖_F / ‖M‖_F = sqrt(Σ_{i>k} σ_i²) / sqrt(Σ σ_i²), reached by the truncated SVD).
import Foundation
import TensorCore
import LinearAlgebra

/// The singular values of one matrix with derived low-rank measures. Values are descending; when the matrix is
/// a rank-r product only the top r are listed and the remaining min(m, n) − r are exactly zero.
public struct Spectrum: Sendable, Encodable {
    /// Tensor name or module path.
    public let name: String
    /// [m, n] of the matrix.
    public let shape: [Int]
    /// σ_1 ≥ σ_2 ≥ … ≥ 0.
    public let singularValues: [Double]
    /// Values above this count towards the numerical rank: σ_1 · max(m, n) · ε_float32 (numpy's `matrix_rank` rule).
    public let tolerance: Double
    /// The number of singular values above `tolerance`.
    public let numericalRank: Int
    /// ‖M‖_F = sqrt(Σ σ_i²).
    public let frobeniusNorm: Double
    /// energies[k − 1] = Σ_{i≤k} σ_i² / Σ σ_i², the fraction of ‖M‖²_F the top k directions capture (1 for M = 0).
    public let energies: [Double]
    /// relativeErrors[k − 1] = ‖M − M_k‖_F / ‖M‖_F for the best rank-k approximation M_k (0 for M = 0).
    public let relativeErrors: [Double]

    /// The spectrum from singular values already computed (descending, finite, ≥ 0) of an [m, n] matrix.
    public init(name: String, shape: [Int], singularValues: [Double]) throws {
        guard shape.count == 2, shape.allSatisfy({ $0 >= 0 }) else {
            throw AnalysisError.notAMatrix(tensor: name, shape: shape)
        }
        guard singularValues.count <= shape.min()! else {
            throw AnalysisError.invalidArgument(argument: "singularValues",
                                                reason: "\(singularValues.count) values for a \(shape) matrix of \(name)")
        }
        if let bad = singularValues.firstIndex(where: { !($0.isFinite && $0 >= 0) }) {
            throw AnalysisError.invalidArgument(argument: "singularValues", reason: "entry \(bad) of \(name) is \(singularValues[bad])")
        }
        if let bad = singularValues.indices.dropFirst().first(where: { singularValues[$0] > singularValues[$0 - 1] }) {
            throw AnalysisError.invalidArgument(argument: "singularValues", reason: "\(name): not descending at index \(bad)")
        }
        self.name = name
        self.shape = shape
        self.singularValues = singularValues
        let top = singularValues.first ?? 0
        let tolerance = top * Double(shape.max() ?? 0) * Double(Float.ulpOfOne)
        self.tolerance = tolerance
        numericalRank = singularValues.filter { $0 > tolerance }.count
        // Tail sums from the smallest value up: the small terms are added first, so tiny errors stay exact.
        var tails = [Double](repeating: 0, count: singularValues.count + 1)
        for i in stride(from: singularValues.count - 1, through: 0, by: -1) {
            tails[i] = tails[i + 1] + singularValues[i] * singularValues[i]
        }
        let total = tails[0]
        frobeniusNorm = total.squareRoot()
        energies = singularValues.indices.map { i in total > 0 ? 1 - tails[i + 1] / total : 1 }
        relativeErrors = singularValues.indices.map { i in total > 0 ? (tails[i + 1] / total).squareRoot() : 0 }
    }

    /// The spectrum of a dense finite matrix (all min(m, n) singular values, LAPACK).
    public static func of(matrix: Tensor, name: String) throws -> Spectrum {
        guard matrix.rank == 2 else { throw AnalysisError.notAMatrix(tensor: name, shape: matrix.shape) }
        if let i = firstNonFiniteIndex(matrix) { throw AnalysisError.nonFinite(module: name, tensor: "weight", index: i) }
        let values = try LinearAlgebra.singularValues(matrix).map { Double(max($0, 0)) }
        return try Spectrum(name: name, shape: matrix.shape, singularValues: values)
    }

    /// The spectrum of an adapted module's ΔW = s·B·A: its r singular values, computed from the factors.
    public static func of(module: AdapterModule) throws -> Spectrum {
        try module.checkRankFitsMatrix()
        if module.rank == 0 { return try Spectrum(name: module.path, shape: module.deltaShape, singularValues: []) }
        let values = try module.deltaSVD().singularValues.map { Double(max($0, 0)) }
        return try Spectrum(name: module.path, shape: module.deltaShape, singularValues: values)
    }

    /// Spectra of every module of an adapter, in module order.
    public static func of(adapter: AdapterWeights) throws -> [Spectrum] {
        try adapter.modules.map { try of(module: $0) }
    }

    /// ‖M‖²_F / σ_1²: a smooth lower bound on the rank (how many directions carry the energy); 0 for M = 0.
    public var stableRank: Double {
        guard let top = singularValues.first, top > 0 else { return 0 }
        return frobeniusNorm * frobeniusNorm / (top * top)
    }

    /// The fraction of ‖M‖²_F in the top `k` directions (k = 0 gives 0, k beyond the list gives 1).
    public func energy(topK k: Int) -> Double {
        if k <= 0 { return frobeniusNorm > 0 ? 0 : 1 }
        return k > energies.count ? 1 : energies[k - 1]
    }

    /// ‖M − M_k‖_F / ‖M‖_F of the best rank-`k` approximation (k = 0 gives 1, k beyond the list gives 0).
    public func relativeError(rank k: Int) -> Double {
        if k <= 0 { return frobeniusNorm > 0 ? 1 : 0 }
        return k > relativeErrors.count ? 0 : relativeErrors[k - 1]
    }

    enum CodingKeys: String, CodingKey {
        case name, shape, tolerance, energies
        case singularValues = "singular_values", numericalRank = "numerical_rank", frobeniusNorm = "frobenius_norm"
        case relativeErrors = "relative_errors", stableRank = "stable_rank"
    }

    /// JSON: name, shape, singular_values, tolerance, numerical_rank, frobenius_norm, stable_rank, energies[k−1],
    /// relative_errors[k−1].
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name); try c.encode(shape, forKey: .shape)
        try c.encode(singularValues, forKey: .singularValues); try c.encode(tolerance, forKey: .tolerance)
        try c.encode(numericalRank, forKey: .numericalRank); try c.encode(frobeniusNorm, forKey: .frobeniusNorm)
        try c.encode(stableRank, forKey: .stableRank); try c.encode(energies, forKey: .energies)
        try c.encode(relativeErrors, forKey: .relativeErrors)
    }
}
