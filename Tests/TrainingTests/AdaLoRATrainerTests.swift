// The trainer running AdaLoRA on the tiny model: the PEFT budget schedule step by step, the final budget met
// exactly, a saved adapter with rank_pattern that reloads to the same outputs, exact resume across allocations,
// and the rank report (metrics fields, table, heatmaps).
import Autograd
import Formats
import Foundation
import PEFT
import TensorCore
import Training
import XCTest
import TestSupport

final class AdaLoRATrainerTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = try temporaryDirectory(self, "adalora-trainer")
    }

    /// init_r 8 → target_r 3 on q and v: budget 16 → 6 over 16 steps; allocations at 0-based steps 4, 6, 8, 10 and
    /// the final one at 16 − 4 = 12.
    let adalora: AdaLoRAConfig = {
        var c = AdaLoRAConfig(initR: 8, targetR: 3, tinit: 2, tfinal: 4, deltaT: 2, loraAlpha: 8, targetModules: .names(["q_proj", "v_proj"]))
        c.lora.loraDropout = 0.1
        c.orthRegWeight = 0.5
        return c
    }()

    func configuration(_ name: String) -> TrainerConfiguration {
        var c = TrainerConfiguration(outputDirectory: directory.appendingPathComponent(name))
        c.iterations = 16; c.batchSize = 2; c.gradientAccumulation = 2
        c.learningRate = 1e-1; c.warmupSteps = 2; c.weightDecay = 0.01
        c.evalEvery = 8; c.saveEvery = 5; c.seed = 11
        return c
    }

    func makeTrainer(_ c: TrainerConfiguration, config: AdaLoRAConfig? = nil, model: TinyLanguageModel = TinyLanguageModel()) throws -> Trainer {
        try Trainer(model: model, method: .adalora(config ?? adalora), trainData: TrainerTests.countingDataset(count: 20, seed: 1),
                    validData: TrainerTests.countingDataset(count: 6, seed: 2), paddingID: 0, configuration: c)
    }

    /// PEFT's `budget_schedule`, written out independently: int() of the cubic in double precision.
    func pefBudget(_ t: Int, b0: Int, bT: Int, tinit: Int, tfinal: Int, total: Int) -> Int {
        if t <= tinit { return b0 }
        if t > total - tfinal { return bT }
        let c = 1 - Double(t - tinit) / Double(total - tfinal - tinit)
        return Int(Double(b0 - bT) * pow(c, 3) + Double(bT))
    }

    func testBudgetFollowsPEFTScheduleEndsOnTargetAndTheSavedAdapterReloads() throws {
        let c = configuration("schedule")
        let model = TinyLanguageModel()
        let trainer = try makeTrainer(c, model: model)
        var lines: [String] = []
        trainer.progress = ProgressLine(interactive: false) { lines.append($0) }
        let summary = try trainer.run()
        let allocator = try XCTUnwrap(trainer.rankAllocator)
        XCTAssertEqual(allocator.config.totalStep, 16, "total_step set from the iterations")
        // Budget at every step: PEFT's formula, the allocator's, and the hand-computed values.
        let budgets = summary.steps.map(\.budget)
        XCTAssertEqual(budgets, (0..<16).map { pefBudget($0, b0: 16, bT: 6, tinit: 2, tfinal: 4, total: 16) })
        XCTAssertEqual(budgets, (0..<16).map { allocator.budget(at: $0).budget })
        XCTAssertEqual(budgets, [16, 16, 16, 13, 11, 9, 8, 7, 6, 6, 6, 6, 6, 6, 6, 6])
        // The final ranks sum to target_r × modules exactly, and E is zero outside the pattern.
        let ranks = try XCTUnwrap(summary.adaLoRARanks)
        XCTAssertEqual(ranks.reduce(0) { $0 + $1.rank }, 6)
        let pattern = try XCTUnwrap(allocator.config.rankPattern)
        for (path, branch) in allocator.modules {
            let keep = try XCTUnwrap(pattern[path + ".lora_E"])
            for (i, kept) in keep.enumerated() where !kept { XCTAssertEqual(branch.e.value[flat: i], 0, "\(path) E[\(i)]") }
        }
        // Saved: rank_pattern in the config, tensors sliced to it; a fresh model loads it and computes the same loss.
        let saved = try AdaLoRAConfig.load(from: c.outputDirectory.appendingPathComponent(AdapterFiles.configName))
        XCTAssertEqual(saved.rankPattern, pattern)
        XCTAssertEqual(saved.totalStep, 16)
        let tensors = try SafeTensorsFileReader.tensors(c.outputDirectory.appendingPathComponent(AdapterFiles.weightsName))
        for r in ranks {
            XCTAssertEqual(tensors["base_model.model.\(r.module).lora_A"]?.shape, [r.rank, 16])
            XCTAssertEqual(tensors["base_model.model.\(r.module).lora_B"]?.shape, [16, r.rank])
        }
        let fresh = TinyLanguageModel()
        guard case .adalora(let loaded) = try AdapterFiles.load(into: fresh, from: c.outputDirectory) else { return XCTFail("not AdaLoRA") }
        XCTAssertEqual(loaded.rankPattern, pattern)
        XCTAssertEqual(fresh.adaLoRARanks().values.reduce(0, +), 6)
        var rng = RandomGenerator(seed: 0)
        var sampler = try BatchSampler(dataset: TrainerTests.countingDataset(count: 6, seed: 3), batchRows: 6, seed: 0, paddingID: 0)
        let batch = sampler.next()
        let trainedLoss = try model.loss(batch: batch, training: false, rng: &rng).value.scalarValue
        let reloadedLoss = try fresh.loss(batch: batch, training: false, rng: &rng).value.scalarValue
        XCTAssertEqual(reloadedLoss, trainedLoss, accuracy: 1e-6 * abs(trainedLoss))
        let baseLoss = try TinyLanguageModel().loss(batch: batch, training: false, rng: &rng).value.scalarValue
        // E starts at 0 and A, B at N(0, 0.02²), and most triplets are pruned within 16 steps: a small but real gain.
        XCTAssertLessThan(reloadedLoss, baseLoss * 0.98, "the adapter learnt something: \(baseLoss) → \(reloadedLoss)")  // measured 5.387 → 5.166
        // metrics.jsonl: budget every step, per-module ranks at the allocations (1-based steps 5, 7, 9, 11, 13).
        let history = try AdaLoRARankLog.history(metricsFile: summary.metricsFile)
        XCTAssertEqual(history.steps, [5, 7, 9, 11, 13])
        XCTAssertEqual(history.modules, ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"])
        XCTAssertEqual(history.ranks.map { $0.last! }, ranks.map(\.rank))
        for (i, step) in history.steps.enumerated() {
            XCTAssertLessThanOrEqual(history.ranks.reduce(0) { $0 + $1[i] }, budgets[step - 1]!, "ties may mask more, never fewer")
        }
        let trainLines = try String(contentsOf: summary.metricsFile, encoding: .utf8).split(separator: "\n").filter { $0.contains("\"train\"") }
        XCTAssertEqual(trainLines.count, 16)
        XCTAssertTrue(trainLines.allSatisfy { $0.contains("\"budget\":") && $0.contains("\"orth_reg\":") }, "\(trainLines[0])")
        // The start line names the schedule; the progress line shows the budget.
        let text = lines.joined()
        XCTAssertTrue(text.contains("init_r 8 → target_r 3 (budget 16 → 6 triplets over 2 modules); tinit 2"), text)
        XCTAssertTrue(text.contains("step 16/16 | loss ") && text.contains(" | budget 6/16\n"), text)
    }

    func testResumeReproducesTheUninterruptedAdaLoRARunBitForBit() throws {
        let uninterrupted = try makeTrainer(configuration("full")).run()
        let c = configuration("interrupted")
        // Stop after step 6 (E regrew since the allocation at step 5, importance EMAs mid-reduction), then after step 14
        // (pattern fixed at step 13, EMAs reset); each part starts from a fresh model and trainer, like a new process.
        let first = try makeTrainer(c).run(stoppingAfter: 6)
        XCTAssertNil(first.adapterDirectory)
        let checkpoint = try TrainerCheckpoint.load(XCTUnwrap(first.lastCheckpoint))
        XCTAssertFalse(checkpoint.allocatorState.isEmpty)
        XCTAssertTrue(checkpoint.allocatorState.keys.contains("rank_pattern.model.layers.0.self_attn.q_proj"))
        XCTAssertTrue(checkpoint.allocatorState.keys.contains("importance.model.layers.0.self_attn.v_proj.lora_B.uncertainty"))
        let second = try makeTrainer(c).run(resumeFrom: c.outputDirectory, stoppingAfter: 14)
        let third = try makeTrainer(c).run(resumeFrom: c.outputDirectory)
        XCTAssertEqual([second.startStep, third.startStep], [6, 14])
        let resumed = first.steps + second.steps + third.steps
        XCTAssertEqual(resumed.map(\.loss.bitPattern), uninterrupted.steps.map(\.loss.bitPattern))
        XCTAssertEqual(resumed.map(\.gradientNorm.bitPattern), uninterrupted.steps.map(\.gradientNorm.bitPattern))
        XCTAssertEqual(resumed.map(\.budget), uninterrupted.steps.map(\.budget))
        XCTAssertEqual(third.adaLoRARanks, uninterrupted.adaLoRARanks)
        XCTAssertEqual(try SafeTensorsFileReader.tensors(c.outputDirectory.appendingPathComponent(AdapterFiles.weightsName)), try SafeTensorsFileReader.tensors(configuration("full").outputDirectory.appendingPathComponent(AdapterFiles.weightsName)))
        XCTAssertEqual(try AdaLoRAConfig.load(from: c.outputDirectory.appendingPathComponent(AdapterFiles.configName)),
                       try AdaLoRAConfig.load(from: configuration("full").outputDirectory.appendingPathComponent(AdapterFiles.configName)))
        let history = try AdaLoRARankLog.history(metricsFile: c.outputDirectory.appendingPathComponent("metrics.jsonl"))
        XCTAssertEqual(history.steps, [5, 7, 9, 11, 13], "the resumed log holds the whole run's allocations once")

        // Other AdaLoRA settings, or another method, would not continue the run: refused, naming the field.
        var other = adalora; other.targetR = 2
        XCTAssertThrowsError(try makeTrainer(c, config: other).run(resumeFrom: first.lastCheckpoint!)) {
            guard case .checkpointMismatch(_, let field, let saved, let current)? = $0 as? TrainingError else { return XCTFail("\($0)") }
            XCTAssertEqual([field, saved, current], ["target_r", "3", "2"])
        }
        let lora = LoRAConfig(r: 4, loraAlpha: 8, targetModules: .names(["q_proj", "v_proj"]))
        XCTAssertThrowsError(try Trainer(model: TinyLanguageModel(), loraConfig: lora, trainData: TrainerTests.countingDataset(count: 20, seed: 1),
                                         validData: nil, paddingID: 0, configuration: c).run(resumeFrom: first.lastCheckpoint!)) {
            guard case .checkpointMismatch(_, let field, let saved, let current)? = $0 as? TrainingError else { return XCTFail("\($0)") }
            XCTAssertEqual([field, saved, current], ["method", "adalora", "lora"])
        }
    }

    func testAllocatorStateRoundTripsAndRejectsForeignState() throws {
        let model = TinyLanguageModel()
        var rng = RandomGenerator(seed: 1)
        var config = adalora; config.totalStep = 16
        try model.addAdaLoRA(config, rng: &rng)
        let allocator = try RankAllocator(model: model, config: config)
        XCTAssertEqual(allocator.exportState().count, 0, "nothing before the first update")
        let loss = add(try model.loss(batch: TokenBatch(rows: [[TokenizedExample(ids: [1, 4, 7, 10], labels: [-100, 4, 7, 10])]], paddingID: 0), training: false, rng: &rng),
                       allocator.regularizationLoss(form: .peft))
        loss.backward()
        try allocator.update(step: 4)  // accumulates importance and masks to b(4) = 11
        let state = allocator.exportState()
        XCTAssertEqual(state.count, 2 * 3 * 2 + 2)  // (Ī, Ū) × (A, E, B) × 2 modules + 2 masks
        let copy = try RankAllocator(model: model, config: config)
        try copy.importState(state)
        XCTAssertEqual(copy.config.rankPattern, allocator.config.rankPattern)
        XCTAssertEqual(copy.tripletScores(), allocator.tripletScores())
        XCTAssertEqual(copy.exportState(), state)
        // A state for other ranks or modules is refused, naming the entry, and changes nothing.
        var wrongShape = state
        wrongShape["rank_pattern.model.layers.0.self_attn.q_proj"] = Tensor(repeating: 1, shape: [6])
        var unknown = state
        unknown["rank_pattern.model.layers.9.mlp.up_proj"] = Tensor(repeating: 1, shape: [8])
        var notAMask = state
        notAMask["rank_pattern.model.layers.0.self_attn.v_proj"] = Tensor(repeating: 0.5, shape: [8])
        for (bad, key) in [(wrongShape, "q_proj"), (unknown, "layers.9.mlp.up_proj"), (notAMask, "v_proj")] {
            let fresh = try RankAllocator(model: model, config: config)
            XCTAssertThrowsError(try fresh.importState(bad)) {
                guard case .invalidAllocatorState(let k, _)? = $0 as? AdaLoRAError else { return XCTFail("\($0)") }
                XCTAssertTrue(k.hasSuffix(key), k)
            }
            XCTAssertNil(fresh.config.rankPattern)
            XCTAssertEqual(fresh.exportState().count, 0)
        }
    }

    func testTrainerRejectsSchedulesThatDoNotFitTheRun() throws {
        func reason(_ config: AdaLoRAConfig) -> (String, String)? {
            do { _ = try makeTrainer(configuration("bad"), config: config); return nil } catch TrainingError.invalidOption(let name, let reason) {
                return (name, reason)
            } catch { XCTFail("\(error)"); return nil }
        }
        var mismatch = adalora; mismatch.totalStep = 20
        XCTAssertEqual(reason(mismatch)?.0, "total_step")
        var noFinal = adalora; noFinal.tfinal = 0
        XCTAssertEqual(reason(noFinal)?.0, "tfinal")
        var noBudgeting = adalora; noBudgeting.tinit = 12
        XCTAssertEqual(reason(noBudgeting)?.0, "tinit")
        XCTAssertTrue(reason(noBudgeting)?.1.contains("decrease tfinal or tinit") ?? false)
        var noReduction = adalora; noReduction.targetR = 8
        XCTAssertEqual(reason(noReduction)?.0, "target_r")
        var pattern = adalora; pattern.rankPattern = ["model.layers.0.self_attn.q_proj.lora_E": Array(repeating: true, count: 8)]
        XCTAssertEqual(reason(pattern)?.0, "rank_pattern")
    }
}

extension AdaLoRATrainerTests {
    /// AdaLoRA's allocator reads the gradients the recomputed layers produce during their replay: the same losses,
    /// gradient norms, budgets and final ranks as without recomputation.
    func testRecomputedActivationsTrainAdaLoRAIdentically() throws {
        let plain = try makeTrainer(configuration("plain")).run()
        var c = configuration("recomputed"); c.recomputeActivations = true
        let recomputed = try makeTrainer(c).run()
        XCTAssertEqual(recomputed.steps.map(\.loss.bitPattern), plain.steps.map(\.loss.bitPattern))
        XCTAssertEqual(recomputed.steps.map(\.gradientNorm.bitPattern), plain.steps.map(\.gradientNorm.bitPattern))
        XCTAssertEqual(recomputed.steps.map(\.budget), plain.steps.map(\.budget))
        XCTAssertEqual(recomputed.adaLoRARanks, plain.adaLoRARanks)
        XCTAssertNotNil(plain.adaLoRARanks)
    }
}
