// llama.cpp GGUF LoRA adapters: PEFT → GGUF → PEFT bit-exact, the q/k lora_B row permutation, the folding of
// rsLoRA and alpha patterns into llama.cpp's single alpha (checked by applying the file the way llama.cpp does:
// W_gguf + (alpha/r)·B·A), loading a GGUF adapter gives the PEFT adapter's logits, and typed errors.
import XCTest
import Foundation
import TensorCore
import Formats
import PEFT
import Models
import TestSupport

final class GGUFLoRAAdapterTests: XCTestCase {
    var directory: URL!
    var baseGGUF: URL!
    var hf: [String: Tensor]!

    override func setUpWithError() throws {
        directory = try temporaryDirectory(self, "gguf-lora")
        baseGGUF = directory.appendingPathComponent("tiny.gguf")
        hf = try SafeTensorsFile(contentsOf: Fixtures.url("peft/base_llama/model.safetensors")).tensors()
        try TinyLlamaGGUF.write(baseLlama: hf, to: baseGGUF)
    }

    func base() throws -> GGUFLoRABase { try GGUFLoRABase(gguf: GGUFFile(url: baseGGUF)) }

    /// llama.cpp's update for one base tensor: scale · B_gguf · A, scale = alpha/r or 1 when alpha is 0 ([out, in]).
    func llamaCppDelta(_ file: GGUFFile, _ baseTensor: String) throws -> Tensor {
        let a = try file.tensor(baseTensor + ".lora_a"), b = try file.tensor(baseTensor + ".lora_b")
        let alpha = file.metadata["adapter.lora.alpha"]?.floatValue ?? 0
        return Tensor.matmul(b, a, alpha: alpha == 0 ? 1 : alpha / Float(b.shape[1]))
    }

    /// PEFT's update for a module, rows put in GGUF order for q/k (what llama.cpp must add to the GGUF weight).
    func peftDeltaInGGUFOrder(_ adapter: String, _ module: String, heads: Int?) throws -> Tensor {
        let model = try ModelLoader.load(Fixtures.url("peft/base_llama")).model
        try AdapterFiles.load(into: model, from: Fixtures.url("peft/\(adapter)/adapter"))
        let branch = model.linear(at: module)!.adapter(named: "default") as! LoRABranch
        let delta = branch.deltaWeight()
        guard let heads else { return delta }
        return TinyLlamaGGUF.ggufTensors(["model.layers.0.self_attn.q_proj.weight": delta], heads: heads, kvHeads: heads)[0].1
    }

    func testPEFTToGGUFToPEFTIsLossless() throws {
        let out = directory.appendingPathComponent("a.gguf")
        let summary = try GGUFLoRAAdapter.export(peftAdapter: Fixtures.url("peft/llama_lora/adapter"), base: base(), to: out)
        XCTAssertEqual(summary.alpha, 8)
        XCTAssertFalse(summary.scaleInB)
        let file = try GGUFFile(url: out)
        XCTAssertEqual(file.metadata["general.type"], .string("adapter"))
        XCTAssertEqual(file.metadata["adapter.type"], .string("lora"))
        XCTAssertEqual(file.metadata["general.architecture"], .string("llama"))
        XCTAssertEqual(file.metadata["adapter.lora.alpha"], .float32(8))
        XCTAssertEqual(file.tensors.map(\.name), ["blk.0.attn_q.weight.lora_a", "blk.0.attn_q.weight.lora_b",
                                                  "blk.0.attn_v.weight.lora_a", "blk.0.attn_v.weight.lora_b",
                                                  "blk.1.attn_q.weight.lora_a", "blk.1.attn_q.weight.lora_b",
                                                  "blk.1.attn_v.weight.lora_a", "blk.1.attn_v.weight.lora_b"])
        // ggml order: lora_a ne = (in, r), lora_b ne = (r, out).
        XCTAssertEqual(try file.requireTensorInfo("blk.0.attn_q.weight.lora_a").dimensions, [64, 4])
        XCTAssertEqual(try file.requireTensorInfo("blk.0.attn_q.weight.lora_b").dimensions, [4, 64])
        XCTAssertEqual(try file.requireTensorInfo("blk.0.attn_v.weight.lora_b").dimensions, [4, 32])
        // q's lora_b rows follow the base's q rows (4 heads); v is untouched.
        let peft = try SafeTensorsFile(contentsOf: Fixtures.url("peft/llama_lora/adapter/adapter_model.safetensors"))
        let qB = try peft.tensor("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")
        XCTAssertEqual(try file.tensor("blk.0.attn_q.weight.lora_b"),
                       TinyLlamaGGUF.ggufTensors(["model.layers.0.self_attn.q_proj.weight": qB], heads: 4, kvHeads: 2)[0].1)
        XCTAssertEqual(try file.tensor("blk.0.attn_v.weight.lora_b"), try peft.tensor("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"))

        let back = directory.appendingPathComponent("back")
        let contents = try GGUFLoRAAdapter.convertToPEFT(out, base: base(), to: back)
        XCTAssertNotNil(contents.storedConfigJSON)
        XCTAssertEqual(try Data(contentsOf: back.appendingPathComponent("adapter_config.json")),
                       try Data(contentsOf: Fixtures.url("peft/llama_lora/adapter/adapter_config.json")))
        let again = try SafeTensorsFile(contentsOf: back.appendingPathComponent("adapter_model.safetensors"))
        XCTAssertEqual(again.names.sorted(), peft.names.sorted())
        for name in peft.names { XCTAssertEqual(try again.tensor(name), try peft.tensor(name), name) }   // bit-exact
        XCTAssertThrowsError(try GGUFLoRAAdapter.convertToPEFT(out, base: base(), to: back)) { XCTAssertTrue("\($0)".contains("--overwrite"), "\($0)") }
        XCTAssertThrowsError(try GGUFLoRAAdapter.export(peftAdapter: Fixtures.url("peft/llama_lora/adapter"), base: base(), to: out)) {
            XCTAssertTrue("\($0)".contains("--overwrite"), "\($0)")
        }
    }

