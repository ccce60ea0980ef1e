// The rank allocator's mutable state as named tensors, so a training checkpoint can continue an AdaLoRA run
// exactly: the importance EMAs (Ī, Ū) of every module's A, E and B, and the current rank pattern.
//   importance.<module>.lora_A.sensitivity   [r, in]    (only while the EMAs exist: before the final masking)
//   importance.<module>.lora_A.uncertainty   [r, in]    (likewise for lora_E [r, 1] and lora_B [out, r])
//   rank_pattern.<module>                     [init_r]   1 = kept, 0 = masked (only once a pattern exists)
// The branch tensors themselves (with E's masked entries at zero) belong to the adapter files.
import TensorCore

extension RankAllocator {
    static let importancePrefix = "importance."
    static let patternPrefix = "rank_pattern."
    static let parameterNames = ["lora_A", "lora_E", "lora_B"]

    /// Everything `update(step:)` carries from one step to the next, as named tensors (see the file header).
    public func exportState() -> [String: Tensor] {
        var state: [String: Tensor] = [:]
        if let importance {
            for (i, m) in modules.enumerated() {
                for (j, name) in Self.parameterNames.enumerated() {
                    let key = Self.importancePrefix + m.path + "." + name
                    state[key + ".sensitivity"] = importance[i][j].sensitivity
                    state[key + ".uncertainty"] = importance[i][j].uncertainty
                }
            }
        }
        if let pattern = config.rankPattern {
            for m in modules {
                guard let mask = pattern[Self.patternKey(m.path)] else { continue }
                state[Self.patternPrefix + m.path] = Tensor(mask.map { $0 ? 1 : 0 }, shape: [mask.count])
            }
        }
        return state
    }

    /// Restores a state `exportState()` wrote, replacing the current one. Every name, shape and value is checked
    /// before anything changes: unknown or missing entries, wrong shapes, non-finite EMAs or masks that are not
    /// 0/1 throw `AdaLoRAError.invalidAllocatorState`.
    public func importState(_ state: [String: Tensor]) throws {
        func fail(_ key: String, _ reason: String) -> AdaLoRAError { .invalidAllocatorState(key: key, reason: reason) }
        var used = Set<String>()
        // Importance: all or nothing.
        let hasImportance = state.keys.contains { $0.hasPrefix(Self.importancePrefix) }
        var restored: [[Importance]]? = nil
        if hasImportance {
            restored = try modules.map { m in
                try [m.branch.a, m.branch.e, m.branch.b].enumerated().map { j, p in
                    let key = Self.importancePrefix + m.path + "." + Self.parameterNames[j]
                    func tensor(_ field: String) throws -> Tensor {
                        let name = key + "." + field
                        guard let t = state[name] else { throw fail(name, "missing (the state holds importance for other modules)") }
                        guard t.shape == p.shape else { throw fail(name, "has shape \(t.shape), the parameter has \(p.shape)") }
                        guard t.array.allSatisfy({ $0.isFinite && $0 >= 0 }) else { throw fail(name, "holds negative or non-finite values") }
                        used.insert(name)
                        return t
                    }
                    return Importance(sensitivity: try tensor("sensitivity"), uncertainty: try tensor("uncertainty"))
                }
            }
        }
        // Rank pattern: a mask per module, or none at all.
        var pattern: [String: [Bool]]? = nil
        for m in modules {
            let key = Self.patternPrefix + m.path
            guard let t = state[key] else { continue }
            guard t.shape == [m.branch.rank] else { throw fail(key, "has shape \(t.shape), the module has \(m.branch.rank) triplets") }
            let values = t.array
            guard values.allSatisfy({ $0 == 0 || $0 == 1 }) else { throw fail(key, "a mask must hold only 0 and 1") }
            pattern = pattern ?? [:]
            pattern![Self.patternKey(m.path)] = values.map { $0 == 1 }
            used.insert(key)
        }
        if let pattern, pattern.count != modules.count {
            let missing = modules.first { pattern[Self.patternKey($0.path)] == nil }!.path
            throw fail(Self.patternPrefix + missing, "missing, while other modules have a rank pattern")
        }
        if let unknown = state.keys.sorted().first(where: { !used.contains($0) }) {
            throw fail(unknown, "names no module of this allocator")
        }
        importance = restored
        config.rankPattern = pattern
    }
}
