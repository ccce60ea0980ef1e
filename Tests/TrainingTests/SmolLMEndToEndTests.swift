import XCTest
import Foundation
import TensorCore
import PEFT
import Models
import Tokenizers
import Training
import TestSupport

/// Issue 4, item 8: a short real run on SmolLM2-135M (Q4_1 GGUF, base kept quantized): the loss goes down, the
/// adapter saves in PEFT format, reloads onto a fresh model and generates the same greedy tokens.
final class SmolLMEndToEndTests: XCTestCase {
    func testTrainSaveReloadGenerate() throws {
        let gguf = Fixtures.modelsDirectory.appendingPathComponent("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        try XCTSkipUnless(FileManager.default.fileExists(atPath: gguf.path), "run scripts/fetch-models.sh first")
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("lorakit-e2e-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: work) }
        let data = work.appendingPathComponent("data")
        try DateNormalizationTask(seed: 3).write(to: data, train: 48, valid: 8, test: 4, format: .messages)

        let loaded = try ModelLoader.load(gguf)
        let tokenizer = try XCTUnwrap(loaded.tokenizer)
        var options = TrainingRunOptions()
        options.model = gguf.path; options.data = data.path; options.out = work.appendingPathComponent("run").path
        options.rank = 4; options.alpha = 8; options.targets = "q_proj,v_proj"; options.iters = 6; options.batchSize = 4
        options.learningRate = 3e-3; options.warmup = 0; options.schedule = "constant"
        options.evalEvery = 6; options.saveEvery = 6; options.maxLength = 96
        var log: [String] = []
        let summary = try TrainingRun.execute(try options.resolved(), model: loaded.model, tokenizer: tokenizer,
                                              chatTemplate: loaded.chatTemplate,
                                              progress: ProgressLine(interactive: false) { log.append($0) })
        let losses = summary.steps.map(\.loss)
        XCTAssertEqual(losses.count, 6)
        XCTAssertTrue(losses.allSatisfy(\.isFinite))
        XCTAssertLessThan(losses.suffix(2).reduce(0, +) / 2, losses.prefix(2).reduce(0, +) / 2, "losses \(losses)")

        let adapter = try XCTUnwrap(summary.adapterDirectory)
        let keys = try SafeTensorsFileKeys.of(adapter.appendingPathComponent("adapter_model.safetensors"))
        XCTAssertEqual(keys.count, 30 * 2 * 2)  // 30 layers × (q, v) × (A, B)
        XCTAssertTrue(keys.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"))

        // A fresh model with the saved adapter generates exactly what the trained in-memory model generates.
        let fresh = try ModelLoader.load(gguf)
        try AdapterFiles.loadLoRA(into: fresh.model, from: adapter)
        let template = try ChatTemplate(template: loaded.chatTemplate, formatOverride: nil)
        let prompt = template.render([ChatMessage(role: "user", content: "Normalize this date to ISO format: 5.3.2021")])
        let ids = tokenizer.encode(prompt, addSpecialTokens: false, parseSpecialTokens: true).map { Int32($0) }
        let options8 = GenerationOptions(maxNewTokens: 8)
        let a = try Generator(model: loaded.model, tokenizer: tokenizer, stopTokenIDs: loaded.stopTokenIDs).generate(prompt: ids, options: options8)
        let b = try Generator(model: fresh.model, tokenizer: tokenizer, stopTokenIDs: fresh.stopTokenIDs).generate(prompt: ids, options: options8)
        XCTAssertEqual(a.tokens, b.tokens)
        XCTAssertFalse(a.tokens.isEmpty)

        // `lorakit merge`: the adapter merged into the dequantized base, saved as a Hugging Face directory (tokenizer
        // written from the GGUF), generates the same greedy tokens with its own tokenizer.
        let mergedDirectory = work.appendingPathComponent("merged")
        let mergeSummary = try MergedModelWriter.merge(model: gguf, adapter: adapter, to: mergedDirectory)
        XCTAssertEqual(mergeSummary.mergedModules.count, 60)
        let merged = try ModelLoader.load(mergedDirectory)
        let mergedTokenizer = try XCTUnwrap(merged.tokenizer)
        XCTAssertEqual(mergedTokenizer.encode(prompt, addSpecialTokens: false, parseSpecialTokens: true).map { Int32($0) }, ids)
        XCTAssertEqual(merged.chatTemplate, loaded.chatTemplate)
        let c = try Generator(model: merged.model, tokenizer: mergedTokenizer, stopTokenIDs: merged.stopTokenIDs).generate(prompt: ids, options: options8)
        XCTAssertEqual(c.tokens, a.tokens)
    }
}

import Formats
enum SafeTensorsFileKeys {
    static func of(_ url: URL) throws -> [String] { try SafeTensorsFile(contentsOf: url).names }
}