    /// rsLoRA (α/√r) cannot be told to llama.cpp (α/r) directly: alpha = α·√r gives the same update.
    func testRSLoRAFoldsIntoAlpha() throws {
        let out = directory.appendingPathComponent("rs.gguf")
        let summary = try GGUFLoRAAdapter.export(peftAdapter: Fixtures.url("peft/llama_rslora/adapter"), base: base(), to: out)
        XCTAssertEqual(summary.alpha, 16)   // 8 · √4
        let file = try GGUFFile(url: out)
        for (module, tensor, heads) in [("model.layers.1.self_attn.q_proj", "blk.1.attn_q.weight", Optional(4)),
                                        ("model.layers.0.self_attn.v_proj", "blk.0.attn_v.weight", nil)] {
            let expected = try peftDeltaInGGUFOrder("llama_rslora", module, heads: heads)
            XCTAssertLessThan(maxAbsDifference(try llamaCppDelta(file, tensor), expected), 1e-6, module)
        }
    }

    /// An alpha pattern gives modules different scales: they are multiplied into lora_b and alpha is 0.
    func testAlphaPatternIsBakedIntoB() throws {
        let adapter = directory.appendingPathComponent("patterned")
        try FileManager.default.createDirectory(at: adapter, withIntermediateDirectories: true)
        let source = Fixtures.url("peft/llama_lora/adapter")
        try FileManager.default.copyItem(at: source.appendingPathComponent("adapter_model.safetensors"), to: adapter.appendingPathComponent("adapter_model.safetensors"))
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        config["alpha_pattern"] = ["v_proj": 2.0]
        try JSONSerialization.data(withJSONObject: config).write(to: adapter.appendingPathComponent("adapter_config.json"))
        let out = directory.appendingPathComponent("p.gguf")
        let summary = try GGUFLoRAAdapter.export(peftAdapter: adapter, base: base(), to: out, type: .f32)
        XCTAssertTrue(summary.scaleInB)
        XCTAssertEqual(summary.alpha, 0)
        let file = try GGUFFile(url: out)
        let model = try ModelLoader.load(Fixtures.url("peft/base_llama")).model
        try AdapterFiles.load(into: model, from: adapter)
        for (module, tensor) in [("model.layers.0.self_attn.v_proj", "blk.0.attn_v.weight"), ("model.layers.1.self_attn.v_proj", "blk.1.attn_v.weight")] {
            let expected = (model.linear(at: module)!.adapter(named: "default") as! LoRABranch).deltaWeight()
            XCTAssertLessThan(maxAbsDifference(try llamaCppDelta(file, tensor), expected), 1e-6, module)
        }
        // Reading back divides the scale out again: the same adapter, to rounding.
        let contents = try GGUFLoRAAdapter.read(out, base: base())
        let peft = try SafeTensorsFile(contentsOf: source.appendingPathComponent("adapter_model.safetensors"))
        let b = contents.pairs.first { $0.module == "model.layers.0.self_attn.v_proj" }!.b
        XCTAssertLessThan(maxAbsDifference(b, try peft.tensor("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight")), 1e-6)
    }

