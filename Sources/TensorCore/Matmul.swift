// Matrix products on tensors, all through BLAS.gemm.

extension Tensor {
    /// op(a)·op(b) for 2-D tensors, or batched when both are 3-D ([batch, m, k] · [batch, k, n]),
    /// or a 3-D/N-D `a` against a 2-D `b` (the leading dimensions are flattened into rows, as in x·Wᵀ).
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false,
                              alpha: Float = 1) -> Tensor {
        do { return try checkedMatmul(a, b, transposeA: transposeA, transposeB: transposeB, alpha: alpha) }
        catch { preconditionFailure("\(error)") }
    }

    public static func checkedMatmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false,
                                     alpha: Float = 1) throws -> Tensor {
        if b.rank == 2 && (a.rank == 2 || (a.rank > 2 && !transposeA)) {
            // Rows of `a` (all leading dims flattened) times a single matrix.
            let aRows = a.rank == 2 ? (transposeA ? a.shape[1] : a.shape[0]) : a.count / max(a.dim(-1), 1)
            let aCols = a.rank == 2 ? (transposeA ? a.shape[0] : a.shape[1]) : a.dim(-1)
            let (bRows, bCols) = transposeB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
            guard aCols == bRows else {
                throw TensorError.shapeMismatch(operation: "matmul (inner dimensions)", expected: [aRows, bRows], got: [aRows, aCols])
            }
            let outShape = a.rank == 2 ? [aRows, bCols] : Array(a.shape.dropLast()) + [bCols]
            var out = Tensor(zeros: outShape)
            a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in out.withUnsafeMutableBufferPointer { pc in
                BLAS.gemm(transposeA ? .transposed : .none, transposeB ? .transposed : .none,
                          m: aRows, n: bCols, k: aCols, alpha: alpha,
                          a: pa.baseAddress!, lda: a.rank == 2 ? a.shape[1] : aCols,
                          b: pb.baseAddress!, ldb: b.shape[1], beta: 1, c: pc.baseAddress!, ldc: bCols)  // onto zeros
            } } }
            return out
        }
        guard a.rank == 3, b.rank == 3, a.shape[0] == b.shape[0] else {
            throw TensorError.shapeMismatch(operation: "batched matmul", expected: a.shape, got: b.shape)
        }
        let batch = a.shape[0]
        let (m, k) = transposeA ? (a.shape[2], a.shape[1]) : (a.shape[1], a.shape[2])
        let (k2, n) = transposeB ? (b.shape[2], b.shape[1]) : (b.shape[1], b.shape[2])
        guard k == k2 else { throw TensorError.shapeMismatch(operation: "batched matmul (inner dimensions)", expected: [m, k], got: [k2, n]) }
        var out = Tensor(zeros: [batch, m, n])
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in out.withUnsafeMutableBufferPointer { pc in
            for i in 0..<batch {
                BLAS.gemm(transposeA ? .transposed : .none, transposeB ? .transposed : .none, m: m, n: n, k: k, alpha: alpha,
                          a: pa.baseAddress! + i * a.shape[1] * a.shape[2], lda: a.shape[2],
                          b: pb.baseAddress! + i * b.shape[1] * b.shape[2], ldb: b.shape[2],
                          beta: 1, c: pc.baseAddress! + i * m * n, ldc: n)  // onto zeros
            }
        } } }
        return out
    }
}
