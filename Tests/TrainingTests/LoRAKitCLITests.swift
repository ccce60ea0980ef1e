// The built `lorakit` executable on a tiny model (peft/base_llama's weights as a GGUF with a byte-level tokenizer):
// `eval` prints the loss, perplexity and exact match the library computes; `merge` writes a directory that
// `generate` and `eval` use like the base with the adapter; bad input exits non-zero with a message naming the file,
// tensor or option.
import XCTest
import Foundation
import TensorCore
import Formats
import PEFT
import Models
import Tokenizers
import Training
import TestSupport

final class LoRAKitCLITests: XCTestCase {
    var directory: URL!
    var gguf: URL!
    let adapter = Fixtures.url("peft/llama_lora/adapter")

    override func setUpWithError() throws {
        directory = try temporaryDirectory(self, "cli")
        gguf = directory.appendingPathComponent("tiny.gguf")
        let weights = try SafeTensorsFile(contentsOf: Fixtures.url("peft/base_llama/model.safetensors")).tensors()
        try TinyLlamaGGUF.write(baseLlama: weights, to: gguf)
    }

    /// `swift test` builds the executable next to the test bundle.
    static var executable: URL? {
        var candidates: [URL] = []
        if let exe = Bundle.main.executableURL { candidates.append(exe.deletingLastPathComponent().appendingPathComponent("lorakit")) }
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("lorakit"))
        for test in Bundle.allBundles where test.bundleURL.pathExtension == "xctest" {
            candidates.append(test.bundleURL.deletingLastPathComponent().appendingPathComponent("lorakit"))
        }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    struct Run { let status: Int32; let stdout: String; let stderr: String }

    func lorakit(_ arguments: [String]) throws -> Run {
        let exe = try XCTUnwrap(Self.executable, "lorakit not found next to the test bundle (\(Bundle.main.bundleURL.path))")
        let out = directory.appendingPathComponent("stdout-\(UUID().uuidString)"), err = directory.appendingPathComponent("stderr-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: out.path, contents: nil); FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = exe
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: try String(contentsOf: out, encoding: .utf8),
                   stderr: try String(contentsOf: err, encoding: .utf8))
    }

    /// What `lorakit eval` computes, done in process: token-weighted loss and greedy exact match.
    func expectedEval(model: LoadedModel, data: URL) throws -> (loss: Double, correct: Int, outputs: [String]) {
        let tokenizer = try XCTUnwrap(model.tokenizer)
        let file = try TrainingDataFile.load(data)
        let template = try? ChatTemplate(template: model.chatTemplate, formatOverride: nil)
        let encoder = try ExampleEncoder(tokenizer: tokenizer, chatTemplate: template, options: EncodingOptions(maxLength: 2048))
        let dataset = try TokenizedDataset(file: file, encoder: encoder)
        var rng = RandomGenerator(seed: 0)
        var sum = 0.0, targets = 0
        for batch in BatchSampler.sequentialBatches(dataset, batchRows: 8, paddingID: 2) where batch.targetCount > 0 {
            sum += Double(try model.model.loss(batch: batch, training: false, rng: &rng).value.scalarValue) * Double(batch.targetCount)
            targets += batch.targetCount
        }
        let report = try ExactMatch.evaluate(model: model.model, tokenizer: tokenizer, chatTemplate: template, stopTokenIDs: model.stopTokenIDs,
                                             cases: try ExactMatch.cases(from: file), maxNewTokens: 4)
        return (sum / Double(targets), report.correct, report.results.map(\.output))
    }

    func writeData(_ completions: [String]) throws -> URL {
        let url = directory.appendingPathComponent("eval.jsonl")
        let prompts = ["Hello world is", "the string and"]
        let lines = try zip(prompts, completions).map { prompt, completion -> String in
            String(decoding: try JSONSerialization.data(withJSONObject: ["prompt": prompt, "completion": completion]), as: UTF8.self)
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: url)
        return url
    }