    /// A GGUF adapter on a GGUF base gives the PEFT adapter's logits on the Hugging Face base, whatever the dtype.
    func testLoadedGGUFAdapterMatchesPEFTLogits() throws {
        let ids: [[Int32]] = [[3, 17, 200, 45, 9, 101]]
        let reference = try ModelLoader.load(Fixtures.url("peft/base_llama")).model
        try AdapterFiles.load(into: reference, from: Fixtures.url("peft/llama_rslora/adapter"))
        let expected = try reference.logits(ids: ids)
        for (type, tolerance) in [(GGMLType.f32, Float(1e-5)), (.f16, 2e-3), (.q8_0, 2e-2)] {
            let out = directory.appendingPathComponent("rs-\(type.name).gguf")
            try GGUFLoRAAdapter.export(peftAdapter: Fixtures.url("peft/llama_rslora/adapter"), base: base(), to: out, type: type)
            let model = try ModelLoader.load(baseGGUF).model
            try ModelAdapters.load(into: model, from: out)
            XCTAssertLessThan(maxAbsDifference(try model.logits(ids: ids), expected), tolerance, type.name)
            // And on the Hugging Face base directly.
            let hfModel = try ModelLoader.load(Fixtures.url("peft/base_llama")).model
            try ModelAdapters.load(into: hfModel, from: out)
            XCTAssertLessThan(maxAbsDifference(try hfModel.logits(ids: ids), expected), tolerance, type.name)
        }
    }

    /// A file from another tool (no LoRAKit keys, alpha 0 = scale 1, two ranks): the config is inferred.
    func testForeignAdapterGetsAnInferredConfig() throws {
        var rng = RandomGenerator(seed: 5)
        var writer = try GGUFWriter()
        writer.set("general.architecture", .string("llama"))
        writer.set("general.type", .string("adapter"))
        writer.set("adapter.type", .string("lora"))
        writer.set("adapter.lora.alpha", .float32(0))
        for layer in 0..<2 {
            let r = layer == 0 ? 2 : 6
            try writer.addTensor(name: "blk.\(layer).ffn_down.weight.lora_a", rng.normal([r, 128], std: 0.1), as: .f32)
            try writer.addTensor(name: "blk.\(layer).ffn_down.weight.lora_b", rng.normal([64, r], std: 0.1), as: .f16)
        }
        try writer.addTensor(name: "blk.0.attn_norm_extra_norm.weight", Tensor(repeating: 1, shape: [64]), as: .f32)  // ignored, as llama.cpp does
        let out = directory.appendingPathComponent("foreign.gguf")
        try writer.write(to: out)
        let contents = try GGUFLoRAAdapter.read(out, base: base())
        XCTAssertNil(contents.storedConfigJSON)
        XCTAssertEqual(contents.config.targetModules, .names(["down_proj"]))
        let model = try ModelLoader.load(baseGGUF).model
        try ModelAdapters.load(into: model, from: out)
        let file = try GGUFFile(url: out)
        for layer in 0..<2 {
            let branch = model.linear(at: "model.layers.\(layer).mlp.down_proj")!.adapter(named: "default") as! LoRABranch
            XCTAssertEqual(branch.scaling, 1)
            XCTAssertLessThan(maxAbsDifference(branch.deltaWeight(), try llamaCppDelta(file, "blk.\(layer).ffn_down.weight")), 1e-6)
        }
    }

