// The SVD of a low-rank product ΔW = s·B·A without forming ΔW: with B = Q_b R_b and Aᵀ = Q_a R_a (thin QR),
// ΔW = Q_b (s·R_b R_aᵀ) Q_aᵀ, so the SVD of the r×r core M = U_m Σ V_mᵀ gives ΔW = (Q_b U_m) Σ (Q_a V_m)ᵀ.
// Cost O((out + in)·r²) instead of O(out·in·min(out, in)): the exact spectrum of a 4096×4096 ΔW in microseconds.
import TensorCore
import LinearAlgebra

/// The thin SVD of s·B·A for B [out, r], A [r, in] with 1 ≤ r ≤ min(out, in): U [out, r], S [r], Vᵀ [r, in].
/// Singular values beyond the r returned are exactly zero.
public func lowRankProductSVD(b: Tensor, a: Tensor, scaling: Double) throws -> SVD {
    guard b.rank == 2, a.rank == 2, b.shape[1] == a.shape[0] else {
        throw LinearAlgebraError.shapeMismatch(operation: "lowRankProductSVD", first: "B", firstShape: b.shape,
                                               second: "A", secondShape: a.shape)
    }
    let r = a.shape[0], out = b.shape[0], inFeatures = a.shape[1]
    guard r >= 1, r <= min(out, inFeatures) else {
        throw LinearAlgebraError.rankOutOfRange(operation: "lowRankProductSVD", rank: r, shape: [out, inFeatures],
                                                allowed: 1...max(1, min(out, inFeatures)))
    }
    let (qb, rb) = try qr(b)                 // qb [out, r], rb [r, r]
    let (qa, ra) = try qr(a.transposed())    // qa [in, r], ra [r, r]
    let core = Tensor.matmul(rb, ra, transposeB: true, alpha: Float(scaling))   // [r, r]
    let inner = try svd(core)
    let u = Tensor.matmul(qb, inner.u)                       // [out, r]
    let vt = Tensor.matmul(inner.vt, qa, transposeB: true)   // [r, in]
    return SVD(u: u, s: inner.s, vt: vt)
}

extension AdapterModule {
    /// The thin SVD of ΔW in the base weight's layout (embeddings: of (s·B·A)ᵀ, so U and V swap roles).
    /// Requires 1 ≤ r ≤ min(out, in); throws `rankExceedsMatrix` naming the module otherwise.
    public func deltaSVD() throws -> SVD {
        try checkRankFitsMatrix()
        guard rank > 0 else {
            throw AnalysisError.inconsistentModule(module: path, reason: "rank 0 (pruned by AdaLoRA): ΔW = 0 has no singular vectors")
        }
        let product = try lowRankProductSVD(b: b, a: a, scaling: scaling)
        guard isEmbedding else { return product }
        return SVD(u: product.vt.transposed(), s: product.s, vt: product.u.transposed())
    }
}
