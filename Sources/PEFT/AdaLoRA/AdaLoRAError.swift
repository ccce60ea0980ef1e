/// Errors specific to AdaLoRA's allocator and rank patterns; each names the module or parameter and the fix.
public enum AdaLoRAError: Error, CustomStringConvertible, Equatable {
    /// The allocator found no gradient on a parameter: it must run after `optimizer.step()` and before `zeroGrad()`.
    case missingGradient(parameter: String)
    /// Importance scores became NaN or infinite (the gradients or weights are not finite).
    case nonFiniteImportance(module: String)
    /// A rank_pattern entry names no module the adapter is attached to.
    case unknownPatternModule(key: String, modules: [String])
    /// A rank_pattern mask disagrees with the tensors in an adapter file.
    case patternDisagreesWithTensor(module: String, keptByPattern: Int, maskLength: Int, tensor: String, shape: [Int])
    /// No module of the model carries an AdaLoRA branch under this adapter name.
    case noAdaLoRAModules(adapter: String)
    /// A total budget outside 1 ..< initial budget.
    case invalidBudget(target: Int, initial: Int)
    /// A saved allocator state (a training checkpoint) that does not fit this allocator's modules.
    case invalidAllocatorState(key: String, reason: String)

    public var description: String {
        switch self {
        case let .missingGradient(parameter):
            return "AdaLoRA rank allocator: '\(parameter)' has no gradient; call update(step:) after optimizer.step() "
                + "and before zeroGrad(), and make sure the module takes part in the forward pass"
        case let .nonFiniteImportance(module):
            return "AdaLoRA rank allocator: importance scores of '\(module)' are not finite (NaN/Inf weights or gradients); "
                + "lower the learning rate or check the loss"
        case let .unknownPatternModule(key, modules):
            return "rank_pattern key '\(key)' names no adapted module (expected '<module>.lora_E' for one of: "
                + modules.prefix(6).joined(separator: ", ") + (modules.count > 6 ? ", …)" : ")")
        case let .patternDisagreesWithTensor(module, kept, length, tensor, shape):
            return "rank_pattern for '\(module)' keeps \(kept) of \(length) triplets, but tensor '\(tensor)' has shape \(shape); "
                + "the adapter_config.json and adapter_model.safetensors do not belong together"
        case let .noAdaLoRAModules(adapter):
            return "no module carries an AdaLoRA adapter named '\(adapter)'; add one with addAdaLoRA or loadAdaLoRA first"
        case let .invalidBudget(target, initial):
            return "AdaLoRA target budget \(target) must be in 1..<\(initial) (the initial budget, init_r × modules)"
        case let .invalidAllocatorState(key, reason):
            return "AdaLoRA allocator state '\(key)': \(reason); the checkpoint was written for other AdaLoRA modules or ranks"
        }
    }
}
