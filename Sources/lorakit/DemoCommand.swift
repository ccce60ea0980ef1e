import ArgumentParser
import Foundation
import TensorCore
import Training

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Runnable demonstrations of LoRA's claims.",
        subcommands: [
            LowRank.self,
            DemoAdaLoRA.self,
            DemoDates.self,
            DemoFineTune.self,
            DemoEncoder.self,
        ])

    struct LowRank: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "lowrank",
            abstract: "Planted-rank experiment: LoRA of rank r reaches the Eckart–Young bound of a planted rank-4 update.")
        @Option(help: "Comma-separated LoRA ranks.") var ranks = "1,2,4,8"
        @Option(help: "Optimizer steps per rank.") var steps = 600
        @Option(help: "Matrix size n (W is n×n).") var dimension = 256
        @Option(help: "Random seed.") var seed: UInt64 = 0
        @Flag(help: "Print machine-readable JSON.") var json = false

        func run() throws {
            try BLAS.ensureAvailable()
            var experiment = PlantedRankExperiment()
            experiment.ranks = try ranks.split(separator: ",").map {
                guard let r = Int($0.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--ranks: '\($0)' is not an integer") }
                return r
            }
            experiment.steps = steps; experiment.dimension = dimension; experiment.seed = seed
            if !json {
                print("Planted ΔW* of rank \(experiment.plantedSingularValues.count), singular values \(experiment.plantedSingularValues), W \(dimension)×\(dimension) frozen.")
                print("LoRA trained by AdamW for \(steps) steps per rank on random inputs.\n")
                print(" r | residual ‖sBA − ΔW*‖_F | Eckart–Young bound | excess  | time")
                print("---|------------------------|--------------------|---------|------")
            }
            let rows = try experiment.run { row in
                guard !json else { return }
                let excess = row.excess.map { String(format: "%+.2f%%", 100 * $0) } ?? "   —   "
                print(String(format: "%2d | %22.5f | %18.5f | %7@ | %.1fs", row.rank, row.residual, row.bound, excess as NSString, row.seconds))
            }
            if json {
                let object: [String: Any] = ["experiment": "planted-rank", "dimension": dimension, "steps": steps,
                    "planted_singular_values": experiment.plantedSingularValues.map(Double.init),
                    "rows": rows.map { ["rank": $0.rank, "residual": Double($0.residual), "bound": Double($0.bound)] }]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("\nFor r below the planted rank the residual meets the Eckart–Young bound; from r = 4 on it is ~0.")
            }
        }
    }
}
