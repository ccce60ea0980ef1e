// SmolLM2-135M-Instruct (Q4_1 GGUF) against transformers' float32 run of the same file: full logits of
// prompt 0, greedy continuations of prompts 0 and 5 (ids and per-step top-5), tokenizer ids of all six
// prompts. Skipped when the model is not downloaded (scripts/fetch-models.sh; LORAKIT_MODELS overrides).
import XCTest
import TensorCore
import Formats
import PEFT
import Models
import Tokenizers
import TestSupport

/// The model, loaded once for every test in this file.
enum SmolLM2 {
    static let url = Fixtures.modelsDirectory.appendingPathComponent("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    static let loaded: Result<LoadedModel, Error> = Result { try ModelLoader.load(url) }

    static func load() throws -> LoadedModel {
        guard FileManager.default.fileExists(atPath: url.path) else { throw XCTSkip("\(url.path) not present (run scripts/fetch-models.sh)") }
        return try loaded.get()
    }

    struct Prompt { let text: String; let ids: [Int32] }
    static func prompts() throws -> [Prompt] {
        let o = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("smollm/tokens.json"))) as! [String: Any]
        return (o["prompts"] as! [[String: Any]]).map { Prompt(text: $0["text"] as! String, ids: ($0["ids"] as! [Int]).map { Int32($0) }) }
    }

    struct GreedyRun { let prompt: [Int32]; let newIDs: [Int32]; let top5: [[Int32]]; let top5Logits: [[Float]] }
    static func greedyRuns() throws -> [GreedyRun] {
        let o = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("smollm/greedy.json"))) as! [String: Any]
        return (o["runs"] as! [[String: Any]]).map { run in
            let steps = run["steps"] as! [[String: Any]]
            return GreedyRun(prompt: (run["prompt_ids"] as! [Int]).map { Int32($0) }, newIDs: (run["new_ids"] as! [Int]).map { Int32($0) },
                             top5: steps.map { ($0["top5_ids"] as! [Int]).map { Int32($0) } },
                             top5Logits: steps.map { ($0["top5_logits"] as! [Double]).map { Float($0) } })
        }
    }
}

/// Ids of the k largest values of row `row` of a [rows, vocab] tensor, largest first.
func topIDs(_ logits: Tensor, row: Int = 0, k: Int) -> [Int32] {
    let v = logits.shape.last!
    return logits.withUnsafeBufferPointer { p in
        Array((0..<v).sorted { p[row * v + $0] > p[row * v + $1] || (p[row * v + $0] == p[row * v + $1] && $0 < $1) }.prefix(k)).map { Int32($0) }
    }
}

final class SmolLMParityTests: XCTestCase {
    func testConfigAndTokenizerFromGGUF() throws {
        let loaded = try SmolLM2.load()
        let reference = try LlamaConfig(huggingFaceConfig: Fixtures.url("smollm/config.json"))
        XCTAssertEqual(loaded.model.config, reference)
        XCTAssertEqual(loaded.stopTokenIDs, [2])
        XCTAssertTrue(loaded.model.adaptedLinears.allSatisfy(\.isQuantized))
        XCTAssertEqual(loaded.model.adaptedLinears.count, 210)
        let tokenizer = try XCTUnwrap(loaded.tokenizer)
        for prompt in try SmolLM2.prompts() {
            XCTAssertEqual(tokenizer.encode(prompt.text).map { Int32($0) }, prompt.ids, prompt.text)
        }
        XCTAssertEqual(try ChatTemplate(template: XCTUnwrap(loaded.chatTemplate)).format, .chatML)
    }

