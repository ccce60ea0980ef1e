// `lorakit train --method adalora` options (flags and config files with PEFT's spellings), their defaults and
// errors, and the rank report: the layer × module table, ranks.svg and rank_history.svg, and the progress line.
import Foundation
import PEFT
import Training
import XCTest
import TestSupport

final class AdaLoRARunOptionsTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = try temporaryDirectory(self, "adalora-options")
    }

    func options(_ iters: Int = 80) -> TrainingRunOptions {
        var o = TrainingRunOptions()
        o.model = "m.gguf"; o.data = "data"; o.iters = iters; o.method = "adalora"
        return o
    }

    func testDefaultsScheduleFromTheRunLength() throws {
        let plan = try options(80).resolved()
        guard case .adalora(let c, let form) = plan.method else { return XCTFail("\(plan.method)") }
        XCTAssertEqual([c.initR, c.targetR, c.tinit, c.tfinal, c.deltaT, c.totalStep], [12, 8, 8, 20, 3, 80])
        XCTAssertEqual(form, .peft)
        XCTAssertEqual(c.lora.targetModules, .names(["q_proj", "v_proj"]))
        XCTAssertEqual(c.lora.loraAlpha, 16)
        XCTAssertEqual(plan.lora, c.lora)
        // 80 steps: allocations at 0-based steps 9, 12, …, 57 and the final one at 60.
        XCTAssertEqual(AdaLoRASchedule.maskingSteps(c), Array(stride(from: 9, through: 57, by: 3)) + [60])
        // About 15 allocations whatever the length.
        for iters in [40, 200, 1000, 5000] {
            var config = AdaLoRAConfig(totalStep: iters)
            (config.tinit, config.tfinal, config.deltaT) = AdaLoRASchedule.defaults(iterations: iters)
            XCTAssertTrue((12...22).contains(AdaLoRASchedule.maskingSteps(config).count), "\(iters): \(AdaLoRASchedule.maskingSteps(config).count)")
        }
        var lora = options(); lora.method = nil
        XCTAssertEqual(try lora.resolved().method.name, "lora")
    }

    func testConfigFileTakesPEFTSpellings() throws {
        let url = directory.appendingPathComponent("run.json")
        try Data("""
            {"model": "m.gguf", "data": "d", "iters": 100, "peft_type": "ADALORA", "init_r": 10, "target_r": 4, "tinit": 5,
             "tfinal": 30, "deltaT": 5, "beta1": 0.8, "importance-beta2": 0.9, "orth_reg_weight": 0.1, "orth_reg_form": "squared",
             "lora_alpha": 20}
            """.utf8).write(to: url)
        var flags = TrainingRunOptions(); flags.targetRank = 6  // the command line wins
        let plan = try flags.overriding(try TrainingRunOptions.load(configFile: url)).resolved()
        guard case .adalora(let c, let form) = plan.method else { return XCTFail("\(plan.method)") }
        XCTAssertEqual([c.initR, c.targetR, c.tinit, c.tfinal, c.deltaT, c.totalStep], [10, 6, 5, 30, 5, 100])
        XCTAssertEqual([c.beta1, c.beta2, c.orthRegWeight, c.lora.loraAlpha], [0.8, 0.9, 0.1, 20])
        XCTAssertEqual(form, .paperSquared)
    }

    func testInvalidCombinationsNameTheFlagAndTheFix() {
        func failure(_ edit: (inout TrainingRunOptions) -> Void) -> (name: String, reason: String)? {
            var o = options(80)
            edit(&o)
            do { _ = try o.resolved(); return nil } catch TrainingError.invalidOption(let name, let reason) { return (name, reason) } catch {
                XCTFail("\(error)"); return nil
            }
        }
        XCTAssertEqual(failure { $0.rank = 8 }?.name, "--rank")
        XCTAssertTrue(failure { $0.rank = 8 }?.reason.contains("--init-rank") ?? false)
        XCTAssertEqual(failure { $0.method = "lora"; $0.initRank = 12 }?.name, "--init-rank")
        XCTAssertEqual(failure { $0.method = "dora" }?.name, "--method")
        XCTAssertEqual(failure { $0.targetRank = 12 }?.name, "--target-rank (target_r)")
        XCTAssertTrue(failure { $0.targetRank = 12 }?.reason.contains("raise init_r") ?? false)
        // tinit + the default tfinal (20) leave no budgeting phase: named, with the defaulted value explained.
        let schedule = failure { $0.tinit = 60 }
        XCTAssertEqual(schedule?.name, "--tinit (tinit)")
        XCTAssertTrue(schedule?.reason.contains("(total_step is --iters)") ?? false, schedule?.reason ?? "")
        XCTAssertEqual(failure { $0.tfinal = 0 }?.name, "--tfinal (tfinal)")
        XCTAssertEqual(failure { $0.deltaT = 0 }?.name, "--delta-t (deltaT)")
        XCTAssertEqual(failure { $0.importanceBeta1 = 1 }?.name, "--importance-beta1 (beta1)")
        XCTAssertEqual(failure { $0.orthRegWeight = -1 }?.name, "--orth-reg-weight (orth_reg_weight)")
        XCTAssertEqual(failure { $0.orthRegForm = "cubed" }?.name, "--orth-reg-form")
        XCTAssertEqual(failure { $0.iters = 2; $0.tinit = 1 }?.name, "--tinit (tinit)")
    }

    func testRankTableAndHeatmaps() throws {
        let paths = (0..<3).flatMap { l in ["q_proj", "v_proj"].map { "model.layers.\(l).self_attn.\($0)" } }
        let ranks = zip(paths, [2, 9, 0, 12, 5, 4]).map { RankAllocator.ModuleRank(module: $0, rank: $1) }
        let map = AdaLoRARankMap(ranks)
        XCTAssertEqual(map.rowLabels, ["0", "1", "2"]); XCTAssertEqual(map.columnLabels, ["q_proj", "v_proj"])
        XCTAssertEqual(map.total, 32)
        XCTAssertEqual(map.table(), """
            layer  q_proj  v_proj  total
            -----  ------  ------  -----
            0           2       9     11
            1           0      12     12
            2           5       4      9
            -----  ------  ------  -----
            total       7      25     32
            """)
        let svg = try map.heatmap(initRank: 12).render()
        XCTAssertTrue(svg.contains(">q_proj<") && svg.contains(">v_proj<") && svg.contains(">12<"), "labels and annotations")
        // The history comes back from metrics.jsonl, layers in numeric order (10 after 2), missing cells blank.
        let log = directory.appendingPathComponent("metrics.jsonl")
        try Data("""
            {"split":"valid","step":0,"loss":3.0}
            {"split":"train","step":1,"loss":2.0,"budget":48}
            {"split":"train","step":5,"budget":40,"rank.model.layers.10.mlp.up_proj":7,"rank.model.layers.2.mlp.up_proj":12}
            {"split":"train","step":9,"budget":30,"rank.model.layers.10.mlp.up_proj":3,"rank.model.layers.2.mlp.up_proj":11}
            {"split":"train","step":7,"budget":35,"rank.model.layers.2.mlp.up_proj":12}

            """.utf8).write(to: log)
        let history = try AdaLoRARankLog.history(metricsFile: log)
        XCTAssertEqual(history.modules, ["model.layers.2.mlp.up_proj", "model.layers.10.mlp.up_proj"])
        XCTAssertEqual(history.steps, [5, 7, 9])
        XCTAssertEqual(history.ranks, [[12, 12, 11], [7, -1, 3]])
        let heatmap = try AdaLoRARankLog.historyHeatmap(metricsFile: log, initRank: 12)
        XCTAssertEqual(heatmap.rowLabels, ["L2 up_proj", "L10 up_proj"])
        XCTAssertTrue(heatmap.values[1][1].isNaN)
        XCTAssertTrue(try heatmap.render().contains("missing"))
        try Data("{\"split\":\"train\",\"step\":1,\"loss\":2.0}\n".utf8).write(to: log)
        XCTAssertThrowsError(try AdaLoRARankLog.history(metricsFile: log)) { XCTAssertTrue("\($0)".contains("no AdaLoRA allocation"), "\($0)") }
    }

    /// The `lorakit train --method adalora` path after model loading: the schedule line, the budget on the progress
    /// line, the final rank table, ranks.svg and rank_history.svg next to the adapter.
    func testTrainingRunPrintsTheRankTableAndWritesTheRankPlots() throws {
        try DateNormalizationTask(seed: 1).write(to: directory.appendingPathComponent("data"), train: 24, valid: 6, test: 6, format: .messages)
        var o = options(20)
        o.data = directory.appendingPathComponent("data").path; o.out = directory.appendingPathComponent("out").path
        o.batchSize = 4; o.evalEvery = 10; o.saveEvery = 10; o.maxLength = 64; o.learningRate = 1e-2; o.initRank = 6; o.targetRank = 2
        let plan = try o.resolved()
        let smol = SmolLMTokenizer.shared
        var lines: [String] = []
        let model = TinyLanguageModel(vocabulary: smol.tokenizer.vocabularySize, dimension: 8)
        let summary = try TrainingRun.execute(plan, model: model, tokenizer: smol.tokenizer, chatTemplate: smol.templateText,
                                              progress: ProgressLine(interactive: false) { lines.append($0) })
        XCTAssertEqual(summary.adaLoRARanks?.reduce(0) { $0 + $1.rank }, 4)
        let text = lines.joined()
        XCTAssertTrue(text.contains("tinit 2 warm-up steps") && text.contains("every 1 steps (deltaT; 13 allocations)")
                      && text.contains("last 5 steps (tfinal)"), text)
        XCTAssertTrue(text.contains("step 20/20 | loss ") && text.contains("| budget 4/12\n"), text)
        let table = AdaLoRARankMap(summary.adaLoRARanks!).table()
        XCTAssertTrue(text.contains("Final AdaLoRA ranks (kept triplets of init_r 6; total 4):\n" + table), text)
        for name in ["ranks.svg", "rank_history.svg", "loss.svg", AdapterFiles.configName] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: plan.trainer.outputDirectory.appendingPathComponent(name).path), name)
        }
        let saved = try AdaLoRAConfig.load(from: plan.trainer.outputDirectory.appendingPathComponent(AdapterFiles.configName))
        XCTAssertEqual(saved.rankPattern?.values.reduce(0) { $0 + $1.filter { $0 }.count }, 4)
    }

    func testProgressLineShowsTheBudget() {
        let m = StepMetrics(step: 7, totalSteps: 200, loss: 1.23456, learningRate: 2e-4, gradientNorm: 0.5, tokens: 100, targets: 40,
                            tokensPerSecond: 523.4, secondsRemaining: 192, peakMemoryBytes: 812 * 1_048_576, budget: 40, note: "budget 40/48")
        XCTAssertEqual(ProgressLine.format(m), "step   7/200 | loss 1.2346 | lr 2.00e-04 | 523 tok/s | ETA 3m12s | mem 812 MB | budget 40/48")
    }
}
