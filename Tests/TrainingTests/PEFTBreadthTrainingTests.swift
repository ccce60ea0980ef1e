// Issue 14, training side: LoRA+ against PEFT's create_loraplus_optimizer (one AdamW step on the DoRA fixture, so
// the 1-D magnitude rule is exercised too), `lorakit train` options for DoRA / rsLoRA / init schemes / LoRA+, DoRA
// training through the Trainer, and PiSSA training whose saved adapter applies to the original base.
import XCTest
import Foundation
import TensorCore
import Autograd
import Formats
import NN
import PEFT
import Models
import Training
import TestSupport

final class PEFTBreadthTrainingTests: XCTestCase {
    func loadBase() throws -> LlamaModel { try ModelLoader.load(Fixtures.url("peft/base_llama")).model }

    func testLoRAPlusStepMatchesPEFT() throws {
        let model = try loadBase()
        try AdapterFiles.loadLoRA(into: model, from: Fixtures.url("peft/llama_dora/adapter"))
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("peft/breadth/dora_train.safetensors"))
        let ids = try file.int32s("input")
        let parameters = model.adapterParameters("default")
        let groups = try LoRAPlus.parameterGroups(parameters, ratio: 16, weightDecay: 0.01)
        XCTAssertEqual(groups.map(\.learningRateMultiplier), [1, 16])
        XCTAssertTrue(groups[0].parameters.allSatisfy { $0.0.hasSuffix("lora_A.weight") })
        XCTAssertEqual(groups[1].parameters.filter { $0.0.hasSuffix("lora_magnitude_vector") }.count, 4, "1-D parameters learn at the B rate")
        let optimizer = try AdamW(groups: groups, learningRate: 1e-3, weightDecay: 0.01)
        var rng = RandomGenerator(seed: 0)
        try model.loss(ids: [Array(ids[0..<8]), Array(ids[8..<16])], training: true, rng: &rng).backward()
        let before = Dictionary(uniqueKeysWithValues: parameters.map { ($0.0, $0.1.value) })
        optimizer.step()
        for (name, p) in parameters {
            let expected = try file.tensor("loraplus.base_model.model." + name)
            XCTAssertLessThan(maxAbsDifference(p.value, expected), 1e-6, name)
            XCTAssertGreaterThan(maxAbsDifference(p.value, before[name]!), 1e-5, name)
        }
        XCTAssertThrowsError(try LoRAPlus.parameterGroups(parameters, ratio: 0)) { XCTAssertTrue("\($0)".contains("--loraplus-lr-ratio"), "\($0)") }
    }

    func testTrainOptionsExposeDoRAInitialisationsAndLoRAPlus() throws {
        var o = TrainingRunOptions()
        o.model = "m.gguf"; o.data = "data"; o.dora = true; o.rslora = true; o.initLoraWeights = "gaussian"; o.loraplusLrRatio = 16
        let plan = try o.resolved()
        XCTAssertTrue(plan.lora.useDoRA); XCTAssertTrue(plan.lora.useRSLoRA)
        XCTAssertEqual(plan.lora.initialization, .gaussian)
        XCTAssertEqual(plan.trainer.loraPlusLearningRateRatio, 16)
        for (name, expected) in [("pissa", LoRAInitialization.pissa(powerIterations: nil)), ("pissa_niter_4", .pissa(powerIterations: 4)), ("olora", .olora)] {
            var p = o; p.dora = false; p.initLoraWeights = name
            XCTAssertEqual(try p.resolved().lora.initialization, expected)
        }
        let dir = try temporaryDirectory(self, "options")
        let yaml = dir.appendingPathComponent("run.yaml")
        try Data("model: m.gguf\ndata: d\nuse_dora: true\nuse_rslora: true\ninit_lora_weights: olora\nloraplus_lr_ratio: 8\n".utf8).write(to: yaml)
        let fromFile = try TrainingRunOptions.load(configFile: yaml)
        XCTAssertEqual(fromFile.dora, true); XCTAssertEqual(fromFile.rslora, true); XCTAssertEqual(fromFile.initLoraWeights, "olora")
        XCTAssertEqual(fromFile.loraplusLrRatio, 8)
        func fails(_ change: (inout TrainingRunOptions) -> Void, _ flag: String) {
            var p = o; change(&p)
            XCTAssertThrowsError(try p.resolved()) { XCTAssertTrue("\($0)".contains(flag), "\($0)") }
        }
        fails({ $0.method = "adalora" }, "--dora")
        fails({ $0.initLoraWeights = "xavier" }, "xavier")
        fails({ $0.initLoraWeights = "pissa" }, "--init")
        fails({ $0.loraplusLrRatio = -1 }, "loraplus")
        fails({ $0.dora = false; $0.method = "adalora"; $0.loraplusLrRatio = 16 }, "--loraplus-lr-ratio")
    }

    /// The rows of the PEFT fixture as a dataset (labels = ids).
    func fixtureDataset() throws -> TokenizedDataset {
        let ids = try SafeTensorsFile(contentsOf: Fixtures.url("peft/llama_lora/curve.safetensors")).int32s("batches")
        return TokenizedDataset(path: "fixture", examples: (0..<8).map { i in
            let row = Array(ids[(i * 16)..<((i + 1) * 16)])
            return TokenizedExample(ids: row, labels: row)
        })
    }

    func trainerConfiguration(_ out: URL) -> TrainerConfiguration {
        var c = TrainerConfiguration(outputDirectory: out)
        c.iterations = 3; c.batchSize = 2; c.learningRate = 1e-2; c.evalEvery = 0; c.saveEvery = 0
        return c
    }

    /// DoRA through the Trainer (with LoRA+): the loss falls, A, B and m move, and the saved adapter reproduces the
    /// trained model's logits on a fresh base.
    func testDoRATrainsAndItsAdapterReloads() throws {
        let model = try loadBase()
        var config = LoRAConfig(r: 4, loraAlpha: 8, targetModules: .names(["q_proj", "v_proj", "down_proj"]))
        config.useDoRA = true
        let out = try temporaryDirectory(self, "dora-train")
        var c = trainerConfiguration(out)
        c.iterations = 6; c.loraPlusLearningRateRatio = 4
        let summary = try Trainer(model: model, loraConfig: config, trainData: try fixtureDataset(), validData: nil, paddingID: 0,
                                  configuration: c).run()
        XCTAssertLessThan(summary.steps.last!.loss, summary.steps.first!.loss)
        let layer = model.linear(at: "model.layers.0.self_attn.q_proj")!
        let dora = try XCTUnwrap(layer.adapter(named: "default") as? DoRABranch)
        let w = layer.weight.value  // m started as ‖W‖ per row (B = 0) and has moved
        let norms = Tensor((0..<w.dim(0)).map { i in (0..<w.dim(1)).map { w[i, $0] * w[i, $0] }.reduce(0, +).squareRoot() }, shape: [w.dim(0)])
        XCTAssertGreaterThan(maxAbsDifference(dora.magnitude.value, norms), 1e-4, "m trained")
        let saved = try LoRAConfig.load(from: out.appendingPathComponent(AdapterFiles.configName))
        XCTAssertTrue(saved.useDoRA)
        let reloaded = try loadBase()
        try AdapterFiles.loadLoRA(into: reloaded, from: out)
        let ids: [[Int32]] = [Array(try fixtureDataset().examples[0].ids)]
        XCTAssertLessThan(maxAbsDifference(try reloaded.logits(ids: ids), try model.logits(ids: ids)), 1e-5)
    }

    /// PiSSA: the base becomes the residual during training; the saved adapter is the rank-2r conversion that gives
    /// the trained model's logits on the original base.
    func testPiSSATrainingSavesAnAdapterForTheOriginalBase() throws {
        let model = try loadBase()
        var config = LoRAConfig(r: 2, loraAlpha: 4, targetModules: .names(["q_proj", "v_proj"]))
        config.initialization = .pissa(powerIterations: nil)
        let out = try temporaryDirectory(self, "pissa-train")
        try Trainer(model: model, loraConfig: config, trainData: try fixtureDataset(), validData: nil, paddingID: 0,
                    configuration: trainerConfiguration(out)).run()
        let saved = try LoRAConfig.load(from: out.appendingPathComponent(AdapterFiles.configName))
        XCTAssertEqual(saved.r, 4); XCTAssertEqual(saved.loraAlpha, 8); XCTAssertEqual(saved.initialization, .standard)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("initial_adapter/adapter_model.safetensors").path))
        let original = try loadBase()
        try AdapterFiles.loadLoRA(into: original, from: out)
        let ids: [[Int32]] = [Array(try fixtureDataset().examples[1].ids)]
        XCTAssertLessThan(maxAbsDifference(try original.logits(ids: ids), try model.logits(ids: ids)), 1e-4)
        XCTAssertGreaterThan(maxAbsDifference(try original.logits(ids: ids), try loadBase().logits(ids: ids)), 1e-3, "training changed something")
    }
}
