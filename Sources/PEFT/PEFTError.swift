/// Errors of the PEFT layer. Each names the module, field, tensor or file involved, and how to fix it.
public enum PEFTError: Error, CustomStringConvertible, Equatable {
    case invalidConfig(field: String, reason: String)
    case noTargetMatched(targets: String, available: [String])
    case unknownModule(String, available: [String])
    case adapterExists(String)
    case unknownAdapter(String, available: [String])
    case adapterMerged(String)
    case nonFiniteMerge(adapter: String, module: String)
    case shapeMismatch(tensor: String, expected: [Int], got: [Int])
    case missingTensor(String, file: String)
    case unexpectedTensor(String, file: String)
    case file(path: String, reason: String)
    /// DoRA asked for where PEFT does not allow it (AdaLoRA, mixed-adapter batches, a non-linear module).
    case doraUnsupported(adapter: String?, module: String?, reason: String)
    /// Adapters that cannot be combined (different targets, base shapes, kinds), naming both and the module.
    case incompatibleAdapters(first: String, second: String, module: String?, reason: String)
    /// A mixed-adapter batch that cannot run: wrong number of names, merged adapters, training mode.
    case invalidAdapterBatch(reason: String)

    public var description: String {
        switch self {
        case let .invalidConfig(field, reason): return "invalid adapter config: `\(field)`: \(reason)"
        case let .noTargetMatched(targets, available):
            return "target_modules \(targets) matched no module of the model. Linear modules available: "
                + Self.summarise(available)
        case let .unknownModule(name, available): return "no module named '\(name)'. Available: " + Self.summarise(available)
        case let .adapterExists(name): return "an adapter named '\(name)' already exists"
        case let .unknownAdapter(name, available): return "adapter '\(name)' does not exist (have: \(available.joined(separator: ", ")))"
        case let .adapterMerged(name): return "adapter '\(name)' is merged into the base weights; unmerge it first"
        case let .nonFiniteMerge(adapter, module):
            return "merging adapter '\(adapter)' into \(module) gives NaN/Inf weights: the adapter seems broken (base left untouched)"
        case let .shapeMismatch(tensor, expected, got): return "tensor '\(tensor)': expected shape \(expected), got \(got)"
        case let .missingTensor(name, file): return "\(file): missing tensor '\(name)'"
        case let .unexpectedTensor(name, file): return "\(file): tensor '\(name)' does not belong to any adapted module"
        case let .file(path, reason): return "\(path): \(reason)"
        case let .doraUnsupported(adapter, module, reason):
            return "DoRA" + (adapter.map { " adapter '\($0)'" } ?? "") + (module.map { " on \($0)" } ?? "") + ": " + reason
        case let .incompatibleAdapters(first, second, module, reason):
            return "cannot combine adapters '\(first)' and '\(second)'" + (module.map { " at \($0)" } ?? "") + ": " + reason
        case let .invalidAdapterBatch(reason): return "mixed-adapter batch: " + reason
        }
    }

    /// Module lists can be long (a 30-layer model has 210 linears): show the distinct leaf names and a few paths.
    static func summarise(_ names: [String]) -> String {
        let leaves = Array(Set(names.map { $0.split(separator: ".").last.map(String.init) ?? $0 })).sorted()
        let examples = names.prefix(4).joined(separator: ", ")
        return "\(leaves.joined(separator: ", ")) (\(names.count) modules, e.g. \(examples))"
    }
}