    /// Prompt 0's logits at all 10 positions within 1e-3 of transformers', through the quantized cache path
    /// (what generation runs) and the autograd path (what training runs).
    func testPrompt0LogitsMatchTransformers() throws {
        let loaded = try SmolLM2.load()
        let fixture = try SafeTensorsFile(contentsOf: Fixtures.url("smollm/logits_p0.safetensors"))
        let ids = try fixture.int32s("input_ids")
        let expected = try fixture.tensor("logits").reshaped([10, 49152])
        let cached = try loaded.model.forward(tokens: ids, cache: KVCache(config: loaded.model.config), allLogits: true)
        let graph = try loaded.model.logits(ids: [ids]).reshaped([10, 49152])
        let cachedError = maxAbsDifference(cached, expected), graphError = maxAbsDifference(graph, expected)
        print("SmolLM2 prompt 0 logits: max |Δ| cache path \(cachedError), autograd path \(graphError)")
        XCTAssertLessThan(cachedError, 1e-3)
        XCTAssertLessThan(graphError, 1e-3)
        let top20 = try fixture.int32s("last_top20_ids")
        XCTAssertEqual(topIDs(cached, row: 9, k: 20), top20)
        XCTAssertEqual(topIDs(graph, row: 9, k: 20), top20)
    }

    /// Greedy decoding of prompts 0 and 5: the same 20 (or up to EOS) tokens as transformers, and at every step
    /// the same top-5 ids with logits within 1e-3; the Generator reproduces the ids and stops at EOS.
    func testGreedyContinuationsMatchTransformers() throws {
        let loaded = try SmolLM2.load()
        let generator = try Generator(loaded)
        for run in try SmolLM2.greedyRuns() {
            let cache = KVCache(config: loaded.model.config)
            var logits = try loaded.model.forward(tokens: run.prompt, cache: cache)
            var worst: Float = 0
            for (step, expectedID) in run.newIDs.enumerated() {
                let top = topIDs(logits, k: 5)
                XCTAssertEqual(top, run.top5[step], "step \(step)")
                for (id, value) in zip(run.top5[step], run.top5Logits[step]) { worst = max(worst, abs(logits[Int(id)] - value)) }
                XCTAssertEqual(top[0], expectedID, "step \(step)")
                logits = try loaded.model.forward(tokens: [expectedID], cache: cache)
            }
            print("SmolLM2 greedy (prompt of \(run.prompt.count) tokens): max |Δ| of top-5 logits over \(run.newIDs.count) steps \(worst)")
            XCTAssertLessThan(worst, 1e-3)
            let result = try generator.generate(prompt: run.prompt, options: GenerationOptions(maxNewTokens: 20))
            XCTAssertEqual(result.tokens, run.newIDs)
            XCTAssertEqual(result.stopReason, run.newIDs.last == 2 ? .stopToken(2) : .maxTokens)
        }
    }

    /// The other prompts have no stored logits; their last-position top-20 must agree between the quantized cache
    /// path, the autograd path and a fully dequantised (Float32) copy of the model.
    func testAllPromptsTop20AgreeAcrossPaths() throws {
        let loaded = try SmolLM2.load()
        let dense = try ModelLoader.load(SmolLM2.url, options: ModelLoadOptions(keepQuantized: false)).model
        XCTAssertFalse(dense.adaptedLinears.contains(where: \.isQuantized))
        for prompt in try SmolLM2.prompts() {
            let n = prompt.ids.count
            let quantized = try loaded.model.forward(tokens: prompt.ids, cache: KVCache(config: loaded.model.config))
            let reference = try dense.forward(tokens: prompt.ids, cache: KVCache(config: dense.config))
            let graph = try loaded.model.logits(ids: [prompt.ids]).reshaped([n, 49152]).sliced(dimension: 0, range: (n - 1)..<n)
            XCTAssertLessThan(maxAbsDifference(quantized, reference), 1e-3, prompt.text)
            XCTAssertEqual(topIDs(quantized, k: 20), topIDs(reference, k: 20), prompt.text)
            XCTAssertEqual(topIDs(graph, k: 20), topIDs(reference, k: 20), prompt.text)
        }
    }
}
