import Analysis
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import PEFT
import TensorCore
import Training
import XCTest
import TestSupport

/// `RankSweepExperiment` on the tiny model: runs differing only in r, their scores, adapters on disk, φ between
/// the two ranks, plots and JSON; bad rank lists and ranks that do not fit the model as typed errors.
final class RankSweepExperimentTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = try temporaryDirectory(self, "ranksweep")
    }

    func configuration(ranks: [Int]) -> RankSweepConfiguration {
        var c = RankSweepConfiguration(outputDirectory: directory)
        c.ranks = ranks
        c.trainer.iterations = 12; c.trainer.batchSize = 4; c.trainer.learningRate = 3e-2; c.trainer.warmupSteps = 1
        c.trainer.seed = 5
        return c
    }

    func experiment(_ c: RankSweepConfiguration, model: TinyLanguageModel = TinyLanguageModel()) throws -> RankSweepExperiment {
        try RankSweepExperiment(model: model, configuration: c, trainData: TrainerTests.countingDataset(count: 24, seed: 1),
                                validData: TrainerTests.countingDataset(count: 8, seed: 2), paddingID: 0)
    }

    func testTwoRankSweepTrainsScoresSavesAndCompares() throws {
        let model = TinyLanguageModel()
        let sweep = try experiment(configuration(ranks: [2, 4]), model: model)
        // The scorer sees the state it scores: no adapter for the base row, then each run's adapter alone.
        var scoredRanks: [Int] = []
        let cases = (0..<5).map { ExactMatchCase(prompt: "p\($0)", expected: "\($0 % 2)") }
        sweep.exactMatch = {
            let branch = model.qProj.activeAdapterNames.first.flatMap { model.qProj.adapter(named: $0) } as? LoRABranch
            scoredRanks.append(branch?.rank ?? 0)
            return ExactMatch.evaluate(cases) { _ in "\(scoredRanks.count % 2)" }
        }
        let result = try sweep.run()
        XCTAssertEqual(scoredRanks, [0, 2, 4])
        XCTAssertTrue(model.adapterNames.isEmpty, "the sweep leaves no adapter behind")

        let base = try XCTUnwrap(result.base)
        XCTAssertEqual(base.exactMatch, RankSweepExactMatch(ExactMatch.evaluate(cases) { _ in "1" }))
        XCTAssertEqual(result.runs.map(\.rank), [2, 4])
        for run in result.runs {
            XCTAssertEqual(run.trainLosses.count, 12)
            XCTAssertTrue(run.trainLosses.allSatisfy(\.isFinite))
            XCTAssertLessThan(run.validLoss, base.validLoss, "r = \(run.rank) did not improve on the base model")
            XCTAssertEqual(run.alpha, 16); XCTAssertEqual(run.scale, 16 / Double(run.rank))   // the paper's fixed α
            XCTAssertEqual(run.trainableParameters, 2 * run.rank * (16 + 16))                   // q and v: A [r,16], B [16,r]
            XCTAssertEqual(run.exactMatch?.total, 5)
            XCTAssertGreaterThan(run.meanRelativeChangeOfA, 0)

            let directory = self.directory.appendingPathComponent("r\(run.rank)")
            XCTAssertEqual(run.adapterDirectory, directory.path)
            let adapter = try AdapterWeights.load(from: directory)
            XCTAssertEqual(adapter.config.r, run.rank); XCTAssertEqual(adapter.config.loraAlpha, 16)
            XCTAssertEqual(adapter.modulePaths, ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"])
            for module in adapter.modules {
                XCTAssertEqual(module.a.shape, [run.rank, 16]); XCTAssertEqual(module.b.shape, [16, run.rank])
                XCTAssertEqual(module.scaling, 16 / Double(run.rank), accuracy: 1e-12)
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("checkpoints").path))
        }
        // Same seed, same data order, same schedule: the runs start from the same base loss and see the same
        // batches, so their first-step losses agree (B = 0 at step 1 in both).
        XCTAssertEqual(result.runs[0].trainLosses[0], result.runs[1].trainLosses[0])

        let similarity = try XCTUnwrap(result.similarity)
        XCTAssertEqual(similarity.ranks, [2, 4])
        for comparison in [similarity.aRight, similarity.deltaLeft] {
            XCTAssertEqual(comparison.modules.count, 2)
            for module in comparison.modules {
                XCTAssertEqual(module.phi.count, 2); XCTAssertEqual(module.phi.map(\.count), [4, 4])
                XCTAssertTrue(module.phi.joined().allSatisfy { (0...1).contains($0) })
            }
        }
        let byType = similarity.aRightByType
        XCTAssertEqual(byType.map(\.moduleType), ["q_proj", "v_proj"])
        XCTAssertEqual(byType[0].meanPhi, similarity.aRight.modules[0].phi)   // one layer: the mean is the module
        XCTAssertEqual(byType[0].randomExpectation(i: 1, j: 4), 4.0 / 16)

        let plots = try result.writePlots(to: directory.appendingPathComponent("plots"))
        XCTAssertEqual(plots.count, 1 + 2 * 2 * 2)   // losses; (a-right, delta-left) × (q, v) × (full, corner)
        for url in plots { XCTAssertTrue(XMLParser(contentsOf: url)!.parse(), "\(url.lastPathComponent) is not XML") }
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(result)) as! [String: Any]
        XCTAssertEqual((json["runs"] as! [[String: Any]]).map { $0["rank"] as! Int }, [2, 4])
        XCTAssertNotNil((json["similarity"] as! [String: Any])["a_right_by_type"])
        XCTAssertTrue(result.table().contains("subspace similarity"))
    }

    func testEachRankDrawsItsOwnInitialisation() throws {
        // One step at a negligible learning rate leaves A at its initialisation. Had both ranks shared one random
        // stream, A_{r=2} would be the first two rows of A_{r=4} and φ(2, 4) would be exactly 1 in every module.
        var c = configuration(ranks: [2, 4])
        c.trainer.iterations = 1; c.trainer.learningRate = 1e-12; c.evaluateBase = false
        let result = try experiment(c).run()
        let phi = try XCTUnwrap(result.similarity).aRight.modules.map { $0.phi[1][3] }
        XCTAssertEqual(phi.count, 2)
        XCTAssertTrue(phi.allSatisfy { $0 < 0.9 }, "φ(2, 4) at initialisation: \(phi)")
        XCTAssertTrue(result.runs.allSatisfy { $0.meanRelativeChangeOfA < 1e-6 })
    }

    func testAFailedRunLeavesNoAdapterBehind() throws {
        let model = TinyLanguageModel()
        model.nanOnCall = 3   // the third training step of the first run
        var c = configuration(ranks: [2, 4]); c.evaluateBase = false
        XCTAssertThrowsError(try experiment(c, model: model).run()) { error in
            guard case TrainingError.nonFinite(let quantity, let step, _, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(quantity, "loss"); XCTAssertEqual(step, 3)
        }
        XCTAssertTrue(model.adapterNames.isEmpty)
    }

    func testBadRankListsAreTypedErrors() throws {
        func error(_ body: () throws -> Void) -> RankSweepError? {
            do { try body(); return nil } catch let e as RankSweepError { return e } catch { XCTFail("\(error)"); return nil }
        }
        XCTAssertEqual(try RankSweepConfiguration.parseRanks(" 1, 2,64"), [1, 2, 64])
        XCTAssertEqual(error { _ = try RankSweepConfiguration.parseRanks("") }, .noRanks)
        XCTAssertEqual(error { _ = try RankSweepConfiguration.parseRanks("1,,2") }, .unreadableRank(""))
        XCTAssertEqual(error { _ = try RankSweepConfiguration.parseRanks("4,eight") }, .unreadableRank("eight"))
        XCTAssertEqual(error { try self.configuration(ranks: []).validate() }, .noRanks)
        XCTAssertEqual(error { try self.configuration(ranks: [1, 0]).validate() }, .nonPositiveRank(0))
        XCTAssertEqual(error { try self.configuration(ranks: [2, 4, 2]).validate() }, .duplicateRank(2))
        var pair = configuration(ranks: [2, 4]); pair.similarityRanks = (2, 8)
        XCTAssertEqual(error { try pair.validate() }, .similarityRankNotSwept(8, ranks: [2, 4]))

        // The tiny model's q_proj and v_proj are 16 × 16: r = 17 cannot fit, and the error names the module.
        let tooLarge = error { _ = try self.experiment(self.configuration(ranks: [4, 17])) }
        XCTAssertEqual(tooLarge, .rankExceedsModule(rank: 17, module: "model.layers.0.self_attn.q_proj", shape: [16, 16]))
        XCTAssertTrue(tooLarge!.description.contains("--ranks: rank 17 exceeds min(out, in) = 16"))

        let model = TinyLanguageModel()
        var rng = RandomGenerator(seed: 0)
        try model.addLoRA(LoRAConfig(r: 2, targetModules: .names(["q_proj"])), name: "default", rng: &rng)
        XCTAssertEqual(error { _ = try self.experiment(self.configuration(ranks: [2]), model: model) }, .adapterNameInUse("default"))
        XCTAssertNil(configuration(ranks: [3]).comparedRanks)
        XCTAssertEqual(configuration(ranks: [1, 8, 16, 64]).comparedRanks.map { [$0.low, $0.high] }, [8, 64])
        XCTAssertEqual(configuration(ranks: [4, 1, 2]).comparedRanks.map { [$0.low, $0.high] }, [1, 4])
    }
}
