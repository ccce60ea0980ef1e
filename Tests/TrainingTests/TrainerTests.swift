import Autograd
import Formats
import Foundation
import NN
import PEFT
import TestSupport
import TensorCore
import Training
import XCTest

final class TrainerTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("lorakit-trainer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    /// Sequences that step by 3 modulo 64 from a random start, of varied lengths; the first `prompt` tokens unlearnt.
    static func countingDataset(count: Int, seed: UInt64, prompt: Int = 2) -> TokenizedDataset {
        var rng = RandomGenerator(seed: seed)
        return TokenizedDataset(path: "counting", examples: (0..<count).map { _ in
            let length = 4 + Int(rng.nextUInt64() % 9), start = Int(rng.nextUInt64() % 64)
            let ids = (0..<length).map { Int32((start + 3 * $0) % 64) }
            return TokenizedExample(ids: ids, labels: ids.enumerated().map { $0.offset < prompt ? -100 : $0.element })
        })
    }

    func configuration(_ name: String, iterations: Int = 6) -> TrainerConfiguration {
        var c = TrainerConfiguration(outputDirectory: directory.appendingPathComponent(name))
        c.iterations = iterations; c.batchSize = 2; c.gradientAccumulation = 2
        c.learningRate = 2e-2; c.warmupSteps = 2; c.weightDecay = 0.01
        c.evalEvery = 2; c.saveEvery = 3; c.seed = 11
        return c
    }

    let lora: LoRAConfig = {
        var c = LoRAConfig(r: 4, loraAlpha: 8, loraDropout: 0.1, targetModules: .names(["q_proj", "v_proj"]))
        c.initialization = .random  // B ≠ 0, so lora_A gets a gradient from the first step
        return c
    }()

    func makeTrainer(_ c: TrainerConfiguration, model: TinyLanguageModel = TinyLanguageModel()) throws -> Trainer {
        try Trainer(model: model, loraConfig: lora, trainData: Self.countingDataset(count: 20, seed: 1),
                    validData: Self.countingDataset(count: 6, seed: 2), paddingID: 0, configuration: c)
    }

    func adapterTensors(_ url: URL) throws -> [String: Tensor] {
        try SafeTensorsFileReader.tensors(url.appendingPathComponent(AdapterFiles.weightsName))
    }

    func testTrainingLowersTheLossAndWritesAdapterAndMetrics() throws {
        var c = configuration("learn", iterations: 30)
        c.saveEvery = 0; c.evalEvery = 10; c.learningRate = 5e-2
        let summary = try makeTrainer(c).run()
        XCTAssertEqual(summary.steps.map(\.step), Array(1...30))
        let first = summary.evaluations.first!.loss, last = summary.evaluations.last!.loss
        XCTAssertEqual(summary.evaluations.map(\.step), [0, 10, 20, 30])
        XCTAssertLessThan(last, first * 0.85, "valid loss \(first) → \(last)")  // measured 5.22 → 3.98
        XCTAssertEqual(summary.evaluations.last!.perplexity, exp(Double(last)), accuracy: 1e-9)
        // The final adapter is PEFT-format and loads onto a fresh model.
        let fresh = TinyLanguageModel()
        let config = try AdapterFiles.loadLoRA(into: fresh, from: c.outputDirectory)
        XCTAssertEqual(config.r, 4)
        XCTAssertEqual(Set(try adapterTensors(c.outputDirectory).keys), [
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
            "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight", "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"])
        // metrics.jsonl: one train line per step, one valid line per evaluation, with the logged numbers.
        let entries = try MetricsLog.read(summary.metricsFile)
        XCTAssertEqual(entries.filter { $0.split == "train" }.map(\.step), Array(1...30))
        // (Foundation's JSON reader on Linux may be 1 ulp off in Double; the logged Float values round-trip exactly.)
        XCTAssertEqual(entries.filter { $0.split == "valid" }.compactMap { $0.loss.map(Float.init) }, summary.evaluations.map(\.loss))
        XCTAssertEqual(entries.filter { $0.split == "train" }.compactMap { $0.loss.map(Float.init) }, summary.steps.map(\.loss))
        let line = try String(contentsOf: summary.metricsFile, encoding: .utf8).split(separator: "\n").first { $0.contains("\"train\"") }!
        for key in ["grad_norm", "learning_rate", "peak_memory_mb", "tokens_per_second", "elapsed_seconds", "targets", "tokens"] {
            XCTAssertTrue(line.contains("\"\(key)\":"), "\(key) missing in \(line)")
        }
    }

    func testGradientAccumulationEqualsOneLargeBatch() throws {
        let data = Self.countingDataset(count: 8, seed: 5)
        func gradients(batchRows: Int, microBatches: Int) throws -> (Float, [String: Tensor]) {
            let model = TinyLanguageModel()
            var initRNG = RandomGenerator(seed: 3)
            var config = lora; config.loraDropout = 0
            try model.addLoRA(config, rng: &initRNG)
            var c = configuration("accum"); c.batchSize = batchRows; c.gradientAccumulation = microBatches
            let trainer = try Trainer(model: model, loraConfig: config, trainData: data, validData: nil, paddingID: 0, configuration: c)
            var sampler = try BatchSampler(dataset: data, batchRows: batchRows, seed: 9, paddingID: 0)
            var rng = RandomGenerator(seed: 1)
            let (loss, _) = try trainer.accumulateGradients((0..<microBatches).map { _ in sampler.next() }, rng: &rng)
            return (loss, Dictionary(uniqueKeysWithValues: model.adapterParameters("default").map { ($0.0, $0.1.grad!) }))
        }
        let (loss4, whole) = try gradients(batchRows: 4, microBatches: 1)
        let (loss22, split) = try gradients(batchRows: 2, microBatches: 2)
        XCTAssertEqual(loss22, loss4, accuracy: 1e-6)
        XCTAssertEqual(whole.keys.sorted(), split.keys.sorted())
        for (name, g) in whole {
            XCTAssertGreaterThan(g.l2Norm(), 1e-3, name)
            XCTAssertLessThanOrEqual(maxAbsDifference(g, split[name]!), 1e-6, name)
        }
        // The two micro-batches hold different target counts, so a plain average of their means would differ.
        var sampler = try BatchSampler(dataset: data, batchRows: 2, seed: 9, paddingID: 0)
        XCTAssertNotEqual(sampler.next().targetCount, sampler.next().targetCount)
    }

    func testResumeReproducesTheUninterruptedRunBitForBit() throws {
        let uninterrupted = try makeTrainer(configuration("full")).run()
        XCTAssertEqual(uninterrupted.steps.count, 6)

        let c = configuration("interrupted")
        let firstHalf = try makeTrainer(c).run(stoppingAfter: 3)
        XCTAssertNil(firstHalf.adapterDirectory)
        XCTAssertEqual(firstHalf.lastCheckpoint?.lastPathComponent, "step-000003")
        // A new process: fresh model, fresh trainer, only the files on disk carry over.
        let secondHalf = try makeTrainer(c).run(resumeFrom: c.outputDirectory)
        XCTAssertEqual(secondHalf.startStep, 3)
        let resumedLosses = (firstHalf.steps + secondHalf.steps).map(\.loss.bitPattern)
        XCTAssertEqual(resumedLosses, uninterrupted.steps.map(\.loss.bitPattern))
        XCTAssertEqual((firstHalf.steps + secondHalf.steps).map(\.learningRate), uninterrupted.steps.map(\.learningRate))
        XCTAssertEqual(try adapterTensors(c.outputDirectory), try adapterTensors(configuration("full").outputDirectory))
        // The resumed log replaces nothing and repeats nothing: steps 1…6 once each.
        let steps = try MetricsLog.read(c.outputDirectory.appendingPathComponent("metrics.jsonl")).filter { $0.split == "train" }.map(\.step)
        XCTAssertEqual(steps, Array(1...6))

        // Resuming with other data-order settings would not continue the run: refused, naming the field.
        var other = c; other.batchSize = 3
        XCTAssertThrowsError(try makeTrainer(other).run(resumeFrom: firstHalf.lastCheckpoint!)) {
            guard case .checkpointMismatch(_, let field, let saved, let current)? = $0 as? TrainingError else { return XCTFail("\($0)") }
            XCTAssertEqual([field, saved, current], ["batch_size", "2", "3"])
        }
    }

    /// kill -9 between writing the last checkpoint and rotating the old ones leaves keep + 1 checkpoints; a resume
    /// from the newest finishes that rotation even when it has no step left to run (found by the kill -9 test).
    /// A resume from an older checkpoint picked by hand rotates nothing away.
    func testResumeFinishesARotationAKilledRunLeftUndone() throws {
        var c = configuration("rotation")
        c.saveEvery = 2; c.keepCheckpoints = 0
        _ = try makeTrainer(c).run()  // steps 2, 4, 6 kept: the state a kill before rotation leaves with keep = 2
        let checkpoints = c.outputDirectory.appendingPathComponent("checkpoints")
        XCTAssertEqual(TrainerCheckpoint.list(in: checkpoints).map(\.step), [2, 4, 6])
        c.keepCheckpoints = 2
        let older = checkpoints.appendingPathComponent(TrainerCheckpoint.directoryName(step: 2))
        let fromOlder = try makeTrainer(c).run(resumeFrom: older, stoppingAfter: 2)
        XCTAssertEqual(fromOlder.startStep, 2)
        XCTAssertEqual(TrainerCheckpoint.list(in: checkpoints).map(\.step), [2, 4, 6], "resuming an older checkpoint rotated the newer ones")
        let atEnd = try makeTrainer(c).run(resumeFrom: c.outputDirectory)
        XCTAssertEqual(atEnd.startStep, 6)
        XCTAssertEqual(atEnd.steps.count, 0)
        XCTAssertEqual(TrainerCheckpoint.list(in: checkpoints).map(\.step), [4, 6])
    }

    func testNonFiniteLossStopsAndKeepsTheLastGoodCheckpoint() throws {
        var c = configuration("nan", iterations: 8)
        c.saveEvery = 2
        let model = TinyLanguageModel()
        // Calls: evaluation at steps 0, 2, 4 (3 batches each) and 2 micro-batches per step, so call 18 is step 5's first.
        model.nanOnCall = 3 + 2 * 2 + 3 + 2 * 2 + 3 + 1
        let trainer = try makeTrainer(c, model: model)
        var lastStep = 0
        trainer.onStep = { lastStep = $0.step }
        XCTAssertThrowsError(try trainer.run()) { error in
            guard case let .nonFinite(quantity, step, value, _, checkpoint)? = error as? TrainingError else { return XCTFail("\(error)") }
            XCTAssertEqual(quantity, "loss")
            XCTAssertTrue(value.isNaN)
            XCTAssertEqual(step, lastStep + 1)
            XCTAssertEqual(checkpoint.map { URL(fileURLWithPath: $0).lastPathComponent }, TrainerCheckpoint.directoryName(step: lastStep / 2 * 2))
            XCTAssertTrue("\(error)".contains("--resume"), "\(error)")
        }
        XCTAssertEqual(lastStep, 4)
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: c.outputDirectory.appendingPathComponent("checkpoints").path).sorted()
        XCTAssertEqual(checkpoints, stride(from: 2, through: lastStep, by: 2).map { TrainerCheckpoint.directoryName(step: $0) })
        XCTAssertFalse(FileManager.default.fileExists(atPath: c.outputDirectory.appendingPathComponent(AdapterFiles.weightsName).path),
                       "no final adapter after a failed run")
        // The kept checkpoint resumes and finishes the run.
        let finished = try makeTrainer(c).run(resumeFrom: c.outputDirectory)
        XCTAssertEqual(finished.steps.last?.step, 8)
    }

    func testCheckpointsAreWrittenAtomically() throws {
        let model = TinyLanguageModel()
        var rng = RandomGenerator(seed: 1)
        try model.addLoRA(lora, rng: &rng)
        let optimizer = try AdamW(parameters: model.adapterParameters("default"))
        let root = directory.appendingPathComponent("checkpoints")
        func save(_ step: Int, adapter: String = "default") throws -> URL {
            try TrainerCheckpoint.write(into: root, step: step, model: model, adapterName: adapter, loraConfig: lora, optimizer: optimizer,
                                        dataPosition: DataPosition(epoch: 1, offset: step), rng: RandomGenerator(seed: 5, position: 77),
                                        settings: ["batch_size": "2"])
        }
        let first = try save(1)
        let firstBytes = try Data(contentsOf: first.appendingPathComponent(AdapterFiles.weightsName))
        _ = try save(2)
        // A save that fails half-way (here: the adapter does not exist) leaves no trace and the earlier ones intact.
        XCTAssertThrowsError(try save(3, adapter: "missing"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root.path).sorted(), ["step-000001", "step-000002"])
        XCTAssertEqual(try Data(contentsOf: first.appendingPathComponent(AdapterFiles.weightsName)), firstBytes)
        // Re-saving a step replaces it whole, leaving nothing else behind.
        model.adapterParameters("default")[0].1.value = Tensor(repeating: 0.5, shape: model.adapterParameters("default")[0].1.shape)
        let again = try save(2)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root.path).sorted(), ["step-000001", "step-000002"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: again.path).sorted(),
                       [AdapterFiles.configName, AdapterFiles.weightsName, TrainerCheckpoint.stateFileName])
        let loaded = try TrainerCheckpoint.load(again)
        XCTAssertEqual(loaded.step, 2)
        XCTAssertEqual(loaded.dataPosition, DataPosition(epoch: 1, offset: 2))
        XCTAssertEqual(loaded.rng.seed, 5); XCTAssertEqual(loaded.rng.position, 77)
        XCTAssertEqual(loaded.settings["batch_size"], "2")
        XCTAssertEqual(try adapterTensors(again)["base_model.model." + model.adapterParameters("default")[0].0]?.array.first, 0.5)
        XCTAssertEqual(try TrainerCheckpoint.resolve(directory), again, "a run directory resolves to its newest checkpoint")
        XCTAssertThrowsError(try TrainerCheckpoint.load(directory)) { XCTAssertTrue("\($0)".contains("trainer_state.safetensors is missing")) }
    }

    func testFreshRunRefusesToMixWithAnEarlierRunsCheckpoints() throws {
        let c = configuration("reuse", iterations: 3)
        try makeTrainer(c).run()
        XCTAssertThrowsError(try makeTrainer(c).run()) { XCTAssertTrue("\($0)".contains("--resume"), "\($0)") }
        var overwrite = c; overwrite.overwriteOutput = true
        XCTAssertEqual(try makeTrainer(overwrite).run().steps.count, 3)
    }

    func testProgressLineRedrawsOnATerminalAndPrintsLinesOtherwise() {
        let m = StepMetrics(step: 7, totalSteps: 200, loss: 1.23456, learningRate: 2e-4, gradientNorm: 0.5, tokens: 100, targets: 40,
                            tokensPerSecond: 523.4, secondsRemaining: 192, peakMemoryBytes: 812 * 1_048_576)
        XCTAssertEqual(ProgressLine.format(m), "step   7/200 | loss 1.2346 | lr 2.00e-04 | 523 tok/s | ETA 3m12s | mem 812 MB")
        XCTAssertEqual(ProgressLine.duration(45), "45s"); XCTAssertEqual(ProgressLine.duration(7500), "2h05m")
        var out = ""
        let tty = ProgressLine(interactive: true) { out += $0 }
        tty.update(m); tty.print("eval"); tty.update(m); tty.finish()
        let line = ProgressLine.format(m)
        XCTAssertEqual(out, "\r" + line + "\r" + String(repeating: " ", count: line.count) + "\reval\n\r" + line + "\n")
        out = ""
        let plain = ProgressLine(interactive: false) { out += $0 }
        plain.update(m); plain.print("eval"); plain.finish()
        XCTAssertEqual(out, line + "\neval\n")
        XCTAssertGreaterThan(ProcessMemory.peakResidentBytes(), 1_000_000)
    }
}

/// Reads every tensor of a safetensors file (adapter weights in these tests).
enum SafeTensorsFileReader {
    static func tensors(_ url: URL) throws -> [String: Tensor] {
        try SafeTensorsFile(contentsOf: url).tensors()
    }
}

extension TrainerTests {
    /// `recomputeActivations` trades compute for memory only: the same losses step for step, dropout included.
    func testRecomputedActivationsTrainIdentically() throws {
        let plain = try makeTrainer(configuration("plain")).run()
        var c = configuration("recomputed"); c.recomputeActivations = true
        let model = TinyLanguageModel()
        let recomputed = try makeTrainer(c, model: model).run()
        XCTAssertTrue(model.recomputesActivations)
        XCTAssertEqual(recomputed.steps.map(\.loss), plain.steps.map(\.loss))
        XCTAssertEqual(recomputed.evaluations.map(\.loss), plain.evaluations.map(\.loss))
    }
}
