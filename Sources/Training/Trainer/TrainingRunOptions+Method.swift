// `--method lora|adalora` and AdaLoRA's options: defaults for the schedule from the run length, each invalid value
// or combination reported under the flag that sets it, with how to fix it.
import PEFT

extension TrainingRunOptions {
    /// Flag names of AdaLoRA's config fields, for error messages.
    static let adaLoRAFlags: [String: String] = [
        "init_r": "--init-rank", "target_r": "--target-rank", "tinit": "--tinit", "tfinal": "--tfinal", "deltaT": "--delta-t",
        "beta1": "--importance-beta1", "beta2": "--importance-beta2", "orth_reg_weight": "--orth-reg-weight",
        "total_step": "--iters", "lora_alpha": "--alpha", "lora_dropout": "--dropout", "target_modules": "--targets",
    ]

    /// The method these options ask for, built on the LoRA fields `lora` and checked for a run of `iterations` steps.
    func resolvedMethod(lora: LoRAConfig, iterations: Int) throws -> AdapterMethod {
        let name = (method ?? "lora").lowercased()
        let adaLoRAOnly: [(flag: String, given: Bool)] = [
            ("--init-rank", initRank != nil), ("--target-rank", targetRank != nil), ("--tinit", tinit != nil), ("--tfinal", tfinal != nil),
            ("--delta-t", deltaT != nil), ("--importance-beta1", importanceBeta1 != nil), ("--importance-beta2", importanceBeta2 != nil),
            ("--orth-reg-weight", orthRegWeight != nil), ("--orth-reg-form", orthRegForm != nil),
        ]
        switch name {
        case "lora":
            if let given = adaLoRAOnly.first(where: \.given) {
                throw TrainingError.invalidOption(name: given.flag, reason: "applies only to AdaLoRA; add --method adalora or drop it")
            }
            if lora.useDoRA && lora.initialization.mutatesBase {
                throw TrainingError.invalidOption(name: "--init", reason: "\(initLoraWeights ?? "") with --dora: the conversion of a trained "
                    + "PiSSA/OLoRA adapter back to the original base (rank 2r) has no DoRA form; use one or the other")
            }
            return .lora(lora)
        case "adalora":
            if dora == true {  // PEFT: "AdaLoRA does not support DoRA"
                throw TrainingError.invalidOption(name: "--dora", reason: "AdaLoRA does not support DoRA (as in PEFT); use --method lora --dora")
            }
            if let ratio = loraplusLrRatio, ratio != 1 {
                throw TrainingError.invalidOption(name: "--loraplus-lr-ratio", reason: "applies to LoRA's A/B pairs; AdaLoRA's SVD-form triplets have no LoRA+ rule")
            }
            if let initLoraWeights, (try? LoRAInitialization(name: initLoraWeights)) != .standard {
                throw TrainingError.invalidOption(name: "--init", reason: "AdaLoRA has its own initialisation (E = 0, A and B Gaussian); drop --init \(initLoraWeights)")
            }
            if rank != nil {
                throw TrainingError.invalidOption(name: "--rank", reason: "is LoRA's fixed rank; AdaLoRA starts every module at --init-rank "
                    + "(default 12) and shrinks the total to --target-rank × modules (default 8): use those instead")
            }
            let defaults = AdaLoRASchedule.defaults(iterations: iterations)
            var config = AdaLoRAConfig(initR: initRank ?? 12, targetR: targetRank ?? 8, tinit: tinit ?? defaults.tinit,
                                       tfinal: tfinal ?? defaults.tfinal, deltaT: deltaT ?? defaults.deltaT, totalStep: iterations)
            config.lora = lora
            config.beta1 = importanceBeta1 ?? config.beta1
            config.beta2 = importanceBeta2 ?? config.beta2
            config.orthRegWeight = orthRegWeight ?? config.orthRegWeight
            let form: OrthogonalRegularizationForm
            switch (orthRegForm ?? "peft").lowercased() {
            case "peft": form = .peft
            case "squared", "paper": form = .paperSquared
            default:
                throw TrainingError.invalidOption(name: "--orth-reg-form", reason: "\"\(orthRegForm!)\" is not one of peft (mean of "
                    + "‖AAᵀ − I‖_F and ‖BᵀB − I‖_F, what PEFT computes) or squared (the paper's sum of squared norms)")
            }
            do { return try AdapterMethod.adalora(config, regularization: form).resolved(iterations: iterations) } catch let TrainingError.invalidOption(field, reason) {
                let flag = Self.adaLoRAFlags[field].map { "\($0) (\(field))" } ?? field
                // Name the schedule values the user did not choose, so the fix is clear.
                let defaulted = [("tinit", tinit == nil, config.tinit), ("tfinal", tfinal == nil, config.tfinal), ("deltaT", deltaT == nil, config.deltaT)]
                    .filter { $0.1 && ["tinit", "tfinal", "deltaT", "total_step"].contains(field) }.map { "\($0.0) \($0.2)" }
                throw TrainingError.invalidOption(name: flag, reason: reason + (reason.contains("total_step") ? " (total_step is --iters)" : "")
                    + (defaulted.isEmpty ? "" : " [defaults for --iters \(iterations): " + defaulted.joined(separator: ", ") + "]"))
            }
        default:
            throw TrainingError.invalidOption(name: "--method", reason: "\"\(method!)\" is not one of lora, adalora")
        }
    }
}
