// Model-level LoRA: find the target modules (spec §1.2) and attach a `LoRABranch` to each (PEFT's LoraModel).
import TensorCore
import Autograd

/// A model whose linear layers can carry adapters. Paths follow Hugging Face (`model.layers.0.self_attn.q_proj`).
public protocol AdaptableModel: AnyObject {
    /// Every linear layer of the model, in model order.
    var adaptedLinears: [AdaptedLinear] { get }
    /// Module names `all-linear` must skip (the output head).
    var outputHeadNames: Set<String> { get }
}

extension AdaptableModel {
    public var outputHeadNames: Set<String> { ["lm_head"] }

    /// The linear layers a config targets; a selector that matches nothing is an error listing what exists.
    public func targetedLinears(_ config: LoRAConfig) throws -> [AdaptedLinear] {
        guard let selector = config.targetModules else {
            throw PEFTError.invalidConfig(field: "target_modules", reason: "no target modules given (e.g. q_proj,v_proj or all-linear)")
        }
        let layers = try adaptedLinears.filter { try config.targets($0.path, outputHeadNames: outputHeadNames) }
        if layers.isEmpty {
            throw PEFTError.noTargetMatched(targets: "\(selector.json.anyValue)", available: adaptedLinears.map(\.path))
        }
        if let exclude = config.excludeModules {
            let matchedBeforeExclusion = try adaptedLinears.filter { try selector.matches($0.path, outputHeadNames: outputHeadNames) }
            if try !matchedBeforeExclusion.contains(where: { try exclude.matches($0.path) }) {
                PEFTDiagnostics.warn("exclude_modules \(exclude.json.anyValue) excluded nothing")
            }
        }
        return layers
    }

    public func linear(at path: String) -> AdaptedLinear? { adaptedLinears.first { $0.path == path } }

    /// Names of all adapters present on any layer.
    public var adapterNames: [String] {
        var seen: [String] = []
        for l in adaptedLinears { for a in l.adapters where !seen.contains(a.name) { seen.append(a.name) } }
        return seen
    }

    /// Makes `names` the active adapters on every layer (several active adapters add their deltas).
    public func setActiveAdapters(_ names: [String]) throws {
        let known = adapterNames
        for n in names where !known.contains(n) { throw PEFTError.unknownAdapter(n, available: known) }
        for l in adaptedLinears { l.activeAdapterNames = names.filter { l.adapter(named: $0) != nil } }
    }

    /// Turns all adapters off (exact base output) or on again.
    public func setAdaptersDisabled(_ disabled: Bool) { for l in adaptedLinears { l.setAdaptersDisabled(disabled) } }

    /// Deletes an adapter everywhere. Refuses (changing nothing) if it is merged anywhere.
    public func deleteAdapter(_ name: String) throws {
        guard adapterNames.contains(name) else { throw PEFTError.unknownAdapter(name, available: adapterNames) }
        if adaptedLinears.contains(where: { $0.mergedAdapterNames.contains(name) }) { throw PEFTError.adapterMerged(name) }
        for l in adaptedLinears where l.adapter(named: name) != nil { try l.deleteAdapter(name) }
    }

    /// Merges the active adapters into the base weights of every adapted layer.
    public func mergeAdapters(safe: Bool = false) throws {
        for l in adaptedLinears where !l.activeAdapterNames.isEmpty { try l.merge(safe: safe) }
    }

    public func unmergeAdapters() { for l in adaptedLinears where !l.mergedAdapterNames.isEmpty { l.unmerge() } }

    /// Trainable adapter parameters of one adapter, with full PEFT module paths.
    public func adapterParameters(_ name: String) -> [(String, Variable)] {
        adaptedLinears.flatMap { $0.adapterParameters(name) }
    }

    /// Adds a LoRA adapter to every targeted layer. Returns the adapted module paths.
    @discardableResult
    public func addLoRA(_ config: LoRAConfig, name: String = "default", rng: inout RandomGenerator) throws -> [String] {
        try config.validate()
        let layers = try targetedLinears(config)
        if layers.contains(where: { $0.adapter(named: name) != nil }) { throw PEFTError.adapterExists(name) }
        let saved = try modulesToSave(config.modulesToSave ?? [])  // checked before anything changes
        if let both = saved.first(where: { s in layers.contains { $0 === s } }) {
            throw PEFTError.invalidConfig(field: "modules_to_save", reason: "\(both.path) is also a LoRA target")
        }
        for layer in layers {
            let (r, alpha, _) = try config.resolved(for: layer.path)
            try AdaptedLinear.checkAdapterSize(rank: r, layer: layer, field: "r")
            var layerRNG = rng.derived(UInt64(truncatingIfNeeded: layer.path.hashValueStable))
            let (branch, residual) = try LoRABranch.initialize(
                weight: layer.baseValueForInitialization(config.initialization), rank: r, alpha: alpha,
                useRSLoRA: config.useRSLoRA, dropout: Float(config.loraDropout), method: config.initialization,
                rng: &layerRNG, module: layer.path)
            if let residual { try layer.replaceBaseWeight(residual) }
            if config.useDoRA {  // magnitude from the (possibly residual) base and the initial B·A, as PEFT
                try layer.addAdapter(name, DoRABranch.initialize(lora: branch, layer: layer))
            } else {
                try layer.addAdapter(name, branch)
            }
        }
        for layer in saved { try layer.addAdapter(name, ModulesToSaveBranch(copying: layer)) }
        _ = rng.nextUInt64()  // advance the caller's stream once per injection
        return layers.map(\.path)
    }
}

extension String {
    /// FNV-1a: a hash that is the same in every process (Swift's `hashValue` is randomly seeded per run).
    var hashValueStable: UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }
}
