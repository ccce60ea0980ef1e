// The LoRA paper's normalised subspace similarity (Hu et al. 2021, eq. 4):
//   φ(i, j) = ‖U₁[:, :i]ᵀ U₂[:, :j]‖²_F / min(i, j)  ∈ [0, 1]
// between the top-i singular directions of one adapter and the top-j of another. 1 means one subspace contains
// the other; for independent uniformly random subspaces of R^n its expectation is max(i, j)/n
// (E‖U₁ᵢᵀU₂ⱼ‖²_F = i·j/n because each squared cosine has mean 1/n).
import Foundation
import TensorCore
import LinearAlgebra

/// Which singular vectors represent an adapted module.
public enum SubspaceSource: String, CaseIterable, Sendable, Encodable {
    /// Right singular vectors of A [r, in] (the paper's choice): the input directions the adapter reads.
    case aRight = "a-right"
    /// Left singular vectors of ΔW = s·B·A [out, in]: the output directions the adapter writes.
    case deltaLeft = "delta-left"
}

/// φ(i, j) for i = 1…r₁, j = 1…r₂ (`phi[i − 1][j − 1]`) between orthonormal bases given as rows:
/// `basis1` [r₁, n], `basis2` [r₂, n], each ordered by decreasing singular value.
public func subspaceSimilarity(rows basis1: Tensor, _ basis2: Tensor) throws -> [[Double]] {
    guard basis1.rank == 2, basis2.rank == 2, basis1.shape[1] == basis2.shape[1] else {
        throw LinearAlgebraError.shapeMismatch(operation: "subspaceSimilarity", first: "basis1", firstShape: basis1.shape,
                                               second: "basis2", secondShape: basis2.shape)
    }
    let r1 = basis1.shape[0], r2 = basis2.shape[0]
    guard r1 > 0, r2 > 0 else { return [] }
    let gram = Tensor.matmul(basis1, basis2, transposeB: true).array   // [r1, r2]: cosines between directions
    // 2-D prefix sums of the squared cosines: S(i, j) = ‖U₁[:, :i]ᵀ U₂[:, :j]‖²_F.
    var prefix = [[Double]](repeating: [Double](repeating: 0, count: r2 + 1), count: r1 + 1)
    var phi = [[Double]](repeating: [Double](repeating: 0, count: r2), count: r1)
    for i in 1...r1 {
        for j in 1...r2 {
            let g = Double(gram[(i - 1) * r2 + (j - 1)])
            prefix[i][j] = g * g + prefix[i - 1][j] + prefix[i][j - 1] - prefix[i - 1][j - 1]
            // Rounding can push a perfect overlap a hair above 1; φ is a fraction by definition.
            phi[i - 1][j - 1] = min(1, max(0, prefix[i][j] / Double(min(i, j))))
        }
    }
    return phi
}

/// φ between the two adapters' directions for one module.
public struct ModuleSimilarity: Sendable, Encodable {
    /// The module path.
    public let module: String
    /// Which singular vectors were compared.
    public let source: SubspaceSource
    /// Dimension n of the space the directions live in (in for a-right, out for delta-left).
    public let dimension: Int
    /// Ranks r₁, r₂ of the two adapters for this module.
    public let ranks: [Int]
    /// Numerical ranks of the compared matrices: directions beyond them are arbitrary (zero singular values).
    public let numericalRanks: [Int]
    /// phi[i − 1][j − 1] = φ(i, j).
    public let phi: [[Double]]

    /// φ(1, 1): squared cosine between the two top directions.
    public var topDirectionOverlap: Double { phi[0][0] }
    /// max_j φ(1, j): how much of the first adapter's top direction lies in the second adapter's whole subspace.
    public var topDirectionInSecond: Double { phi[0].last ?? 0 }
    /// E[φ(i, j)] = max(i, j)/n for independent random subspaces: the level that means "no shared structure".
    public func randomExpectation(i: Int, j: Int) -> Double { Double(max(i, j)) / Double(dimension) }

    enum CodingKeys: String, CodingKey {
        case module, source, dimension, ranks, phi
        case numericalRanks = "numerical_ranks", topDirectionOverlap = "top_direction_overlap"
        case topDirectionInSecond = "top_direction_in_second", randomTopOverlap = "random_top_overlap"
    }

    /// JSON: module, source, dimension, ranks, numerical_ranks, phi, top_direction_overlap (φ(1,1)),
    /// top_direction_in_second (φ(1, r₂)), random_top_overlap (1/n).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(module, forKey: .module); try c.encode(source, forKey: .source)
        try c.encode(dimension, forKey: .dimension); try c.encode(ranks, forKey: .ranks)
        try c.encode(numericalRanks, forKey: .numericalRanks); try c.encode(phi, forKey: .phi)
        try c.encode(topDirectionOverlap, forKey: .topDirectionOverlap)
        try c.encode(topDirectionInSecond, forKey: .topDirectionInSecond)
        try c.encode(randomExpectation(i: 1, j: 1), forKey: .randomTopOverlap)
    }
}

