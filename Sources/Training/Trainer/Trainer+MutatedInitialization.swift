// PiSSA and OLoRA training (`lorakit train --init pissa|olora`): these initialisations move the principal part of
// W into the adapter and leave the base as the residual W − s·B₀A₀, so a trained adapter only fits that residual.
// Like PEFT's `path_initial_model_for_weight_conversion` (spec §1.4), the final adapter is converted to a plain
// LoRA of rank 2r for the *original* base: A' = [A; A₀], B' = [B, −B₀], so s'·B'A' = s·(BA − B₀A₀) with
// r' = 2r and lora_alpha' = 2α (√2·α with rsLoRA). The initial adapter is kept in <out>/initial_adapter. A resumed
// run re-derives the residual by running the same (seeded, deterministic) initialisation before loading the
// checkpoint's weights.
import Foundation
import TensorCore
import PEFT

extension Trainer {
    /// Where a PiSSA/OLoRA run keeps its initial adapter (A₀, B₀).
    var initialAdapterDirectory: URL { configuration.outputDirectory.appendingPathComponent("initial_adapter") }

    /// The PEFT conversion of a trained PiSSA/OLoRA adapter to a rank-2r LoRA on the original base.
    static func convertedToOriginalBase(trained: LoRAAdapterMatrices, initial: LoRAAdapterMatrices) throws -> LoRAAdapterMatrices {
        var config = trained.config
        let factor = config.useRSLoRA ? 2.0.squareRoot() : 2
        config.r *= 2
        config.loraAlpha *= factor
        config.rankPattern = config.rankPattern.map { ($0.key, $0.value * 2) }
        config.alphaPattern = config.alphaPattern.map { ($0.key, $0.value * factor) }
        config.initialization = .standard
        var modules: [LoRAAdapterMatrices.Module] = []
        for m in trained.modules {
            guard let m0 = initial.module(m.path), m0.a.shape == m.a.shape, m0.b.shape == m.b.shape else {
                throw TrainingError.invalidOption(name: "initial_adapter", reason: "has no matching tensors for \(m.path)")
            }
            modules.append(.init(path: m.path, a: WeightedAdapterCombination.stackRows([m.a, m0.a]),
                                 b: WeightedAdapterCombination.stackColumns([m.b, m0.b.scaled(by: -1)]), scaling: m.scaling))
        }
        return LoRAAdapterMatrices(config: config, modules: modules)
    }

    /// Saves the final LoRA adapter: as it is, or converted for the original base after PiSSA/OLoRA.
    func saveFinalLoRA(config: LoRAConfig) throws {
        let c = configuration
        guard config.initialization.mutatesBase else {
            try AdapterFiles.saveLoRA(model, adapter: c.adapterName, config: config, to: c.outputDirectory)
            return
        }
        let trained = try LoRAAdapterMatrices(model: model, adapter: c.adapterName, config: config)
        let initial = try LoRAAdapterMatrices.load(from: initialAdapterDirectory)
        try Self.convertedToOriginalBase(trained: trained, initial: initial).save(to: c.outputDirectory)
        progress?.print("\(config.initialization.json.anyValue) adapter converted to a rank-\(2 * config.r) LoRA for the original base "
            + "(initial adapter in \(initialAdapterDirectory.path))")
    }
}
