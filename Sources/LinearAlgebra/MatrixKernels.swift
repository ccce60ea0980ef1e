// The few dense loops the LinearAlgebra module needs besides BLAS/LAPACK: validation, scaling rows or columns,
// slicing leading rows/columns, differences and sums of squares. All work on row-major [rows, columns] buffers.
import TensorCore

enum MatrixKernels {
    /// (rows, columns) of a finite 2-D matrix, or the typed error naming `argument`.
    static func validatedShape(_ t: Tensor, operation: String, argument: String) throws -> (rows: Int, columns: Int) {
        guard t.rank == 2 else { throw LinearAlgebraError.notAMatrix(operation: operation, argument: argument, shape: t.shape) }
        let columns = t.shape[1]
        if let bad = t.withUnsafeBufferPointer({ p in p.firstIndex { !$0.isFinite } }) {
            throw LinearAlgebraError.nonFiniteEntry(operation: operation, argument: argument, row: bad / columns, column: bad % columns)
        }
        return (t.shape[0], columns)
    }

    /// Truncating routines keep 1...min(m, n) singular triplets.
    static func checkRank(_ rank: Int, rows: Int, columns: Int, operation: String) throws {
        let maximum = min(rows, columns)
        guard maximum >= 1, (1...maximum).contains(rank) else {
            throw LinearAlgebraError.rankOutOfRange(operation: operation, rank: rank, shape: [rows, columns],
                                                    allowed: 1...max(maximum, 1))
        }
    }

    /// Runs a LAPACK-backed body, turning backend errors into `factorizationFailed` naming the argument.
    static func factoring<T>(_ t: Tensor, operation: String, argument: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as TensorError {
            throw LinearAlgebraError.factorizationFailed(operation: operation, argument: argument, shape: t.shape,
                                                         reason: error.description)
        }
    }

    /// t [rows, columns] with column j multiplied by scale[j] (U·diag(S)).
    static func scalingColumns(_ t: Tensor, by scale: [Float]) -> Tensor {
        let (rows, columns) = (t.shape[0], t.shape[1])
        precondition(scale.count == columns)
        var out = t
        out.withUnsafeMutableBufferPointer { p in scale.withUnsafeBufferPointer { s in
            for i in 0..<rows { for j in 0..<columns { p[i * columns + j] *= s[j] } }
        } }
        return out
    }

    /// t [rows, columns] with row i multiplied by scale[i] (diag(S)·Vᵀ).
    static func scalingRows(_ t: Tensor, by scale: [Float]) -> Tensor {
        let (rows, columns) = (t.shape[0], t.shape[1])
        precondition(scale.count == rows)
        var out = t
        out.withUnsafeMutableBufferPointer { p in
            for i in 0..<rows { let s = scale[i]; for j in 0..<columns { p[i * columns + j] *= s } }
        }
        return out
    }

    /// The first `count` columns of t [rows, columns] -> [rows, count].
    static func leadingColumns(_ t: Tensor, _ count: Int) -> Tensor {
        let (rows, columns) = (t.shape[0], t.shape[1])
        if count == columns { return t }
        return t.withUnsafeBufferPointer { src in
            Tensor(shape: [rows, count]) { dst in
                for i in 0..<rows { for j in 0..<count { dst[i * count + j] = src[i * columns + j] } }
            }
        }
    }

    /// The first `count` rows of t [rows, columns] -> [count, columns] (contiguous, so one copy).
    static func leadingRows(_ t: Tensor, _ count: Int) -> Tensor {
        let columns = t.shape[1]
        if count == t.shape[0] { return t }
        return t.withUnsafeBufferPointer { src in
            Tensor(shape: [count, columns]) { dst in for i in 0..<(count * columns) { dst[i] = src[i] } }
        }
    }

    /// a − b elementwise (same shape).
    static func difference(_ a: Tensor, _ b: Tensor) -> Tensor {
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in
            Tensor(shape: a.shape) { out in for i in 0..<out.count { out[i] = pa[i] - pb[i] } }
        } }
    }

    /// Σ x² over all elements, accumulated in Double so long sums of small terms keep Float precision.
    static func sumOfSquares(_ t: Tensor) -> Double {
        t.withUnsafeBufferPointer { p in
            var total = 0.0
            for x in p { let d = Double(x); total += d * d }
            return total
        }
    }

    /// ‖G − I‖_F² for a square Gram matrix G [n, n].
    static func squaredDistanceFromIdentity(_ gram: Tensor) -> Double {
        let n = gram.shape[0]
        return gram.withUnsafeBufferPointer { p in
            var total = 0.0
            for i in 0..<n { for j in 0..<n {
                let d = Double(p[i * n + j]) - (i == j ? 1 : 0)
                total += d * d
            } }
            return total
        }
    }
}
