// Which PEFT method a `Trainer` trains, and what AdaLoRA needs from a run: total_step = the run's iterations, a
// schedule that fixes the final pattern inside the run, and the settings a resumed run must share.
import Autograd
import Foundation
import PEFT

/// The adapter a `Trainer` trains.
public enum AdapterMethod: Equatable, Sendable {
    /// LoRA with a fixed rank per module.
    case lora(LoRAConfig)
    /// AdaLoRA: SVD-form branches whose total rank the rank allocator shrinks to target_r × modules. The trainer
    /// sets total_step to its iterations; `regularization` picks the orthogonal regulariser's form.
    case adalora(AdaLoRAConfig, regularization: OrthogonalRegularizationForm = .peft)

    /// "lora" or "adalora", as written in checkpoints and logs.
    public var name: String {
        switch self {
        case .lora: return "lora"
        case .adalora: return "adalora"
        }
    }

    /// "LoRA" or "AdaLoRA", for people.
    public var displayName: String {
        switch self {
        case .lora: return "LoRA"
        case .adalora: return "AdaLoRA"
        }
    }

    /// The LoRA fields of the method (for AdaLoRA: the ones that still apply, `r` unused).
    public var loraConfig: LoRAConfig {
        switch self {
        case .lora(let c): return c
        case .adalora(let c, _): return c.lora
        }
    }

    /// The method with every value checked for a run of `iterations` steps, and AdaLoRA's total_step set to it.
    func resolved(iterations: Int) throws -> AdapterMethod {
        switch self {
        case .lora(let config):
            try config.validate()
            return self
        case .adalora(var config, let form):
            if let total = config.totalStep, total != iterations {
                throw TrainingError.invalidOption(name: "total_step", reason: "\(total) differs from the run's \(iterations) iterations; "
                    + "AdaLoRA's budget schedule must span the whole run: leave total_step unset (the trainer sets it) or make it equal")
            }
            config.totalStep = iterations
            guard config.rankPattern == nil else {
                throw TrainingError.invalidOption(name: "rank_pattern", reason: "is chosen by training; remove it from the config "
                    + "(to continue an AdaLoRA run, resume from its checkpoint)")
            }
            do { try config.validate() } catch let PEFTError.invalidConfig(field, reason) {
                throw TrainingError.invalidOption(name: field, reason: reason)
            }
            guard config.tfinal >= 1 else {
                throw TrainingError.invalidOption(name: "tfinal", reason: "0 never fixes the final rank pattern inside the run (the "
                    + "final masking would be at step total_step − tfinal = \(iterations), after the last step), so the budget could end "
                    + "above target_r × modules; use tfinal ≥ 1 (e.g. \(AdaLoRASchedule.defaults(iterations: iterations).tfinal))")
            }
            return .adalora(config, regularization: form)
        }
    }

    /// AdaLoRA's γ·R(A, B) over `allocator`'s branches in the method's form, to back-propagate once per optimizer
    /// step; nil for LoRA or a zero orth_reg_weight.
    func regularizationLoss(_ allocator: RankAllocator?) -> Variable? {
        guard let allocator, case .adalora(let config, let form) = self, config.orthRegWeight > 0 else { return nil }
        return allocator.regularizationLoss(form: form)
    }

    /// Settings a resumed run must share with the checkpoint (besides the trainer's own).
    var resumeSettings: [String: String] {
        switch self {
        case .lora: return ["method": name]
        case .adalora(let c, let form):
            return ["method": name, "init_r": String(c.initR), "target_r": String(c.targetR), "tinit": String(c.tinit),
                    "tfinal": String(c.tfinal), "deltaT": String(c.deltaT), "beta1": "\(c.beta1)", "beta2": "\(c.beta2)",
                    "orth_reg_weight": "\(c.orthRegWeight)", "orth_reg_form": form.rawValue,
                    "total_step": c.totalStep.map(String.init) ?? "none"]
        }
    }
}

/// Default AdaLoRA schedule for a run length, used when tinit / tfinal / deltaT are not given.
public enum AdaLoRASchedule {
    /// tinit = 10 % of the run (full-budget warm-up while importance accumulates), tfinal = 25 % (at least 1: the
    /// final pattern trains for the last quarter), deltaT so the budget is re-allocated about 15 times in between.
    public static func defaults(iterations: Int) -> (tinit: Int, tfinal: Int, deltaT: Int) {
        let tinit = iterations / 10, tfinal = max(1, iterations / 4)
        let reduction = max(0, iterations - tfinal - tinit)
        return (tinit, tfinal, max(1, Int((Double(reduction) / 15).rounded())))
    }

    /// Steps in (tinit, total − tfinal) at which the budget is re-allocated, plus the final masking step.
    public static func maskingSteps(_ config: AdaLoRAConfig) -> [Int] {
        let total = config.totalStep ?? 0
        let reduction = stride(from: config.tinit + 1, to: total - config.tfinal, by: 1).filter { $0 % config.deltaT == 0 }
        return reduction + (total - config.tfinal < total ? [total - config.tfinal] : [])
    }

    /// One line describing the schedule of a resolved config, printed when training starts.
    public static func summary(_ config: AdaLoRAConfig, modules: Int, regularization: OrthogonalRegularizationForm) -> String {
        "AdaLoRA: init_r \(config.initR) → target_r \(config.targetR) (budget \(config.initR * modules) → \(config.targetR * modules) "
            + "triplets over \(modules) modules); tinit \(config.tinit) warm-up steps, then the budget shrinks and is re-allocated "
            + "every \(config.deltaT) steps (deltaT; \(maskingSteps(config).count) allocations), the final pattern is fixed for the last "
            + "\(config.tfinal) steps (tfinal); importance EMAs β1 \(config.beta1), β2 \(config.beta2); orth_reg_weight "
            + "\(config.orthRegWeight) (\(regularization.rawValue) form)"
    }
}
