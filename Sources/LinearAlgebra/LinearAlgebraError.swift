// Typed errors of the LinearAlgebra module. Each names the operation and the argument at fault, so a caller
// (PEFT initialising a layer, say) can say exactly which matrix was wrong and why.
import TensorCore

/// Why a decomposition or low-rank routine refused its input or failed.
public enum LinearAlgebraError: Error, CustomStringConvertible, Equatable {
    /// `argument` must be a 2-D matrix but has `shape`.
    case notAMatrix(operation: String, argument: String, shape: [Int])
    /// `argument` holds NaN or ±Inf at [row, column].
    case nonFiniteEntry(operation: String, argument: String, row: Int, column: Int)
    /// The requested `rank` is outside `allowed` for a matrix of `shape`.
    case rankOutOfRange(operation: String, rank: Int, shape: [Int], allowed: ClosedRange<Int>)
    /// Two arguments that must have the same shape do not.
    case shapeMismatch(operation: String, first: String, firstShape: [Int], second: String, secondShape: [Int])
    /// Any other bad argument value (negative tolerance, unsorted singular values, ...).
    case invalidArgument(operation: String, argument: String, reason: String)
    /// LAPACK could not factor `argument` (of `shape`); `reason` carries the backend's message.
    case factorizationFailed(operation: String, argument: String, shape: [Int], reason: String)

    public var description: String {
        switch self {
        case let .notAMatrix(op, arg, shape):
            return "\(op): \(arg) must be a 2-D matrix, got shape \(shape)"
        case let .nonFiniteEntry(op, arg, row, column):
            return "\(op): \(arg) has a non-finite entry (NaN or Inf) at [\(row), \(column)]"
        case let .rankOutOfRange(op, rank, shape, allowed):
            return "\(op): rank \(rank) is outside \(allowed.lowerBound)...\(allowed.upperBound) for a matrix of shape \(shape)"
        case let .shapeMismatch(op, first, firstShape, second, secondShape):
            return "\(op): \(first) has shape \(firstShape) but \(second) has shape \(secondShape)"
        case let .invalidArgument(op, arg, reason):
            return "\(op): invalid \(arg): \(reason)"
        case let .factorizationFailed(op, arg, shape, reason):
            return "\(op): could not factor \(arg) of shape \(shape): \(reason)"
        }
    }
}
