import Foundation
import PEFT
import Training
import XCTest

/// The whole `lorakit train` path after model loading: demo data → SmolLM2 tokenizer and chat template → trainer →
/// adapter, checkpoints, metrics.jsonl and loss.svg. The model is the small stand-in with SmolLM2's vocabulary size.
final class TrainingRunTests: XCTestCase {
    func testDemoDataTrainsEndToEndAndPlotsTheLoss() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorakit-run-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try DateNormalizationTask(seed: 1).write(to: dir.appendingPathComponent("data"), train: 24, valid: 6, test: 6, format: .messages)
        var options = TrainingRunOptions()
        options.model = "unused"; options.data = dir.appendingPathComponent("data").path; options.out = dir.appendingPathComponent("out").path
        options.iters = 4; options.batchSize = 4; options.evalEvery = 2; options.saveEvery = 2; options.maxLength = 64
        options.learningRate = 1e-2
        let plan = try options.resolved()
        let smol = SmolLMTokenizer.shared
        var lines: [String] = []
        let progress = ProgressLine(interactive: false) { lines.append($0) }
        let model = TinyLanguageModel(vocabulary: smol.tokenizer.vocabularySize, dimension: 8)
        let summary = try TrainingRun.execute(plan, model: model, tokenizer: smol.tokenizer, chatTemplate: smol.templateText, progress: progress)
        XCTAssertEqual(summary.steps.count, 4)
        XCTAssertEqual(summary.evaluations.map(\.step), [0, 2, 4])
        // Only the assistant answer (10 characters of date + <|im_end|>) is learnt in each example.
        XCTAssertEqual(summary.steps[0].targets, 4 * (smol.tokenizer.encode("2021-03-05", addSpecialTokens: false, parseSpecialTokens: false).count + 1))
        let out = plan.trainer.outputDirectory
        for name in [AdapterFiles.configName, AdapterFiles.weightsName, "metrics.jsonl", "loss.svg", "checkpoints/step-000002", "checkpoints/step-000004"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(name).path), name)
        }
        let svg = try String(contentsOf: out.appendingPathComponent("loss.svg"), encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg") || svg.hasPrefix("<?xml"), String(svg.prefix(40)))
        XCTAssertTrue(svg.contains(">train<") && svg.contains(">valid<"), "legend names both curves")
        let text = lines.joined()
        XCTAssertTrue(text.contains("train: 24 examples"), text)
        XCTAssertTrue(text.contains("step 4/4 | loss "), text)
        XCTAssertTrue(text.contains("Adapter saved to \(out.path)"), text)
        let config = try LoRAConfig.load(from: out.appendingPathComponent(AdapterFiles.configName))
        XCTAssertEqual(config.r, 8); XCTAssertEqual(config.loraAlpha, 16); XCTAssertEqual(config.targetModules, .names(["q_proj", "v_proj"]))
    }
}
