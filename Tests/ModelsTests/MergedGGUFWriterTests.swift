// Merged models as GGUF files: the merge of a GGUF or Hugging Face base reads back (llama.cpp names, q/k rows
// re-permuted for llama, q/k norms for qwen3) with PEFT's merged logits, keeps the tokenizer and chat template,
// and every --type stays within its quantisation error.
import XCTest
import Foundation
import TensorCore
import Formats
import PEFT
import Models
import Tokenizers
import TestSupport

final class MergedGGUFWriterTests: XCTestCase {
    var directory: URL!
    var tiny: URL!
    let base = Fixtures.url("peft/base_llama")

    override func setUpWithError() throws {
        directory = try temporaryDirectory(self, "merged-gguf")
        tiny = directory.appendingPathComponent("tiny.gguf")
        try TinyLlamaGGUF.write(baseLlama: try SafeTensorsFile(contentsOf: base.appendingPathComponent("model.safetensors")).tensors(), to: tiny)
    }

    func inputRows(_ fixture: String) throws -> [[Int32]] {
        let ids = try SafeTensorsFile(contentsOf: Fixtures.url("peft/\(fixture)/io.safetensors")).int32s("input")
        return [Array(ids[0..<8]), Array(ids[8..<16])]
    }

    func io(_ fixture: String, _ key: String) throws -> Tensor {
        try SafeTensorsFile(contentsOf: Fixtures.url("peft/\(fixture)/io.safetensors")).tensor(key)
    }

    func testMergedGGUFGivesPEFTMergedLogitsInEveryType() throws {
        let rows = try inputRows("llama_lora")
        let expected = try io("llama_lora", "merged_out")
        let baseFile = try GGUFFile(url: tiny)
        for (type, tolerance) in [(GGMLType.f32, Float(1e-4)), (.f16, 5e-3), (.bf16, 4e-2), (.q8_0, 3e-2), (.q4_1, 0.25), (.q4_0, 0.3)] {
            let out = directory.appendingPathComponent("merged-\(type.name).gguf")
            let summary = try MergedGGUFWriter.merge(model: tiny, adapter: Fixtures.url("peft/llama_lora/adapter"), to: out, type: type)
            XCTAssertEqual(summary.mergedModules.count, 4, type.name)
            let file = try GGUFFile(url: out)
            XCTAssertEqual(file.metadata["general.file_type"]?.intValue, ["F32": 0, "F16": 1, "BF16": 32, "Q8_0": 7, "Q4_1": 3, "Q4_0": 2][type.name], type.name)
            XCTAssertEqual(try file.requireTensorInfo("blk.0.attn_q.weight").type, type)
            XCTAssertEqual(try file.requireTensorInfo("blk.0.attn_norm.weight").type, .f32)
            // Everything llama.cpp reads from the base is carried over: hyper-parameters, tokenizer, chat template.
            for key in baseFile.metadataKeys where key != "general.file_type" {
                XCTAssertEqual(file.metadata[key], baseFile.metadata[key], "\(type.name) \(key)")
            }
            let merged = try ModelLoader.load(out)
            XCTAssertEqual(merged.model.config, try ModelLoader.load(tiny).model.config)
            XCTAssertLessThan(maxAbsDifference(try merged.model.logits(ids: rows), expected), tolerance, type.name)
        }
        // Unmerged layers are the base's own rows: v_proj of a q/v adapter's untouched k_proj, in GGUF order.
        let f32 = try GGUFFile(url: directory.appendingPathComponent("merged-F32.gguf"))
        XCTAssertEqual(try f32.tensor("blk.1.attn_k.weight"), try baseFile.tensor("blk.1.attn_k.weight"))
        XCTAssertThrowsError(try MergedGGUFWriter.merge(model: tiny, adapter: nil, to: directory.appendingPathComponent("merged-F32.gguf"), type: .f32)) {
            XCTAssertTrue("\($0)".contains("--overwrite"), "\($0)")
        }
    }

    /// A Hugging Face base (no GGUF metadata to copy): hyper-parameters and tokenizer.ggml.* are written from the
    /// config and tokenizer.json; the GGUF encodes text like the original.
    func testHuggingFaceBaseGetsMetadataAndTokenizer() throws {
        let hf = directory.appendingPathComponent("hf")
        try MergedModelWriter.merge(model: tiny, adapter: Fixtures.url("peft/llama_lora/adapter"), to: hf)  // HF dir with tokenizer files
        let out = directory.appendingPathComponent("from-hf.gguf")
        XCTAssertTrue(try MergedGGUFWriter.merge(model: hf, adapter: nil, to: out, type: .f32).hasTokenizer)
        let fromHF = try ModelLoader.load(out), original = try ModelLoader.load(hf)
        XCTAssertEqual(fromHF.model.config, original.model.config)
        let rows = try inputRows("llama_lora")
        XCTAssertLessThan(maxAbsDifference(try fromHF.model.logits(ids: rows), try io("llama_lora", "merged_out")), 1e-4)
        let text = "Hello world, the answer is\nstanding"
        XCTAssertEqual(fromHF.tokenizer!.encode(text), original.tokenizer!.encode(text))
        XCTAssertEqual(fromHF.chatTemplate, original.chatTemplate)
    }

    /// Qwen 3 (q/k norms, head_dim apart from hidden/heads, NeoX rope: no permutation) and Llama with biases
    /// survive GGUF → merged GGUF with transformers' logits.
    func testOtherFamiliesRoundTrip() throws {
        for family in ["qwen3", "llama_bias", "qwen2"] {
            let ref = try SafeTensorsFile(contentsOf: Fixtures.url("families/\(family)/reference.safetensors"))
            let ids = try ref.int64s("ids").map { Int32($0) }
            let rows = [Array(ids[0..<7]), Array(ids[7..<14])]
            for source in [Fixtures.url("families/\(family)/model.gguf"), Fixtures.url("families/\(family)/hf")] {
                let out = directory.appendingPathComponent("\(family)-\(source.lastPathComponent).gguf")
                let summary = try MergedGGUFWriter.merge(model: source, adapter: nil, to: out, type: .f32, overwrite: true)
                // The HF copies have no tokenizer.json: the file says so (the CLI warns that llama.cpp needs one).
                XCTAssertEqual(summary.hasTokenizer, source.pathExtension == "gguf", "\(family) \(source.lastPathComponent)")
                let file = try GGUFFile(url: out)
                XCTAssertEqual(file.metadata["general.architecture"]?.stringValue, family == "llama_bias" ? "llama" : family)
                if family == "qwen3" { XCTAssertNotNil(file.tensorInfo("blk.1.attn_k_norm.weight")) }
                // From the GGUF base the tensors are the same bytes again (same names, same row order).
                if source.pathExtension == "gguf" {
                    let original = try GGUFFile(url: source)
                    for t in original.tensors { XCTAssertEqual(try file.tensor(t.name), try original.tensor(t.name), "\(family) \(t.name)") }
                    let model = try ModelLoader.load(out).model
                    XCTAssertLessThan(maxAbsDifference(try model.logits(ids: rows), try ref.tensor("logits")), 1e-4, family)
                }
            }
        }
    }
}
