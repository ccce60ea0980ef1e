// Typed errors of the layer and optimizer code; each names the parameter, key or argument at fault.

/// Errors of layers, state dicts and optimizers.
public enum NNError: Error, CustomStringConvertible, Equatable {
    /// A constructor argument is out of range (e.g. a dropout probability of 1.5).
    case invalidArgument(name: String, reason: String)
    /// A tensor handed to a layer or loaded by name has the wrong shape.
    case shapeMismatch(name: String, expected: [Int], got: [Int])
    /// A state-dict load found no tensor for a parameter (strict loading).
    case missingKey(String)
    /// A state dict holds a key that names no parameter (strict loading).
    case unexpectedKey(String)
    /// Two parameters given to an optimizer share a name, so their state could not be told apart.
    case duplicateParameterName(String)
    /// An optimizer state entry is malformed.
    case invalidOptimizerState(key: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidArgument(name, reason): return "invalid argument \(name): \(reason)"
        case let .shapeMismatch(name, expected, got): return "\(name): expected shape \(expected), got \(got)"
        case let .missingKey(key): return "state dict has no tensor for parameter \(key)"
        case let .unexpectedKey(key): return "state dict key \(key) names no parameter"
        case let .duplicateParameterName(name): return "parameter name \(name) appears more than once"
        case let .invalidOptimizerState(key, reason): return "optimizer state \(key): \(reason)"
        }
    }
}