/// A module adapted in both adapters that could not be compared, and why.
public struct SkippedModule: Sendable, Encodable, Equatable {
    /// The module path.
    public let module: String
    /// Why it was skipped (for example rank 0 after AdaLoRA pruning).
    public let reason: String
}

/// φ for every module adapted in both adapters.
public struct AdapterSimilarity: Sendable, Encodable {
    /// Which singular vectors were compared.
    public let source: SubspaceSource
    /// Modules in both adapters, sorted by path.
    public let modules: [ModuleSimilarity]
    /// Modules adapted only by the first adapter.
    public let onlyInFirst: [String]
    /// Modules adapted only by the second adapter.
    public let onlyInSecond: [String]
    /// Modules in both that have no directions to compare.
    public let skipped: [SkippedModule]

    enum CodingKeys: String, CodingKey {
        case source, modules, skipped
        case onlyInFirst = "only_in_first", onlyInSecond = "only_in_second"
    }

    /// Compares two adapters module by module. Throws `noCommonModules` when they share none, `shapeMismatch`
    /// (naming the module) when a shared module has different shapes (adapters of different base models), and
    /// `rankExceedsMatrix` when r > min(out, in).
    public static func compare(_ first: AdapterWeights, _ second: AdapterWeights,
                               source: SubspaceSource = .aRight) throws -> AdapterSimilarity {
        let firstPaths = Set(first.modulePaths), secondPaths = Set(second.modulePaths)
        let common = firstPaths.intersection(secondPaths).sorted()
        guard !common.isEmpty else { throw AnalysisError.noCommonModules(first: first.modulePaths, second: second.modulePaths) }
        var results: [ModuleSimilarity] = [], skipped: [SkippedModule] = []
        for path in common {
            let m1 = first.module(path)!, m2 = second.module(path)!
            guard m1.deltaShape == m2.deltaShape, m1.isEmbedding == m2.isEmbedding else {
                throw AnalysisError.shapeMismatch(module: path, first: "ΔW of \(first.directory.path)", firstShape: m1.deltaShape,
                                                  second: "ΔW of \(second.directory.path)", secondShape: m2.deltaShape)
            }
            try m1.checkRankFitsMatrix(); try m2.checkRankFitsMatrix()
            if m1.rank == 0 || m2.rank == 0 {
                skipped.append(SkippedModule(module: path, reason: "rank 0 in the \(m1.rank == 0 ? "first" : "second") adapter (no directions)"))
                continue
            }
            results.append(try compare(m1, m2, source: source))
        }
        return AdapterSimilarity(source: source, modules: results, onlyInFirst: firstPaths.subtracting(secondPaths).sorted(),
                                 onlyInSecond: secondPaths.subtracting(firstPaths).sorted(), skipped: skipped)
    }

    /// φ between two versions of one module (same shape, ranks ≥ 1).
    public static func compare(_ m1: AdapterModule, _ m2: AdapterModule, source: SubspaceSource) throws -> ModuleSimilarity {
        let basis1: Tensor, basis2: Tensor, ranks1: Int, ranks2: Int, dimension: Int
        switch source {
        case .aRight:
            // Rows of Vᵀ are A's right singular vectors, ordered by singular value.
            let s1 = try svd(m1.a), s2 = try svd(m2.a)
            basis1 = s1.vt; basis2 = s2.vt
            ranks1 = try Spectrum(name: m1.path, shape: m1.a.shape, singularValues: s1.singularValues.map { Double(max($0, 0)) }).numericalRank
            ranks2 = try Spectrum(name: m2.path, shape: m2.a.shape, singularValues: s2.singularValues.map { Double(max($0, 0)) }).numericalRank
            dimension = m1.a.shape[1]
        case .deltaLeft:
            let s1 = try m1.deltaSVD(), s2 = try m2.deltaSVD()
            basis1 = s1.u.transposed(); basis2 = s2.u.transposed()
            ranks1 = try Spectrum(name: m1.path, shape: m1.deltaShape, singularValues: s1.singularValues.map { Double(max($0, 0)) }).numericalRank
            ranks2 = try Spectrum(name: m2.path, shape: m2.deltaShape, singularValues: s2.singularValues.map { Double(max($0, 0)) }).numericalRank
            dimension = m1.deltaShape[0]
        }
        let phi = try subspaceSimilarity(rows: basis1, basis2)
        return ModuleSimilarity(module: m1.path, source: source, dimension: dimension, ranks: [m1.rank, m2.rank],
                                numericalRanks: [ranks1, ranks2], phi: phi)
    }
}
