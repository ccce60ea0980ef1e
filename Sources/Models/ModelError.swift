// Errors of model loading and running; each names the file and key or tensor, or the argument, involved.

/// Why a model could not be loaded or run.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    /// `general.architecture` / `model_type` names a family this package does not implement.
    case unsupportedArchitecture(file: String, key: String, value: String)
    /// A required hyper-parameter is absent.
    case missingKey(file: String, key: String)
    /// A hyper-parameter is present but unusable (wrong type, out of range, inconsistent).
    case invalidValue(file: String, key: String, reason: String)
    /// A feature the file asks for that is not implemented (e.g. a rope scaling type).
    case unsupportedFeature(file: String, key: String, value: String)
    case missingTensor(file: String, tensor: String)
    case tensorShape(file: String, tensor: String, expected: [Int], got: [Int])
    /// A file or directory that is not a model this package can read.
    case unreadable(path: String, reason: String)
    /// A bad argument to a model call (token ids, batch shape, sampling settings).
    case invalidArgument(name: String, reason: String)
    /// The prompt (plus what must be generated) does not fit in the context window.
    case contextOverflow(tokens: Int, contextLength: Int)

    public var description: String {
        switch self {
        case let .unsupportedArchitecture(file, key, value):
            return "\(file): \(key) = \"\(value)\" is not a supported architecture (supported: llama, and Hugging Face model_type llama, qwen2, mistral)"
        case let .missingKey(file, key): return "\(file): missing \(key)"
        case let .invalidValue(file, key, reason): return "\(file): \(key): \(reason)"
        case let .unsupportedFeature(file, key, value): return "\(file): \(key) = \(value) is not supported"
        case let .missingTensor(file, tensor): return "\(file): missing tensor '\(tensor)'"
        case let .tensorShape(file, tensor, expected, got):
            return "\(file): tensor '\(tensor)' has shape \(got), expected \(expected)"
        case let .unreadable(path, reason): return "\(path): \(reason)"
        case let .invalidArgument(name, reason): return "invalid \(name): \(reason)"
        case let .contextOverflow(tokens, contextLength):
            return "the prompt has \(tokens) tokens but the model's context holds \(contextLength); shorten the prompt"
        }
    }
}
