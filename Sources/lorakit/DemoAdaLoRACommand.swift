import ArgumentParser
import Foundation
import TensorCore
import Training

/// `lorakit demo adalora`: AdaLoRA moves a fixed rank budget to the matrices whose updates need it.
struct DemoAdaLoRA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adalora",
        abstract: "Planted-rank experiment: AdaLoRA allocates a total rank budget to where the planted updates need it, vs plain LoRA.")
    @Option(help: "Comma-separated planted ranks, one matrix each.") var planted = "0,1,2,3,6,8"
    @Option(help: "AdaLoRA initial rank per matrix (init_r).") var initRank = 8
    @Option(help: "Total rank budget at the end (default: the planted total).") var budget: Int?
    @Option(help: "Optimizer steps (total_step).") var steps = 800
    @Option(help: "Warm-up steps at the full budget (tinit).") var tinit = 100
    @Option(help: "Final steps with the rank pattern fixed (tfinal).") var tfinal = 200
    @Option(help: "Steps between reallocations (deltaT).") var deltaT = 10
    @Option(help: "Matrix size n (each W is n×n).") var dimension = 64
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Orthogonal regulariser weight (orth_reg_weight).") var orthRegWeight = 0.1
    @Option(help: "Regulariser form: peft (mean of ‖·‖_F) or paper (sum of ‖·‖²_F).") var orthForm = "peft"
    @Option(help: "AdamW learning rate.") var learningRate = 1e-2
    @Flag(help: "Print machine-readable JSON.") var json = false

    func run() throws {
        try BLAS.ensureAvailable()
        var experiment = AdaLoRAPlantedRankExperiment()
        experiment.plantedRanks = try planted.split(separator: ",").map {
            guard let r = Int($0.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--planted: '\($0)' is not an integer") }
            return r
        }
        experiment.initRank = initRank; experiment.totalBudget = budget; experiment.steps = steps
        experiment.tinit = tinit; experiment.tfinal = tfinal; experiment.deltaT = deltaT
        experiment.dimension = dimension; experiment.seed = seed
        experiment.orthRegWeight = orthRegWeight; experiment.learningRate = learningRate
        switch orthForm {
        case "peft": experiment.orthogonalForm = .peft
        case "paper": experiment.orthogonalForm = .paperSquared
        default: throw ValidationError("--orth-form must be peft or paper, got '\(orthForm)'")
        }
        guard tinit >= 0, tfinal >= 0, tinit + tfinal < steps else {
            throw ValidationError("--tinit (\(tinit)) + --tfinal (\(tfinal)) must be smaller than --steps (\(steps)) to leave a budgeting phase")
        }
        let result = try experiment.run()
        if json {
            let object: [String: Any] = [
                "experiment": "adalora-planted-rank", "dimension": dimension, "steps": steps, "init_rank": initRank,
                "budget": result.budget, "lora_rank": result.loraRank,
                "adalora_parameters": result.adaLoRAParameters, "lora_parameters": result.loRAParameters,
                "total_residual": Double(result.totalResidual), "lora_total_residual": Double(result.loraTotalResidual),
                "matrices": result.matrices.map { ["planted": $0.planted, "final_rank": $0.finalRank, "residual": Double($0.residual),
                                                   "lora_residual": Double($0.loraResidual), "lora_bound": Double($0.loraBound)] },
                "budget_trace": result.budgetTrace.map { ["step": $0.step, "budget": $0.budget, "total_rank": $0.totalRank] },
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("\(experiment.plantedRanks.count) frozen \(dimension)×\(dimension) maps with planted update ranks \(experiment.plantedRanks) "
            + "(σ = 3, 2.8, …). AdaLoRA init_r = \(initRank) (budget \(initRank * experiment.plantedRanks.count) → \(result.budget)), "
            + "\(steps) AdamW steps, tinit \(tinit), tfinal \(tfinal), deltaT \(deltaT).\n")
        let checkpoints = result.budgetTrace.filter { $0.step % max(1, (steps - tinit - tfinal) / 5) == 0 || $0 == result.budgetTrace.last! }
        print("budget over training: " + checkpoints.map { "step \($0.step): \($0.budget)" }.joined(separator: ", ") + "\n")
        print(" planted | AdaLoRA rank | AdaLoRA residual | LoRA r=\(result.loraRank) residual | Eckart–Young floor")
        print("---------|--------------|------------------|-------------------|-------------------")
        for m in result.matrices {
            print(String(format: " %7d | %12d | %16.4f | %17.4f | %17.4f", m.planted, m.finalRank, m.residual, m.loraResidual, m.loraBound))
        }
        print(String(format: "   total | %12d | %16.4f | %17.4f |", result.totalRank, result.totalResidual, result.loraTotalResidual))
        print("\nTrainable parameters at the end: AdaLoRA \(result.adaLoRAParameters) (kept triplets × (2n+1)), "
            + "LoRA \(result.loRAParameters) (\(experiment.plantedRanks.count) × r × 2n).")
        print(String(format: "AdaLoRA's total residual is %.1f× lower (%.1fs).",
                     result.loraTotalResidual / max(result.totalResidual, 1e-12), result.seconds))
    }
}
