// Typed errors of the Analysis module. Each names the file, tensor or adapted module at fault, so a user comparing
// two adapters or an adapter with a model learns exactly which module does not fit and why.
import Foundation
import TensorCore

/// Why an analysis refused its input.
public enum AnalysisError: Error, CustomStringConvertible, Equatable {
    /// A file or directory could not be found or read.
    case file(path: String, reason: String)
    /// `tensor` is not in `file`; `available` gives a few names that are.
    case missingTensor(String, file: String, available: [String])
    /// `tensor` must be a 2-D matrix but has `shape`.
    case notAMatrix(tensor: String, shape: [Int])
    /// `tensor` of `module` holds NaN or ±Inf at flat index `index`.
    case nonFinite(module: String, tensor: String, index: Int)
    /// The adapter file holds lora_A without lora_B for `module` or the reverse.
    case incompleteModule(module: String, missing: String, file: String)
    /// The factor shapes of `module` do not chain (B [out, r] · A [r, in]) or disagree with the config's rank.
    case inconsistentModule(module: String, reason: String)
    /// `module` has rank `rank`, more than min(out, in) of its [out, in] matrix: ΔW cannot have that rank.
    case rankExceedsMatrix(module: String, rank: Int, shape: [Int])
    /// The adapter directory holds no LoRA tensors at all.
    case noModules(file: String)
    /// Two adapters share no adapted module (they target different modules or different models).
    case noCommonModules(first: [String], second: [String])
    /// `module` has different shapes in the two inputs: they belong to different base models.
    case shapeMismatch(module: String, first: String, firstShape: [Int], second: String, secondShape: [Int])
    /// The base model has no weight for adapted `module` (looked for `tensor`).
    case missingBaseWeight(module: String, tensor: String)
    /// The requested analysis cannot be done on this input (for example GGUF base weights for amplification).
    case unsupported(String)
    /// Any other bad argument value.
    case invalidArgument(argument: String, reason: String)

    public var description: String {
        switch self {
        case let .file(path, reason):
            return "\(path): \(reason)"
        case let .missingTensor(name, file, available):
            let hint = available.isEmpty ? "" : " (it has e.g. \(available.prefix(6).joined(separator: ", ")))"
            return "\(file): no tensor named '\(name)'\(hint)"
        case let .notAMatrix(tensor, shape):
            return "tensor '\(tensor)' must be a 2-D matrix, got shape \(shape)"
        case let .nonFinite(module, tensor, index):
            return "module '\(module)': \(tensor) has a NaN or Inf value at flat index \(index)"
        case let .incompleteModule(module, missing, file):
            return "\(file): module '\(module)' has no \(missing) (LoRA needs both lora_A and lora_B)"
        case let .inconsistentModule(module, reason):
            return "module '\(module)': \(reason)"
        case let .rankExceedsMatrix(module, rank, shape):
            return "module '\(module)': rank \(rank) exceeds min(out, in) = \(shape.min() ?? 0) of its \(shape) matrix; "
                + "ΔW cannot have rank above \(shape.min() ?? 0), so this adapter is misconfigured for the model"
        case let .noModules(file):
            return "\(file): no LoRA tensors (…lora_A.weight / …lora_B.weight) found"
        case let .noCommonModules(first, second):
            return "the adapters share no adapted module: the first adapts \(Self.summarise(first)), "
                + "the second \(Self.summarise(second))"
        case let .shapeMismatch(module, first, firstShape, second, secondShape):
            return "module '\(module)': \(first) has shape \(firstShape) but \(second) has shape \(secondShape) "
                + "(different base models?)"
        case let .missingBaseWeight(module, tensor):
            return "the base model has no weight '\(tensor)' for adapted module '\(module)' (adapter for a different model?)"
        case let .unsupported(reason):
            return reason
        case let .invalidArgument(argument, reason):
            return "invalid \(argument): \(reason)"
        }
    }

    static func summarise(_ names: [String]) -> String {
        names.isEmpty ? "nothing" : "\(names.count) modules (e.g. \(names.prefix(3).joined(separator: ", ")))"
    }
}

/// The flat index of the first NaN or ±Inf in `tensor`, or nil when all values are finite.
func firstNonFiniteIndex(_ tensor: Tensor) -> Int? {
    tensor.withUnsafeBufferPointer { p in
        // One vectorisable pass: x − x is 0 for finite x and NaN for NaN/Inf, so the sum is NaN iff any is.
        var probe: Float = 0
        for v in p { probe += v - v }
        guard probe.isNaN else { return nil }
        return p.firstIndex { !$0.isFinite }
    }
}
