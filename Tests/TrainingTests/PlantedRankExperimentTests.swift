import XCTest
import TensorCore
import LinearAlgebra
import Training

final class PlantedRankExperimentTests: XCTestCase {
    /// Issue 2, item 10: LoRA reaches the Eckart–Young bound for r < planted rank and ~0 from r = planted rank.
    func testLoRARecoversPlantedRankUpToEckartYoung() throws {
        var experiment = PlantedRankExperiment()
        experiment.steps = 300
        let rows = try experiment.run()
        XCTAssertEqual(rows.map(\.rank), [1, 2, 4, 8])
        let plantedNorm = experiment.plantedSingularValues.map { $0 * $0 }.reduce(0, +).squareRoot()
        for row in rows {
            if row.rank < 4 {
                XCTAssertLessThanOrEqual(row.residual, row.bound * 1.02, "r=\(row.rank) residual \(row.residual) bound \(row.bound)")
                // Nothing of rank r can beat the bound (a check on the bound and on our residual arithmetic).
                XCTAssertGreaterThanOrEqual(row.residual, row.bound * (1 - 1e-4))
            } else {
                XCTAssertEqual(row.bound, 0)
                XCTAssertLessThan(row.residual, 0.01 * plantedNorm, "r=\(row.rank)")
            }
        }
        // The bounds themselves: sqrt(6² + 4² + 2²) and sqrt(4² + 2²).
        XCTAssertEqual(rows[0].bound, Float(56).squareRoot(), accuracy: 1e-5)
        XCTAssertEqual(rows[1].bound, Float(20).squareRoot(), accuracy: 1e-5)
    }

    func testPlantedUpdateHasExactlyThePlantedSpectrum() throws {
        let experiment = PlantedRankExperiment()
        var rng = RandomGenerator(seed: 5)
        let delta = try experiment.plantedUpdate(rng: &rng)
        let s = try singularValues(delta)
        for (i, sigma) in experiment.plantedSingularValues.enumerated() { XCTAssertEqual(s[i], sigma, accuracy: 1e-4) }
        XCTAssertEqual(try numericalRank(delta), 4)
    }

    func testBadRanksAreRejected() {
        var experiment = PlantedRankExperiment()
        experiment.ranks = [0]
        XCTAssertThrowsError(try experiment.run()) { e in XCTAssertTrue("\(e)".contains("rank 0")) }
        experiment.ranks = [257]
        XCTAssertThrowsError(try experiment.run())
    }
}
