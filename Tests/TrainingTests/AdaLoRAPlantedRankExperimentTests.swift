import XCTest
import TensorCore
import Training

final class AdaLoRAPlantedRankExperimentTests: XCTestCase {
    /// Issue 5, item 7: from init_r = 8 and a total budget equal to the planted total (20), AdaLoRA ends with each
    /// matrix within ±1 of its planted rank (0, 1, 2, 3, 6, 8) and exactly on budget; plain LoRA with r = 3 per
    /// matrix (fewer parameters: 2304 vs 2580) leaves a far larger residual, at its Eckart–Young floor.
    func testAdaLoRAMovesRankToWhereItIsNeeded() throws {
        for seed: UInt64 in [0, 1] {
            var experiment = AdaLoRAPlantedRankExperiment()
            experiment.seed = seed
            let result = try experiment.run()
            XCTAssertEqual(result.budget, 20)
            XCTAssertEqual(result.totalRank, 20, "seed \(seed): total exactly on budget")
            for m in result.matrices {
                XCTAssertLessThanOrEqual(abs(m.finalRank - m.planted), 1, "seed \(seed): planted \(m.planted) → \(m.finalRank)")
                // A kept rank ≥ planted fits the update; the residual is then noise-level (planted norms are 3…7).
                if m.finalRank >= m.planted { XCTAssertLessThan(m.residual, 0.5, "seed \(seed) planted \(m.planted)") }
            }
            // Every masking step kept exactly b(t) triplets, and b(t) fell monotonically from 48 to 20.
            XCTAssertFalse(result.budgetTrace.isEmpty)
            for entry in result.budgetTrace { XCTAssertEqual(entry.totalRank, entry.budget, "step \(entry.step)") }
            XCTAssertEqual(result.budgetTrace.map(\.budget), result.budgetTrace.map(\.budget).sorted(by: >))
            XCTAssertEqual(result.budgetTrace.last?.budget, 20)
            XCTAssertEqual(result.loraRank, 3)
            XCTAssertEqual(result.adaLoRAParameters, 20 * 129)
            XCTAssertEqual(result.loRAParameters, 6 * 3 * 128)
            for m in result.matrices where m.planted > 3 {
                XCTAssertGreaterThanOrEqual(m.loraResidual, m.loraBound * 0.999)  // nothing of rank 3 beats the floor
            }
            XCTAssertLessThan(result.totalResidual * 5, result.loraTotalResidual,
                              "seed \(seed): AdaLoRA \(result.totalResidual) vs LoRA \(result.loraTotalResidual)")
        }
    }

    func testBadSettingsAreTypedErrors() {
        var experiment = AdaLoRAPlantedRankExperiment()
        experiment.plantedRanks = [0, 9]
        XCTAssertThrowsError(try experiment.run()) { e in XCTAssertTrue("\(e)".contains("planted rank 9"), "\(e)") }
        experiment = AdaLoRAPlantedRankExperiment()
        experiment.tinit = 500; experiment.tfinal = 300
        XCTAssertThrowsError(try experiment.run()) { e in XCTAssertTrue("\(e)".contains("budgeting phase"), "\(e)") }
        experiment = AdaLoRAPlantedRankExperiment()
        experiment.totalBudget = 48
        XCTAssertThrowsError(try experiment.run()) { e in XCTAssertTrue("\(e)".contains("1..<48"), "\(e)") }
    }
}
