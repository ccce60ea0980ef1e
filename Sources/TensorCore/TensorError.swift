/// Typed errors of the tensor layer; each names the operation and the shapes involved.
public enum TensorError: Error, CustomStringConvertible, Equatable {
    case shapeMismatch(operation: String, expected: [Int], got: [Int])
    case invalidShape([Int], reason: String)
    case invalidArgument(operation: String, reason: String)
    case backendUnavailable(String)
    case lapackFailure(routine: String, info: Int)

    public var description: String {
        switch self {
        case let .shapeMismatch(op, expected, got): return "\(op): shape mismatch, expected \(expected), got \(got)"
        case let .invalidShape(shape, reason): return "invalid shape \(shape): \(reason)"
        case let .invalidArgument(op, reason): return "\(op): \(reason)"
        case let .backendUnavailable(msg): return "BLAS/LAPACK unavailable: \(msg)"
        case let .lapackFailure(routine, info): return "LAPACK \(routine) failed (info = \(info))"
        }
    }
}
