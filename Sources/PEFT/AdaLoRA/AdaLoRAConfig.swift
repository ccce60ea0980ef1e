// AdaLoRA configuration with PEFT's field names and semantics (spec §3.1). The LoRA fields that still apply
// (lora_alpha, lora_dropout, target_modules, …) live in a `LoRAConfig`; its `r` is not used (init_r is).
import Foundation

public struct AdaLoRAConfig: Equatable, Sendable {
    /// The LoRA fields that still apply: target/exclude modules, layer filter, lora_alpha, lora_dropout,
    /// init_lora_weights (true/false), bias, modules_to_save, task_type. `r` is ignored, as in PEFT.
    public var lora: LoRAConfig
    /// Rank every adapted matrix starts with (`init_r`).
    public var initR: Int = 12
    /// Target average rank: the final total budget is `target_r × number of adapted matrices` (`target_r`).
    public var targetR: Int = 8
    /// Warm-up steps with the full budget (`tinit`).
    public var tinit: Int = 0
    /// Length of the final phase with a fixed rank pattern (`tfinal`); a duration, not a time point.
    public var tfinal: Int = 0
    /// Re-allocate every `deltaT` steps while the budget shrinks (`deltaT`).
    public var deltaT: Int = 1
    /// EMA coefficient of the sensitivity (`beta1`) and of its uncertainty (`beta2`), both in (0, 1).
    public var beta1: Double = 0.85
    public var beta2: Double = 0.85
    /// γ of the orthogonal regulariser added to the loss (`orth_reg_weight`).
    public var orthRegWeight: Double = 0.5
    /// Total optimizer steps T (`total_step`); required.
    public var totalStep: Int? = nil
    /// Kept triplets per module, keyed `<module path>.lora_E`, each of length init_r (`rank_pattern`). Filled by
    /// the rank allocator; nil until allocation ran (then full init_r tensors are saved).
    public var rankPattern: [String: [Bool]]? = nil

    public init(initR: Int = 12, targetR: Int = 8, tinit: Int = 0, tfinal: Int = 0, deltaT: Int = 1, totalStep: Int? = nil,
                loraAlpha: Double = 8, targetModules: ModuleSelector? = nil) {
        lora = LoRAConfig(r: 8, loraAlpha: loraAlpha, targetModules: targetModules)
        self.initR = initR; self.targetR = targetR; self.tinit = tinit; self.tfinal = tfinal; self.deltaT = deltaT
        self.totalStep = totalStep
    }

    /// The branch scaling numerator: `lora_alpha`, or init_r when lora_alpha is 0 (PEFT's `alpha if alpha > 0 else r`).
    public var scaling: Double { lora.loraAlpha > 0 ? lora.loraAlpha : Double(initR) }

    /// The step from which the rank pattern is fixed: `total_step − tfinal`.
    public var finalStep: Int { (totalStep ?? 0) - tfinal }

    /// Checks every value PEFT rejects, plus schedules PEFT would only fail on mid-training; each message says how
    /// to fix the value.
    public func validate() throws {
        func fail(_ field: String, _ reason: String) -> PEFTError { PEFTError.invalidConfig(field: field, reason: reason) }
        guard let total = totalStep, total > 0 else {
            throw fail("total_step", "AdaLoRA needs the total number of optimizer steps to schedule the budget; "
                + "supply total_step > 0 (got \(totalStep.map(String.init) ?? "null"))")
        }
        guard initR >= 1 else { throw fail("init_r", "must be at least 1, got \(initR)") }
        guard targetR >= 1 else {
            throw fail("target_r", "must be at least 1 so the final budget (target_r × modules) is positive, got \(targetR); "
                + "to drop the adapter entirely, do not add it")
        }
        guard targetR < initR else {
            throw fail("target_r", "target_r (\(targetR)) must be smaller than init_r (\(initR)), otherwise there is no budget "
                + "to reallocate; lower target_r or raise init_r (the paper uses init_r ≈ 1.5 × target_r)")
        }
        guard tinit >= 0 else { throw fail("tinit", "must be ≥ 0, got \(tinit)") }
        guard tfinal >= 0 else { throw fail("tfinal", "must be ≥ 0, got \(tfinal)") }
        guard tinit < total - tfinal else {
            throw fail("tinit", "the supplied schedule values don't allow for a budgeting phase: tinit (\(tinit)) + tfinal "
                + "(\(tfinal)) must be smaller than total_step (\(total)); decrease tfinal or tinit, or increase total_step")
        }
        guard deltaT >= 1 else { throw fail("deltaT", "must be at least 1 (re-allocate every deltaT steps), got \(deltaT)") }
        for (field, beta) in [("beta1", beta1), ("beta2", beta2)] where !(beta > 0 && beta < 1) {
            throw fail(field, "must be strictly between 0 and 1 (an EMA coefficient; PEFT's default is 0.85), got \(beta)")
        }
        guard orthRegWeight.isFinite, orthRegWeight >= 0 else {
            throw fail("orth_reg_weight", "must be ≥ 0 (0 disables the orthogonal regulariser), got \(orthRegWeight)")
        }
        guard lora.loraAlpha.isFinite, lora.loraAlpha >= 0 else {
            throw fail("lora_alpha", "must be ≥ 0 (0 means scaling = init_r), got \(lora.loraAlpha)")
        }
        guard (0..<1).contains(lora.loraDropout) else { throw fail("lora_dropout", "must be in [0, 1), got \(lora.loraDropout)") }
        switch lora.initialization {
        case .standard, .random: break
        default:
            throw fail("init_lora_weights", "AdaLoRA supports only true (E = 0, A and B ~ N(0, 0.02²)) or false, "
                + "got \(lora.initialization.json.anyValue)")
        }
        // The LoRA checks that still apply (layer filter, patterns); r and alpha are AdaLoRA's own.
        var shared = lora
        shared.r = initR
        shared.loraAlpha = 1
        try shared.validate()
        if let pattern = rankPattern {
            for (key, mask) in pattern where mask.count != initR {
                throw fail("rank_pattern", "mask for '\(key)' has \(mask.count) entries but init_r is \(initR); "
                    + "each mask must list init_r booleans")
            }
        }
    }

    /// Schedule phase of an optimizer step (0-based, PEFT's `global_step`).
    public func phase(at step: Int) -> AdaLoRAPhase {
        if step <= tinit { return .warmup }
        if step < finalStep { return .reduction }
        return step == finalStep ? .fixing : .final
    }
}

/// Where a step lies in AdaLoRA's budget schedule.
public enum AdaLoRAPhase: String, Sendable {
    /// step ≤ tinit: full budget, importance is only accumulated.
    case warmup
    /// tinit < step < total_step − tfinal: the cubic schedule shrinks the budget.
    case reduction
    /// step == total_step − tfinal: the final pattern is chosen.
    case fixing
    /// step > total_step − tfinal: the final pattern is re-applied every step.
    case final
}
