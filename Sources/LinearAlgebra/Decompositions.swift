// Exact dense decompositions: SVD (PiSSA, LoftQ, SVD merging of adapters) and reduced QR (OLoRA, orthogonal
// init, randomized SVD). Thin wrappers over TensorCore's LAPACK that validate input and name what was wrong.
import TensorCore

/// A singular value decomposition A = U·diag(S)·Vᵀ of an [m, n] matrix, k = min(m, n).
public struct SVD: Sendable {
    /// Left singular vectors as columns: [m, k] (thin) or [m, m] (full).
    public var u: Tensor
    /// Singular values, non-negative and descending: [k].
    public var s: Tensor
    /// Right singular vectors as rows: [k, n] (thin) or [n, n] (full).
    public var vt: Tensor

    /// Creates a decomposition from its factors (shapes as documented on the properties).
    public init(u: Tensor, s: Tensor, vt: Tensor) { self.u = u; self.s = s; self.vt = vt }

    /// The singular values as an array, descending.
    public var singularValues: [Float] { s.array }

    /// The number of singular triplets, k.
    public var rank: Int { s.count }

    /// U·diag(S)·Vᵀ from the first k columns of U and rows of Vᵀ: the matrix this decomposition describes.
    public func reconstructed() -> Tensor {
        let k = s.count
        let uk = MatrixKernels.leadingColumns(u, k), vtk = MatrixKernels.leadingRows(vt, k)
        return Tensor.matmul(MatrixKernels.scalingColumns(uk, by: s.array), vtk)
    }

    /// The top `rank` triplets (thin): U [m, rank], S [rank], Vᵀ [rank, n]. `rank` must be in 1...k.
    public func truncated(to rank: Int) throws -> SVD {
        guard (1...max(s.count, 1)).contains(rank), rank <= s.count else {
            throw LinearAlgebraError.rankOutOfRange(operation: "SVD.truncated", rank: rank, shape: [u.shape[0], vt.shape[1]],
                                                    allowed: 1...max(s.count, 1))
        }
        return SVD(u: MatrixKernels.leadingColumns(u, rank), s: Tensor(Array(s.array.prefix(rank)), shape: [rank]),
                   vt: MatrixKernels.leadingRows(vt, rank))
    }
}

/// Singular value decomposition of a finite 2-D matrix [m, n] (LAPACK sgesdd).
/// Thin by default (U [m, k], Vᵀ [k, n]); `full: true` gives square U [m, m] and Vᵀ [n, n].
public func svd(_ matrix: Tensor, full: Bool = false) throws -> SVD {
    _ = try MatrixKernels.validatedShape(matrix, operation: "svd", argument: "matrix")
    let (u, s, vt) = try MatrixKernels.factoring(matrix, operation: "svd", argument: "matrix") {
        try LAPACK.gesdd(matrix, full: full)
    }
    return SVD(u: u, s: s, vt: vt)
}

/// The singular values of a finite 2-D matrix, descending, without forming singular vectors (cheaper than `svd`).
public func singularValues(_ matrix: Tensor) throws -> [Float] {
    _ = try MatrixKernels.validatedShape(matrix, operation: "singularValues", argument: "matrix")
    return try MatrixKernels.factoring(matrix, operation: "singularValues", argument: "matrix") {
        try LAPACK.singularValues(matrix).array
    }
}

/// Reduced QR decomposition of a finite [m, n] matrix by Householder reflections (LAPACK sgeqrf + sorgqr):
/// q [m, k] with orthonormal columns, r [k, n] upper triangular, k = min(m, n). Signs follow LAPACK, as
/// `torch.linalg.qr` does, so OLoRA factors match PEFT's.
public func qr(_ matrix: Tensor) throws -> (q: Tensor, r: Tensor) {
    _ = try MatrixKernels.validatedShape(matrix, operation: "qr", argument: "matrix")
    return try MatrixKernels.factoring(matrix, operation: "qr", argument: "matrix") { try LAPACK.qr(matrix) }
}