    func testMismatchedBaseErrorsNameTheTensor() throws {
        let adapter = Fixtures.url("peft/llama_lora/adapter")
        // One layer fewer than the adapter.
        let short = directory.appendingPathComponent("short.gguf")
        let oneLayer = hf.filter { !$0.key.contains("layers.1.") }
        try GGUFTestWriter.write(metadata: TinyLlamaGGUF.baseLlamaMetadata.map { $0.0 == "llama.block_count" ? ($0.0, .u32(1)) : $0 } + TinyLlamaGGUF.tokenizerMetadata,
                                 tensors: TinyLlamaGGUF.ggufTensors(oneLayer, heads: 4, kvHeads: 2), to: short)
        let shortBase = try GGUFLoRABase(gguf: GGUFFile(url: short))
        XCTAssertThrowsError(try GGUFLoRAAdapter.export(peftAdapter: adapter, base: shortBase, to: directory.appendingPathComponent("x.gguf"))) {
            guard case let GGUFAdapterError.missingBaseTensor(_, tensor, baseTensor, _, layers) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(tensor, "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight")
            XCTAssertEqual(baseTensor, "blk.1.attn_q.weight")
            XCTAssertEqual(layers, 1)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("x.gguf").path))
        // The other way: a full adapter read onto the one-layer base.
        let full = directory.appendingPathComponent("full.gguf")
        try GGUFLoRAAdapter.export(peftAdapter: adapter, base: base(), to: full)
        XCTAssertThrowsError(try GGUFLoRAAdapter.read(full, base: shortBase)) { XCTAssertTrue("\($0)".contains("blk.1.attn_q.weight.lora_a"), "\($0)") }
        // Other dims: hidden 64 → a base whose q_proj is [64, 32].
        let narrow = directory.appendingPathComponent("narrow.gguf")
        var weights = hf!
        for l in 0..<2 { weights["model.layers.\(l).self_attn.q_proj.weight"] = Tensor(zeros: [64, 32]) }
        try TinyLlamaGGUF.write(baseLlama: weights, to: narrow)
        let narrowBase = try GGUFLoRABase(gguf: GGUFFile(url: narrow))
        XCTAssertThrowsError(try GGUFLoRAAdapter.read(full, base: narrowBase)) {
            guard case let GGUFAdapterError.shapeMismatch(_, tensor, expected, got, _) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(tensor, "blk.0.attn_q.weight.lora_a")
            XCTAssertEqual(expected, [32, 4])
            XCTAssertEqual(got, [64, 4])
        }
        // Another architecture.
        var writer = try GGUFWriter()
        let file = try GGUFFile(url: full)
        writer.copyMetadata(from: file)
        writer.set("general.architecture", .string("qwen2"))
        for t in file.tensors { try writer.addTensor(name: t.name, dimensions: t.dimensions, type: t.type, bytes: try file.withRawBytes(of: t.name) { Array($0) }) }
        let qwen = directory.appendingPathComponent("qwen.gguf")
        try writer.write(to: qwen)
        XCTAssertThrowsError(try GGUFLoRAAdapter.read(qwen, base: base())) {
            guard case GGUFAdapterError.architectureMismatch(_, "qwen2", "llama", _) = $0 else { return XCTFail("\($0)") }
        }
        // What llama.cpp refuses: a stray tensor, an alpha of another type, a lonely lora_b.
        var stray = writer
        stray.set("general.architecture", .string("llama"))
        try stray.addTensor(name: "blk.0.attn_q.weight.extra", Tensor(zeros: [4]), as: .f32)
        try stray.write(to: qwen, overwrite: true)
        XCTAssertThrowsError(try GGUFLoRAAdapter.read(qwen, base: base())) { XCTAssertTrue("\($0)".contains("blk.0.attn_q.weight.extra"), "\($0)") }
        var badAlpha = writer
        badAlpha.set("general.architecture", .string("llama"))
        badAlpha.set("adapter.lora.alpha", .float64(8))
        try badAlpha.write(to: qwen, overwrite: true)
        XCTAssertThrowsError(try GGUFLoRAAdapter.read(qwen, base: base())) { XCTAssertTrue("\($0)".contains("adapter.lora.alpha"), "\($0)") }
    }

    func testUnrepresentableAdaptersAreRefused() throws {
        XCTAssertThrowsError(try GGUFLoRAAdapter.export(peftAdapter: Fixtures.url("peft/llama_adalora/adapter"), base: base(),
                                                        to: directory.appendingPathComponent("ada.gguf"))) {
            XCTAssertTrue("\($0)".contains("ADALORA") && "\($0)".contains("merge"), "\($0)")
        }
    }
}
