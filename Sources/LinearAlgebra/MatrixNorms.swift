// Norms and orthonormality measures used to judge factorisations (and, in AdaLoRA, to regularise P and Q).
import TensorCore

/// Which vectors of a matrix should be orthonormal.
public enum VectorLayout: Sendable {
    /// The columns (U-like factors, [m, k] with k ≤ m): measures ‖MᵀM − I‖_F.
    case columns
    /// The rows (Vᵀ-like factors, [k, n] with k ≤ n): measures ‖MMᵀ − I‖_F.
    case rows
}

/// sqrt(Σ x²) over all elements of a tensor of any shape, accumulated in Double.
public func frobeniusNorm(_ tensor: Tensor) -> Float {
    Float(MatrixKernels.sumOfSquares(tensor).squareRoot())
}

/// The largest singular value of a finite 2-D matrix (0 for an empty one).
public func spectralNorm(_ matrix: Tensor) throws -> Float {
    _ = try MatrixKernels.validatedShape(matrix, operation: "spectralNorm", argument: "matrix")
    return try singularValues(matrix).first ?? 0
}

/// ‖MᵀM − I‖_F (columns) or ‖MMᵀ − I‖_F (rows): 0 exactly when those vectors are orthonormal.
public func orthonormalityError(_ matrix: Tensor, of vectors: VectorLayout = .columns) throws -> Float {
    _ = try MatrixKernels.validatedShape(matrix, operation: "orthonormalityError", argument: "matrix")
    let gram = vectors == .columns ? Tensor.matmul(matrix, matrix, transposeA: true)   // [n, n]
                                   : Tensor.matmul(matrix, matrix, transposeB: true)   // [m, m]
    return Float(MatrixKernels.squaredDistanceFromIdentity(gram).squareRoot())
}
