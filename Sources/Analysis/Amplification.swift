// How much an adapter amplifies directions of the base weight (LoRA paper §7.3, Table 7): project W onto the
// r-dimensional subspaces of ΔW, ‖Uᵀ W V‖_F with U, V the top-r left/right singular vectors of ΔW, and compare
// with ‖ΔW‖_F. A large factor ‖ΔW‖_F / ‖UᵀWV‖_F means ΔW boosts directions that W barely uses (the paper finds
// ≈ 21.5 for r = 4 on GPT-3's W_q). Baselines: the same projection onto W's own top-r singular subspaces
// (= sqrt(Σ_{i≤r} σ_i(W)²)) and onto a random rank-r subspace pair (E‖·‖²_F = r²‖W‖²_F / (out·in)).
import Foundation
import TensorCore
import LinearAlgebra

/// Table 7's measurements for one adapted module.
public struct ModuleAmplification: Sendable, Encodable {
    /// The module path.
    public let module: String
    /// The adapter rank r (size of the compared subspaces).
    public let rank: Int
    /// ‖W‖_F of the base weight.
    public let weightNorm: Double
    /// ‖ΔW‖_F.
    public let deltaNorm: Double
    /// ‖Uᵀ W V‖_F with U, V the top-r singular vectors of ΔW.
    public let projectionOnDelta: Double
    /// ‖U_Wᵀ W V_W‖_F with U_W, V_W the top-r singular vectors of W itself.
    public let projectionOnWeight: Double
    /// ‖U_Rᵀ W V_R‖_F for a seeded random orthonormal pair U_R [out, r], V_R [in, r].
    public let projectionOnRandom: Double
    /// ‖ΔW‖_F / ‖UᵀWV‖_F; nil when W has no component in ΔW's subspaces (the factor is unbounded).
    public var amplificationFactor: Double? { projectionOnDelta > 0 ? deltaNorm / projectionOnDelta : nil }
    /// Whether `projectionOnWeight` came from a randomized SVD (matrices with min(out, in) > 1024) rather than LAPACK.
    public let weightSubspaceIsApproximate: Bool

    enum CodingKeys: String, CodingKey {
        case module, rank
        case weightNorm = "weight_frobenius", deltaNorm = "delta_frobenius", projectionOnDelta = "projection_on_delta"
        case projectionOnWeight = "projection_on_weight", projectionOnRandom = "projection_on_random"
        case amplificationFactor = "amplification_factor", weightSubspaceIsApproximate = "weight_subspace_is_approximate"
    }

    /// JSON with snake_case keys; amplification_factor is null when unbounded.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(module, forKey: .module); try c.encode(rank, forKey: .rank)
        try c.encode(weightNorm, forKey: .weightNorm); try c.encode(deltaNorm, forKey: .deltaNorm)
        try c.encode(projectionOnDelta, forKey: .projectionOnDelta); try c.encode(projectionOnWeight, forKey: .projectionOnWeight)
        try c.encode(projectionOnRandom, forKey: .projectionOnRandom)
        try c.encode(amplificationFactor, forKey: .amplificationFactor)
        try c.encode(weightSubspaceIsApproximate, forKey: .weightSubspaceIsApproximate)
    }
}

/// Amplification measurements for every module of an adapter against its base weights.
public struct AmplificationReport: Sendable, Encodable {
    /// Seed of the random baseline subspaces.
    public let seed: UInt64
    /// One row per adapted module (rank-0 modules are left out), in module order.
    public let modules: [ModuleAmplification]

    /// Measures every module with rank ≥ 1. Base weights come from `base` (`<module>.weight` for safetensors).
    /// Throws `missingBaseWeight` / `shapeMismatch` (naming the module) for an adapter of another model.
    public static func measure(adapter: AdapterWeights, base: BaseWeightProvider, seed: UInt64 = 0) throws -> AmplificationReport {
        var rows: [ModuleAmplification] = []
        for module in adapter.modules where module.rank > 0 {
            guard let weight = try base.baseWeight(forModule: module.path) else {
                throw AnalysisError.missingBaseWeight(module: module.path, tensor: base.baseWeightName(forModule: module.path))
            }
            rows.append(try measure(module: module, baseWeight: weight, baseName: base.baseWeightName(forModule: module.path), seed: seed))
        }
        return AmplificationReport(seed: seed, modules: rows)
    }

    /// Measures one module against its base weight W (same shape as ΔW, finite). The random subspaces come from
    /// a generator derived from `seed` and the module path, so each module's baseline is reproducible on its own.
    public static func measure(module: AdapterModule, baseWeight w: Tensor, baseName: String = "base weight",
                               seed: UInt64 = 0) throws -> ModuleAmplification {
        guard w.shape == module.deltaShape else {
            throw AnalysisError.shapeMismatch(module: module.path, first: baseName, firstShape: w.shape,
                                              second: "ΔW of the adapter", secondShape: module.deltaShape)
        }
        if let i = firstNonFiniteIndex(w) { throw AnalysisError.nonFinite(module: module.path, tensor: baseName, index: i) }
        let r = module.rank
        let delta = try module.deltaSVD()                               // u [out, r], vt [r, in]
        let deltaNorm = delta.singularValues.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let onDelta = projectedNorm(w, u: delta.u, vt: delta.vt)

        var rng = RandomGenerator(seed: seed).derived(stableHash(module.path))
        let (out, inFeatures) = (w.shape[0], w.shape[1])
        let randomU = try qr(rng.normal([out, r])).q                   // [out, r] orthonormal columns
        let randomV = try qr(rng.normal([inFeatures, r])).q            // [in, r]
        let onRandom = projectedNorm(w, u: randomU, vt: randomV.transposed())

        // ‖U_WᵀWV_W‖_F = ‖diag(σ_1..σ_r)‖_F: only W's top-r singular values are needed.
        let approximate = min(out, inFeatures) > 1024
        let top: [Float]
        if approximate {
            var svdRNG = RandomGenerator(seed: seed).derived(stableHash(module.path) &+ 1)
            top = try randomizedSVD(w, rank: r, oversampling: 10, powerIterations: 3, rng: &svdRNG).singularValues
        } else {
            top = Array(try singularValues(w).prefix(r))
        }
        let onWeight = top.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let weightNorm = w.withUnsafeBufferPointer { p in p.reduce(0.0) { $0 + Double($1) * Double($1) } }.squareRoot()
        return ModuleAmplification(module: module.path, rank: r, weightNorm: weightNorm, deltaNorm: deltaNorm,
                                   projectionOnDelta: onDelta, projectionOnWeight: onWeight, projectionOnRandom: onRandom,
                                   weightSubspaceIsApproximate: approximate)
    }

    /// ‖Uᵀ W V‖_F for u [out, r] and vt = Vᵀ [r, in]; the r×r product is formed through [r, in].
    static func projectedNorm(_ w: Tensor, u: Tensor, vt: Tensor) -> Double {
        let left = Tensor.matmul(u, w, transposeA: true)          // [r, in]
        let core = Tensor.matmul(left, vt, transposeB: true)      // [r, r]
        return core.withUnsafeBufferPointer { p in p.reduce(0.0) { $0 + Double($1) * Double($1) } }.squareRoot()
    }

    /// FNV-1a of the module path: a salt that does not depend on which other modules the adapter has.
    static func stableHash(_ text: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return h
    }
}
