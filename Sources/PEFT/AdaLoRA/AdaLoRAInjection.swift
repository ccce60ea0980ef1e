// Model-level AdaLoRA (PEFT's AdaLoraModel): attach an SVD-form branch to every targeted linear layer.
import TensorCore
import Autograd

extension AdaptableModel {
    /// Adds an AdaLoRA adapter (rank init_r) to every layer the config targets. Returns the adapted module paths.
    @discardableResult
    public func addAdaLoRA(_ config: AdaLoRAConfig, name: String = "default", rng: inout RandomGenerator) throws -> [String] {
        try config.validate()
        let layers = try targetedLinears(config.lora)
        if layers.contains(where: { $0.adapter(named: name) != nil }) { throw PEFTError.adapterExists(name) }
        if config.lora.useRSLoRA { PEFTDiagnostics.warn("use_rslora is not used by AdaLoRA and is ignored") }
        if !config.lora.alphaPattern.isEmpty { PEFTDiagnostics.warn("alpha_pattern is not used by AdaLoRA and is ignored") }
        var branches: [(AdaptedLinear, AdaLoRABranch)] = []
        for layer in layers {
            try AdaptedLinear.checkAdapterSize(rank: config.initR, layer: layer, field: "init_r")
            var layerRNG = rng.derived(UInt64(truncatingIfNeeded: layer.path.hashValueStable))
            let branch = try AdaLoRABranch.initialize(
                outFeatures: layer.outFeatures, inFeatures: layer.inFeatures, rank: config.initR, scaling: config.scaling,
                dropout: Float(config.lora.loraDropout), random: config.lora.initialization == .random, rng: &layerRNG,
                module: layer.path)
            branches.append((layer, branch))
        }
        for (layer, branch) in branches { try layer.addAdapter(name, branch) }
        _ = rng.nextUInt64()  // advance the caller's stream once per injection
        return layers.map(\.path)
    }

    /// The AdaLoRA branches of one adapter with their module paths, in model order.
    public func adaLoRABranches(_ name: String = "default") -> [(path: String, branch: AdaLoRABranch)] {
        adaptedLinears.compactMap { layer in (layer.adapter(named: name) as? AdaLoRABranch).map { (layer.path, $0) } }
    }

    /// Physical rank of each AdaLoRA branch (after a pruned load: the kept triplets).
    public func adaLoRARanks(_ name: String = "default") -> [String: Int] {
        Dictionary(uniqueKeysWithValues: adaLoRABranches(name).map { ($0.path, $0.branch.rank) })
    }
}