    func jsonReport(_ run: Run) throws -> [String: Any] {
        XCTAssertEqual(run.status, 0, run.stderr)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], run.stdout)
    }

    func testEvalPrintsTheLibrarysLossPerplexityAndExactMatch() throws {
        // One completion is what the adapted model greedily answers, so exact match must be exactly 1 of 2.
        let adapted = try ModelLoader.load(gguf)
        try AdapterFiles.load(into: adapted.model, from: adapter)
        let probe = try expectedEval(model: adapted, data: try writeData(["x", "y"]))
        let answer = ExactMatch.normalize(probe.outputs[0])
        try XCTSkipIf(answer.isEmpty || answer == ExactMatch.normalize(probe.outputs[1]), "degenerate greedy answer \(probe.outputs)")
        let data = try writeData([answer, answer + "zz"])
        let expected = try expectedEval(model: adapted, data: data)
        XCTAssertEqual(expected.correct, 1)

        let report = try jsonReport(try lorakit(["eval", "--model", gguf.path, "--adapter", adapter.path, "--data", data.path,
                                                 "--json", "--max-tokens", "4"]))
        let loss = try XCTUnwrap(report["loss"] as? Double)
        XCTAssertEqual(loss, expected.loss, accuracy: 1e-6 * expected.loss)
        XCTAssertEqual(try XCTUnwrap(report["perplexity"] as? Double), exp(expected.loss), accuracy: 1e-6 * exp(expected.loss))
        XCTAssertEqual(report["examples"] as? Int, 2)
        XCTAssertEqual(report["exact_match_correct"] as? Int, 1)
        XCTAssertEqual(try XCTUnwrap(report["exact_match"] as? Double), 0.5)

        // Without the adapter: the base's own (different) loss.
        let baseExpected = try expectedEval(model: try ModelLoader.load(gguf), data: data)
        let base = try jsonReport(try lorakit(["eval", "--model", gguf.path, "--data", data.path, "--json", "--no-exact-match"]))
        XCTAssertEqual(try XCTUnwrap(base["loss"] as? Double), baseExpected.loss, accuracy: 1e-6 * baseExpected.loss)
        XCTAssertGreaterThan(abs(baseExpected.loss - expected.loss), 1e-3)
        XCTAssertNil(base["exact_match"])
        print("lorakit eval: loss \(loss) with adapter, \(baseExpected.loss) without")
    }

    func testMergeThenGenerateAndEvalMatchTheAdapter() throws {
        let merged = directory.appendingPathComponent("merged")
        let merge = try lorakit(["merge", "--model", gguf.path, "--adapter", adapter.path, "--out", merged.path])
        XCTAssertEqual(merge.status, 0, merge.stderr)
        XCTAssertTrue(merge.stdout.contains("Merged LORA adapter into 4 modules"), merge.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: merged.appendingPathComponent("tokenizer.json").path))

        let prompt = ["--prompt", "Hello world, the", "--temperature", "0", "--max-tokens", "12"]
        let fromMerged = try lorakit(["generate", "--model", merged.path] + prompt)
        let withAdapter = try lorakit(["generate", "--model", gguf.path, "--adapter", adapter.path] + prompt)
        XCTAssertEqual(fromMerged.status, 0, fromMerged.stderr)
        XCTAssertEqual(withAdapter.status, 0, withAdapter.stderr)
        XCTAssertFalse(fromMerged.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        XCTAssertEqual(fromMerged.stdout, withAdapter.stdout)

        let data = try writeData(["a", "b"])
        let mergedEval = try jsonReport(try lorakit(["eval", "--model", merged.path, "--data", data.path, "--json", "--no-exact-match"]))
        let adapterEval = try jsonReport(try lorakit(["eval", "--model", gguf.path, "--adapter", adapter.path, "--data", data.path,
                                                      "--json", "--no-exact-match"]))
        let a = try XCTUnwrap(mergedEval["loss"] as? Double), b = try XCTUnwrap(adapterEval["loss"] as? Double)
        XCTAssertEqual(a, b, accuracy: 1e-5 * b)

        // bf16 output loads and evaluates close to the f32 merge.
        let half = directory.appendingPathComponent("merged-bf16")
        XCTAssertEqual(try lorakit(["merge", "--model", gguf.path, "--adapter", adapter.path, "--out", half.path, "--dtype", "bf16"]).status, 0)
        let halfEval = try jsonReport(try lorakit(["eval", "--model", half.path, "--data", data.path, "--json", "--no-exact-match"]))
        XCTAssertEqual(try XCTUnwrap(halfEval["loss"] as? Double), a, accuracy: 1e-2 * a)
        print("lorakit merge: eval loss merged \(a), base+adapter \(b), bf16 \(halfEval["loss"] ?? "-")")
    }

    /// `export --to gguf` and back, `--adapter FILE.gguf`, `merge --to gguf` and `--trace`: every path generates the
    /// PEFT adapter's greedy text; bad input is refused naming the option or tensor.
    func testExportToGGUFAndBackAndMergeToGGUFGenerateTheSameText() throws {
        let prompt = ["--prompt", "Hello world, the", "--temperature", "0", "--max-tokens", "12"]
        let reference = try lorakit(["generate", "--model", gguf.path, "--adapter", adapter.path] + prompt)
        XCTAssertEqual(reference.status, 0, reference.stderr)
        let file = directory.appendingPathComponent("adapter.gguf")
        let export = try lorakit(["export", "--adapter", adapter.path, "--to", "gguf", "--model", gguf.path, "--out", file.path])
        XCTAssertEqual(export.status, 0, export.stderr)
        XCTAssertTrue(export.stdout.contains("4 modules") && export.stdout.contains("adapter.lora.alpha = 8.0"), export.stdout)
        let viaGGUF = try lorakit(["generate", "--model", gguf.path, "--adapter", file.path] + prompt)
        XCTAssertEqual(viaGGUF.stdout, reference.stdout, viaGGUF.stderr)

        let back = directory.appendingPathComponent("back")
        XCTAssertEqual(try lorakit(["export", "--adapter", file.path, "--to", "peft", "--model", gguf.path, "--out", back.path]).status, 0)
        XCTAssertEqual(try lorakit(["generate", "--model", gguf.path, "--adapter", back.path] + prompt).stdout, reference.stdout)

        let merged = directory.appendingPathComponent("merged.gguf")
        let merge = try lorakit(["merge", "--model", gguf.path, "--adapter", file.path, "--to", "gguf", "--type", "f32", "--out", merged.path])
        XCTAssertEqual(merge.status, 0, merge.stderr)
        XCTAssertEqual(try lorakit(["generate", "--model", merged.path] + prompt).stdout, reference.stdout)

        let trace = directory.appendingPathComponent("trace.json")
        let traced = try lorakit(["generate", "--model", merged.path, "--trace", trace.path] + prompt)
        XCTAssertEqual(traced.stdout, reference.stdout, traced.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: trace)) as? [String: Any])
        let steps = try XCTUnwrap(json["steps"] as? [[String: Any]])
        XCTAssertEqual(steps.count, 12)
        XCTAssertTrue(steps.allSatisfy { ($0["margin"] as? Double ?? -1) >= 0 })

        func refused(_ arguments: [String], _ needles: [String]) throws {
            let run = try lorakit(arguments)
            XCTAssertNotEqual(run.status, 0, "\(arguments) succeeded")
            for needle in needles { XCTAssertTrue(run.stderr.contains(needle), "\(arguments): \(run.stderr)") }
        }
        try refused(["export", "--adapter", adapter.path, "--to", "gguf", "--model", gguf.path, "--out", file.path], ["--overwrite"])
        let other = directory.appendingPathComponent("other-adapter")
        try writeAdapterOfNarrowerLlama(to: other, seed: 3)
        try refused(["export", "--adapter", other.path, "--to", "gguf", "--model", gguf.path, "--out", directory.appendingPathComponent("o.gguf").path],
                    ["q_proj.lora_A.weight", "blk.0.attn_q.weight"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("o.gguf").path))
        try refused(["export", "--adapter", adapter.path, "--to", "onnx", "--model", gguf.path, "--out", file.path], ["--to"])
        try refused(["merge", "--model", gguf.path, "--to", "gguf", "--type", "q5_k", "--out", merged.path], ["--type"])
        try refused(["generate", "--model", gguf.path, "--trace", trace.path, "--prompt", "x"], ["--temperature 0"])
    }

    func testBadInputExitsWithNamedErrors() throws {
        let out = directory.appendingPathComponent("out")
        func failure(_ arguments: [String], mentions needles: [String], file: StaticString = #filePath, line: UInt = #line) throws {
            let run = try lorakit(arguments)
            XCTAssertNotEqual(run.status, 0, "\(arguments) succeeded", file: file, line: line)
            for needle in needles { XCTAssertTrue(run.stderr.contains(needle), "\(arguments): stderr \(run.stderr)", file: file, line: line) }
        }
        let missing = directory.appendingPathComponent("missing-adapter")
        try failure(["merge", "--model", gguf.path, "--adapter", missing.path, "--out", out.path],
                    mentions: [missing.appendingPathComponent("adapter_config.json").path, "not found"])

        // An adapter saved on a Llama of hidden size 32 does not fit the 64-wide model.
        let other = directory.appendingPathComponent("other-adapter")
        try writeAdapterOfNarrowerLlama(to: other, seed: 3)
        try failure(["merge", "--model", gguf.path, "--adapter", other.path, "--out", out.path],
                    mentions: ["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "expected shape [4, 64], got [4, 32]"])
        try failure(["eval", "--model", gguf.path, "--adapter", other.path, "--data", try writeData(["a", "b"]).path],
                    mentions: ["q_proj.lora_A.weight"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "a failed merge wrote \(out.path)")

        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: out.appendingPathComponent("notes.txt"))
        try failure(["merge", "--model", gguf.path, "--adapter", adapter.path, "--out", out.path], mentions: [out.path, "--overwrite"])
        try failure(["merge", "--model", gguf.path, "--adapter", adapter.path, "--out", out.path, "--dtype", "f8"], mentions: ["--dtype", "f8"])
        let noData = directory.appendingPathComponent("nothing.jsonl")
        try failure(["eval", "--model", gguf.path, "--data", noData.path], mentions: [noData.path])
        try failure(["merge", "--model", directory.appendingPathComponent("nope.gguf").path, "--adapter", adapter.path,
                     "--out", directory.appendingPathComponent("o2").path], mentions: ["nope.gguf", "no such file"])
    }
}
