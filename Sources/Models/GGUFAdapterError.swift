// Typed errors of the GGUF LoRA adapter format (export, reading back): each names the file and the tensor or key.

/// Why a GGUF LoRA adapter could not be written or read.
public enum GGUFAdapterError: Error, CustomStringConvertible, Equatable {
    /// A metadata key llama.cpp checks has the wrong value or type (general.type, adapter.type, adapter.lora.alpha).
    case notALoRAAdapter(file: String, key: String, found: String)
    /// The adapter was made for another architecture than the base.
    case architectureMismatch(file: String, adapter: String, base: String, baseFile: String)
    /// The base has no tensor for this adapter tensor (other layer count, or an untied head on a tied base).
    case missingBaseTensor(file: String, tensor: String, baseTensor: String, baseFile: String, baseLayers: Int)
    /// Adapter and base dimensions disagree (ggml order: ne0 first).
    case shapeMismatch(file: String, tensor: String, expected: [Int], got: [Int], baseTensor: String)
    /// Only one of lora_a / lora_b exists.
    case missingPair(file: String, tensor: String, missing: String)
    /// A tensor llama.cpp's loader would refuse (neither .lora_a, .lora_b nor a *_norm.weight).
    case unexpectedTensor(file: String, tensor: String)
    /// A module the GGUF format has no name for (e.g. an embedding LoRA), or a method it cannot represent.
    case unsupported(file: String, subject: String, reason: String)
    /// An unsupported GGUF base architecture.
    case unsupportedArchitecture(file: String, architecture: String)

    public var description: String {
        switch self {
        case let .notALoRAAdapter(file, key, found):
            return "\(file): not a llama.cpp LoRA adapter: \(key) is \(found)"
        case let .architectureMismatch(file, adapter, base, baseFile):
            return "\(file): adapter architecture '\(adapter)' does not match the base model '\(baseFile)' ('\(base)')"
        case let .missingBaseTensor(file, tensor, baseTensor, baseFile, layers):
            return "\(file): tensor '\(tensor)' needs base tensor '\(baseTensor)', which '\(baseFile)' (\(layers) layers) does not have"
        case let .shapeMismatch(file, tensor, expected, got, baseTensor):
            return "\(file): tensor '\(tensor)' has ggml dims \(got), but base tensor '\(baseTensor)' needs \(expected)"
        case let .missingPair(file, tensor, missing):
            return "\(file): tensor '\(tensor)' has no partner '\(missing)'"
        case let .unexpectedTensor(file, tensor):
            return "\(file): tensor '\(tensor)' is not a LoRA tensor (names must end in .lora_a or .lora_b)"
        case let .unsupported(file, subject, reason):
            return "\(file): \(subject): \(reason)"
        case let .unsupportedArchitecture(file, architecture):
            return "\(file): GGUF architecture '\(architecture)' is not supported (supported: \(GGUFArchitecture.supportedNames.joined(separator: ", ")))"
        }
    }
}
