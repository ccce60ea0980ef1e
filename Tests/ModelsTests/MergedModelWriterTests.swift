// `MergedModelWriter` (lorakit merge): PEFT adapters merged into the tiny Hugging Face Llama (base_llama) and into
// the same weights saved as a GGUF, written as Hugging Face directories and read back through ModelLoader:
// logits against PEFT's merged_out and the adapted model, config and tokenizer round trips, 16-bit weights,
// destination rules and typed errors.
import XCTest
import TensorCore
import Formats
import PEFT
import Models
import Tokenizers
import TestSupport

final class MergedModelWriterTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = try temporaryDirectory(self, "merge")
    }

    let base = Fixtures.url("peft/base_llama")

    func inputRows(_ fixture: String) throws -> [[Int32]] {
        let ids = try SafeTensorsFile(contentsOf: Fixtures.url("peft/\(fixture)/io.safetensors")).int32s("input")
        return [Array(ids[0..<8]), Array(ids[8..<16])]
    }

    func io(_ fixture: String, _ key: String) throws -> Tensor {
        try SafeTensorsFile(contentsOf: Fixtures.url("peft/\(fixture)/io.safetensors")).tensor(key)
    }

    /// Logits of the cache-backed inference path (what `lorakit generate` runs), one row at a time.
    func inferenceLogits(_ model: LlamaModel, _ rows: [[Int32]]) throws -> Tensor {
        var values: [Float] = []
        for row in rows { values += try model.forward(tokens: row, cache: KVCache(config: model.config), allLogits: true).array }
        return Tensor(values, shape: [rows.count, rows[0].count, model.config.vocabSize])
    }

    /// LoRA, rsLoRA and AdaLoRA adapters: the merged directory reloads with the base's config and gives PEFT's
    /// merged_out and the adapted model's logits within 1e-5; the tied head is not written; base files are copied.
    func testMergedHuggingFaceBaseMatchesPEFTAndAdaptedModel() throws {
        var worst: Float = 0
        for (fixture, adapter, modules) in [("llama_lora", "llama_lora/adapter", 4), ("llama_rslora", "llama_rslora/adapter", 4),
                                            ("llama_adalora", "llama_adalora/adapter", 4)] {
            let out = directory.appendingPathComponent(fixture)
            let summary = try MergedModelWriter.merge(model: base, adapter: Fixtures.url("peft/" + adapter), to: out)
            XCTAssertEqual(summary.mergedModules.count, modules, fixture)
            XCTAssertEqual(summary.adapterType, fixture == "llama_adalora" ? "ADALORA" : "LORA")
            XCTAssertEqual(summary.files, ["config.json", "generation_config.json", "model.safetensors"], fixture)
            XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("generation_config.json")),
                           try Data(contentsOf: base.appendingPathComponent("generation_config.json")))

            let merged = try ModelLoader.load(out).model
            let original = try ModelLoader.load(base).model
            XCTAssertEqual(merged.config, original.config, fixture)
            let names = try SafeTensorsFile(contentsOf: out.appendingPathComponent("model.safetensors")).names
            XCTAssertEqual(Set(names), Set(try SafeTensorsFile(contentsOf: base.appendingPathComponent("model.safetensors")).names))
            XCTAssertFalse(names.contains("lm_head.weight"), "tied head written")

            let rows = try inputRows(fixture)
            let peftMerged = try io(fixture, "merged_out")
            try AdapterFiles.load(into: original, from: Fixtures.url("peft/" + adapter))
            let adapted = try original.logits(ids: rows)
            XCTAssertGreaterThan(maxAbsDifference(adapted, try io(fixture, "base_out")), 0.1, "the adapter matters")
            let logits = try merged.logits(ids: rows)
            for (label, value) in [("merged_out", maxAbsDifference(logits, peftMerged)), ("adapted", maxAbsDifference(logits, adapted)),
                                   ("inference", maxAbsDifference(try inferenceLogits(merged, rows), adapted))] {
                XCTAssertLessThan(value, 1e-5, "\(fixture) vs \(label)")
                worst = max(worst, value)
            }
        }
        print("merged HF base: max |merged − PEFT/adapted| = \(worst)")
    }

    /// The merged weights equal PEFT's merged state dict (merged.safetensors), tensor by tensor.
    func testMergedWeightsEqualPEFTMergedStateDict() throws {
        let out = directory.appendingPathComponent("m")
        try MergedModelWriter.merge(model: base, adapter: Fixtures.url("peft/llama_lora/adapter"), to: out)
        let ours = try SafeTensorsFile(contentsOf: out.appendingPathComponent("model.safetensors"))
        let peft = try SafeTensorsFile(contentsOf: Fixtures.url("peft/llama_lora/merged.safetensors"))
        var worst: Float = 0
        for name in ours.names { worst = max(worst, maxAbsDifference(try ours.tensor(name), try peft.tensor(name))) }
        XCTAssertLessThan(worst, 1e-6)
        XCTAssertEqual(ours.metadata, ["format": "pt"])
    }

    /// f16 and bf16 output: the file stores that dtype, config.json says so, the values are the Float32 merge
    /// rounded to nearest even, and the model reloads (logits within the 16-bit rounding of the f32 ones).
    func testHalfPrecisionOutput() throws {
        let f32 = directory.appendingPathComponent("f32")
        try MergedModelWriter.merge(model: base, adapter: Fixtures.url("peft/llama_lora/adapter"), to: f32)
        let reference = try SafeTensorsFile(contentsOf: f32.appendingPathComponent("model.safetensors"))
        let rows = try inputRows("llama_lora")
        let referenceLogits = try ModelLoader.load(f32).model.logits(ids: rows)
        for (precision, dtype, torch, tolerance) in [(MergedWeightPrecision.f16, SafeTensorsDType.f16, "float16", Float(5e-3)),
                                                     (.bf16, .bf16, "bfloat16", 5e-2)] {
            let out = directory.appendingPathComponent(precision.rawValue)
            let summary = try MergedModelWriter.merge(model: base, adapter: Fixtures.url("peft/llama_lora/adapter"), to: out, precision: precision)
            let file = try SafeTensorsFile(contentsOf: out.appendingPathComponent("model.safetensors"))
            XCTAssertEqual(summary.weightBytes, file.tensorInfos.reduce(0) { $0 + $1.shape.reduce(1, *) * 2 })
            for name in file.names {
                XCTAssertEqual(try file.info(name).dtype, dtype, name)
                let stored = try file.tensor(name).array, exact = try reference.tensor(name).array
                let rounded = exact.map { value -> Float in
                    precision == .f16 ? HalfPrecision.widenFloat16(HalfPrecision.narrowToFloat16(value))
                                      : Float(bitPattern: UInt32(HalfPrecision.narrowToBFloat16(value)) << 16)
                }
                XCTAssertEqual(stored, rounded, name)
            }
            let config = try JSONValue.parseObject(try Data(contentsOf: out.appendingPathComponent("config.json")), source: "config.json")
            XCTAssertEqual(config["torch_dtype"], .string(torch)); XCTAssertEqual(config["dtype"], .string(torch))
            let difference = maxAbsDifference(try ModelLoader.load(out).model.logits(ids: rows), referenceLogits)
            XCTAssertGreaterThan(difference, 0, "\(precision): 16-bit weights should change the logits a little")
            XCTAssertLessThan(difference, tolerance, "\(precision)")
            print("merge \(precision): max logit change vs f32 \(difference)")
        }
    }

    /// A GGUF base (base_llama's weights with llama.cpp names, permuted q/k rows and a byte-level tokenizer): the
    /// merged directory has Hugging Face q/k row order (equal to PEFT's merged state dict), PEFT's merged logits,
    /// the GGUF's config, and a tokenizer.json that encodes and decodes like the GGUF tokenizer.
    func testMergedGGUFBaseWritesHuggingFaceLayoutAndTokenizer() throws {
        let gguf = directory.appendingPathComponent("tiny.gguf")
        try TinyLlamaGGUF.write(baseLlama: try SafeTensorsFile(contentsOf: base.appendingPathComponent("model.safetensors")).tensors(), to: gguf)
        let loaded = try ModelLoader.load(gguf)
        let rows = try inputRows("llama_lora")
        XCTAssertLessThan(maxAbsDifference(try loaded.model.logits(ids: rows), try io("llama_lora", "base_out")), 1e-5)

        let out = directory.appendingPathComponent("merged")
        let summary = try MergedModelWriter.merge(model: gguf, adapter: Fixtures.url("peft/llama_lora/adapter"), to: out)
        XCTAssertEqual(summary.files, ["config.json", "generation_config.json", "model.safetensors", "special_tokens_map.json",
                                       "tokenizer.json", "tokenizer_config.json"])
        let merged = try ModelLoader.load(out)
        XCTAssertEqual(merged.model.config, loaded.model.config)
        XCTAssertLessThan(maxAbsDifference(try merged.model.logits(ids: rows), try io("llama_lora", "merged_out")), 1e-5)
        let ours = try SafeTensorsFile(contentsOf: out.appendingPathComponent("model.safetensors"))
        let peft = try SafeTensorsFile(contentsOf: Fixtures.url("peft/llama_lora/merged.safetensors"))
        for name in ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight", "model.layers.1.self_attn.v_proj.weight"] {
            XCTAssertLessThan(maxAbsDifference(try ours.tensor(name), try peft.tensor(name)), 1e-6, name)
        }
        XCTAssertFalse(ours.contains("lm_head.weight"))

        // Tokenizer, chat template and stop ids survive.
        let original = try XCTUnwrap(loaded.tokenizer), written = try XCTUnwrap(merged.tokenizer)
        XCTAssertEqual(merged.chatTemplate, TinyLlamaGGUF.chatTemplate)
        XCTAssertEqual(merged.stopTokenIDs, loaded.stopTokenIDs)
        XCTAssertEqual(written.specialTokenIDs, original.specialTokenIDs)
        XCTAssertEqual(written.addsBOS, original.addsBOS)
        let chat = try ChatTemplate(template: merged.chatTemplate, formatOverride: nil)
            .render([ChatMessage(role: "user", content: "Hello world, is the string 2021/3/5 and 12345?")])
        for text in ["Hello world and the rest", "the string   is 42\n\n  done", "ünïcödé → bytes", chat] {
            for special in [false, true] {
                let ids = original.encode(text, addSpecialTokens: true, parseSpecialTokens: special)
                XCTAssertEqual(written.encode(text, addSpecialTokens: true, parseSpecialTokens: special), ids, text)
                XCTAssertEqual(try written.decode(ids, skipSpecialTokens: false), try original.decode(ids, skipSpecialTokens: false))
            }
        }
        XCTAssertGreaterThan(original.encode(chat, addSpecialTokens: false, parseSpecialTokens: true).filter { $0 == 1 }.count, 0)
        let config = try JSONValue.parseObject(try Data(contentsOf: out.appendingPathComponent("config.json")), source: "config.json")
        XCTAssertEqual(config["architectures"], .array([.string("LlamaForCausalLM")]))
        XCTAssertEqual(config["rms_norm_eps"], .number(1e-5))
        XCTAssertEqual(config["pad_token_id"], .number(2))
    }

    /// The SmolLM2 GGUF's tokenizer written as tokenizer.json encodes the reference prompts (transformers' ids)
    /// exactly as the GGUF tokenizer does.
    func testSmolLMTokenizerFromGGUFEncodesReferencePromptsIdentically() throws {
        let gguf = Fixtures.modelsDirectory.appendingPathComponent("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        try XCTSkipUnless(FileManager.default.fileExists(atPath: gguf.path), "run scripts/fetch-models.sh first")
        let file = try GGUFFile(url: gguf)
        let original = try BPETokenizer(gguf: file)
        let files = try original.huggingFaceFiles(chatTemplate: file.metadata["tokenizer.chat_template"]?.stringValue, modelMaxLength: 8192)
        try files.tokenizer.write(to: directory.appendingPathComponent("tokenizer.json"))
        try files.tokenizerConfig.write(to: directory.appendingPathComponent("tokenizer_config.json"))
        let config = try TokenizerConfig(contentsOf: directory.appendingPathComponent("tokenizer_config.json"))
        let written = try BPETokenizer(huggingFaceTokenizer: directory.appendingPathComponent("tokenizer.json"), config: config)
        XCTAssertEqual(written.vocabularySize, 49152)
        XCTAssertEqual(written.specialTokenIDs, original.specialTokenIDs)
        XCTAssertNotNil(config.chatTemplate)
        let prompts = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("smollm/tokens.json"))) as! [String: Any]
        var count = 0
        for prompt in prompts["prompts"] as! [[String: Any]] {
            let text = prompt["text"] as! String, ids = prompt["ids"] as! [Int]
            XCTAssertEqual(original.encode(text, addSpecialTokens: true, parseSpecialTokens: true), ids, text)
            XCTAssertEqual(written.encode(text, addSpecialTokens: true, parseSpecialTokens: true), ids, text)
            XCTAssertEqual(try written.decode(ids, skipSpecialTokens: false), try original.decode(ids, skipSpecialTokens: false))
            count += 1
        }
        XCTAssertGreaterThan(count, 5)
    }

    /// Absent or empty destinations are filled; a non-empty one only with `overwrite` (and then replaced whole);
    /// the base itself or a file never. Failures leave nothing behind.
    func testDestinationRules() throws {
        let adapter = Fixtures.url("peft/llama_lora/adapter")
        let out = directory.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try MergedModelWriter.merge(model: base, adapter: adapter, to: out)  // empty directory: fine
        let stale = out.appendingPathComponent("stale.txt")
        try Data("old".utf8).write(to: stale)
        XCTAssertThrowsError(try MergedModelWriter.merge(model: base, adapter: adapter, to: out)) {
            XCTAssertEqual($0 as? MergedModelError, .outputNotEmpty(path: out.path))
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: stale.path), "a refused merge must not touch the directory")
        try MergedModelWriter.merge(model: base, adapter: adapter, to: out, overwrite: true)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale.path), "overwrite replaces the whole directory")
        XCTAssertNoThrow(try ModelLoader.load(out))

        XCTAssertThrowsError(try MergedModelWriter.merge(model: out, adapter: adapter, to: out, overwrite: true)) {
            XCTAssertEqual($0 as? MergedModelError, .outputIsSource(path: out.path))
        }
        XCTAssertThrowsError(try MergedModelWriter.merge(model: base, adapter: adapter, to: stale.deletingLastPathComponent().appendingPathComponent("config.json"))) {
            XCTAssertTrue($0 is MergedModelError, "\($0)")
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [], "staging directories left behind")
    }

    /// A missing adapter and an adapter of another model's shapes are typed errors naming the file or tensor, and
    /// nothing is written.
    func testBadAdaptersAreTypedErrors() throws {
        let out = directory.appendingPathComponent("out")
        let missing = directory.appendingPathComponent("no-adapter")
        XCTAssertThrowsError(try MergedModelWriter.merge(model: base, adapter: missing, to: out)) {
            XCTAssertEqual($0 as? PEFTError, .file(path: missing.appendingPathComponent("adapter_config.json").path, reason: "not found"))
        }
        // A LoRA adapter saved on a Llama of hidden size 32 (same module names) does not fit base_llama's 64.
        let other = directory.appendingPathComponent("other-adapter")
        try writeAdapterOfNarrowerLlama(to: other, seed: 7)
        XCTAssertThrowsError(try MergedModelWriter.merge(model: base, adapter: other, to: out)) {
            XCTAssertEqual($0 as? PEFTError, .shapeMismatch(tensor: "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
                                                            expected: [4, 64], got: [4, 32]))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix(".") }, [])
    }
}
