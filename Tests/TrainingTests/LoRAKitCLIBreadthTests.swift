// Issue 14 through the built `lorakit`: `combine` writes PEFT's weighted adapter and reports the Eckart–Young error;
// `generate` with several named adapters runs each prompt with its own adapter (or __base__), exactly like separate
// single-adapter runs; bad names are errors that say which.
import XCTest
import Foundation
import TensorCore
import Formats
import PEFT
import TestSupport

extension LoRAKitCLITests {
    func testCombineWritesTheLibrarysAdapterAndReportsTheTruncationError() throws {
        let a = Fixtures.url("peft/breadth/sources/a"), b = Fixtures.url("peft/breadth/sources/b")
        let out = directory.appendingPathComponent("combined")
        let run = try lorakit(["combine", "--adapter", a.path + ":0.7", "--adapter", b.path + ":0.3", "--method", "svd", "--rank", "6", "--out", out.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("Eckart–Young"), run.stdout)
        let written = try LoRAAdapterMatrices.load(from: out)
        let expected = try WeightedAdapterCombination.combine(
            [CombinationSource(name: "a", weight: 0.7, adapter: try LoRAAdapterMatrices.load(from: a)),
             CombinationSource(name: "b", weight: 0.3, adapter: try LoRAAdapterMatrices.load(from: b))], method: .svd, rank: 6)
        XCTAssertEqual(written.config.r, 6)
        XCTAssertEqual(written.modules.map(\.a), expected.adapter.modules.map(\.a))
        XCTAssertEqual(written.modules.map(\.b), expected.adapter.modules.map(\.b))
        let bad = try lorakit(["combine", "--adapter", a.path, "--adapter", Fixtures.url("peft/breadth/sources/c").path, "--method", "linear",
                               "--out", out.path, "--overwrite"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("equal ranks"), bad.stderr)

        // The adapter written first is not replaced without --overwrite; with it (and --json) it is.
        let weights = out.appendingPathComponent(AdapterFiles.weightsName)
        let before = try Data(contentsOf: weights)
        let again = try lorakit(["combine", "--adapter", a.path, "--adapter", b.path, "--method", "cat", "--out", out.path])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("--overwrite") && again.stderr.contains(out.path), again.stderr)
        XCTAssertEqual(try Data(contentsOf: weights), before)
        let replaced = try lorakit(["combine", "--adapter", a.path, "--adapter", b.path, "--method", "cat", "--out", out.path, "--overwrite", "--json"])
        XCTAssertEqual(replaced.status, 0, replaced.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(replaced.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["method"] as? String, "cat")
        XCTAssertEqual(report["rank"] as? Int, 8)
        XCTAssertEqual(try LoRAAdapterMatrices.load(from: out).config.r, 8)
    }

    func testGenerateRunsEachPromptWithItsOwnAdapter() throws {
        let lora = Fixtures.url("peft/llama_lora/adapter").path, dora = Fixtures.url("peft/llama_dora/adapter").path
        let common = ["--temperature", "0", "--max-tokens", "10"]
        let prompts = ["Hello world, the", "Once upon a", "1, 2, 3,"]
        let mixed = try lorakit(["generate", "--model", gguf.path, "--adapter", "lora=" + lora, "--adapter", "dora=" + dora,
                                 "--prompt", prompts[0], "--prompt", prompts[1], "--prompt", prompts[2],
                                 "--use", "lora", "--use", "dora", "--use", "__base__"] + common)
        XCTAssertEqual(mixed.status, 0, mixed.stderr)
        let singles = [try lorakit(["generate", "--model", gguf.path, "--adapter", lora, "--prompt", prompts[0]] + common),
                       try lorakit(["generate", "--model", gguf.path, "--adapter", dora, "--prompt", prompts[1]] + common),
                       try lorakit(["generate", "--model", gguf.path, "--prompt", prompts[2]] + common)]
        let expected = zip(["lora", "dora", "__base__"], singles).map { "[\($0)] " + $1.stdout }.joined()
        XCTAssertEqual(mixed.stdout, expected)
        let bad = try lorakit(["generate", "--model", gguf.path, "--adapter", "lora=" + lora, "--prompt", "x", "--use", "nope"] + common)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("nope"), bad.stderr)
    }
}
