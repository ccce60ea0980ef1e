// NaN/Inf never pass silently: a non-finite base weight or adapter weight is refused on load, naming the tensor;
// a merge that would write non-finite (or f16-overflowing) weights writes nothing and names the tensor; a learning
// rate that blows the loss up stops training at the step it happened, with the last checkpoint intact.
import Foundation
import XCTest
import TensorCore
import Formats
import PEFT
import Models
import Training
import TestSupport

final class NumericalFaultTests: XCTestCase {
    var directory: URL!
    var weights: [String: Tensor]!

    override func setUpWithError() throws {
        directory = try temporaryDirectory(self, "numeric")
        weights = try SafeTensorsFile(contentsOf: Fixtures.url("peft/base_llama/model.safetensors")).tensors()
    }

    /// The tiny llama_lora adapter with `change` applied to its tensors, written to a new directory.
    func adapter(_ label: String, _ change: (String, inout Tensor) -> Void) throws -> URL {
        let source = Fixtures.url("peft/llama_lora/adapter")
        let out = directory.appendingPathComponent(label)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: source.appendingPathComponent(AdapterFiles.configName), to: out.appendingPathComponent(AdapterFiles.configName))
        let file = try SafeTensorsFile(contentsOf: source.appendingPathComponent(AdapterFiles.weightsName))
        let entries = try file.names.map { name -> SafeTensorsEntry in
            var t = try file.tensor(name)
            change(name, &t)
            return .float(name, t)
        }
        try SafeTensorsWriter.write(entries, metadata: ["format": "pt"], to: out.appendingPathComponent(AdapterFiles.weightsName))
        return out
    }

    func testANaNInABaseWeightIsRefusedByName() throws {
        let name = "model.layers.0.mlp.up_proj.weight"
        var broken = try XCTUnwrap(weights)
        var t = try XCTUnwrap(broken[name])
        t.withUnsafeMutableBufferPointer { $0[5] = .nan }
        broken[name] = t
        let gguf = directory.appendingPathComponent("nan.gguf")
        try TinyLlamaGGUF.write(baseLlama: broken, to: gguf)
        XCTAssertThrowsError(try ModelLoader.load(gguf, options: ModelLoadOptions(keepQuantized: false))) { error in
            XCTAssertTrue("\(error)".contains("blk.0.ffn_up.weight"), "\(error)")
            XCTAssertTrue("\(error)".contains("non-finite"), "\(error)")
        }
    }

    /// A base kept in its blocks (the default load) is scanned too: one f16 block scale set to NaN or Inf poisons
    /// its 32 weights, and the load names the tensor and the first bad element.
    func testANonFiniteBlockScaleInAQuantizedBaseIsRefusedByName() throws {
        let gguf = directory.appendingPathComponent("tiny.gguf")
        try TinyLlamaGGUF.write(baseLlama: weights, to: gguf)
        let q8 = directory.appendingPathComponent("tiny-q8_0.gguf")
        _ = try MergedGGUFWriter.merge(model: gguf, adapter: nil, to: q8, type: .q8_0)
        XCTAssertNoThrow(try ModelLoader.load(q8), "the intact quantized file must load")
        let name = "blk.1.ffn_down.weight"
        let file = try GGUFFile(url: q8)
        let info = try XCTUnwrap(file.tensorInfo(name))
        XCTAssertEqual(info.type, .q8_0)
        XCTAssertEqual(info.rowLength, 128)  // 4 blocks per row: block 6 is row 1's third block
        let scale = file.dataOffset + info.offset + 6 * GGMLType.q8_0.blockBytes
        for (label, high) in [("nan", UInt8(0x7E)), ("inf", UInt8(0x7C))] {
            var bytes = try Data(contentsOf: q8)
            bytes[scale] = 0x00; bytes[scale + 1] = high  // little-endian f16 NaN / +Inf
            let broken = directory.appendingPathComponent("broken-\(label).gguf")
            try bytes.write(to: broken)
            XCTAssertThrowsError(try ModelLoader.load(broken)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(name), text)
                XCTAssertTrue(text.contains("at flat index 192)"), text)  // row 1 · 128 + block 2 · 32
                // NaN·q is NaN for all 32 weights; Inf·q is ±Inf (or NaN where q = 0): the 32 again.
                XCTAssertTrue(text.contains("32 non-finite values"), text)
            }
        }
    }

    func testANaNInAnAdapterWeightIsRefusedByName() throws {
        let url = try adapter("nan-adapter") { name, t in
            if name.hasSuffix("layers.0.self_attn.v_proj.lora_B.weight") { t.withUnsafeMutableBufferPointer { $0[0] = .infinity } }
        }
        let gguf = directory.appendingPathComponent("tiny.gguf")
        try TinyLlamaGGUF.write(baseLlama: weights, to: gguf)
        let loaded = try ModelLoader.load(gguf)
        XCTAssertThrowsError(try AdapterFiles.load(into: loaded.model, from: url)) { error in
            XCTAssertTrue("\(error)".contains("layers.0.self_attn.v_proj.lora_B.weight"), "\(error)")
            XCTAssertTrue("\(error)".contains("inf"), "\(error)")
        }
        XCTAssertTrue(loaded.model.adaptedLinears.allSatisfy { $0.adapters.isEmpty }, "a refused adapter was half attached")
        let merged = directory.appendingPathComponent("merged-nan")
        XCTAssertThrowsError(try MergedModelWriter.merge(model: gguf, adapter: url, to: merged))
        XCTAssertFalse(FileManager.default.fileExists(atPath: merged.path))
    }

    func testAMergeThatOverflowsF16WritesNothing() throws {
        let url = try adapter("huge-adapter") { name, t in
            if name.contains("lora_B") { t = Tensor(repeating: 1e6, shape: t.shape) }
        }
        let gguf = directory.appendingPathComponent("tiny.gguf")
        try TinyLlamaGGUF.write(baseLlama: weights, to: gguf)
        let merged = directory.appendingPathComponent("merged-f16")
        XCTAssertThrowsError(try MergedModelWriter.merge(model: gguf, adapter: url, to: merged, precision: .f16)) { error in
            XCTAssertTrue("\(error)".contains("self_attn.q_proj.weight") || "\(error)".contains("self_attn.v_proj.weight"), "\(error)")
            XCTAssertTrue("\(error)".contains("f16"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: merged.path), "a merge that failed left an output directory")
        // bf16 has f32's range: the same merge is representable there.
        XCTAssertNoThrow(try MergedModelWriter.merge(model: gguf, adapter: url, to: directory.appendingPathComponent("merged-bf16"), precision: .bf16))
    }

    func testAnAbsurdRankIsRefusedBeforeAllocating() throws {
        var rng = RandomGenerator(seed: 4)
        let model = SmallAdaptableModel(rng: &rng)
        for rank in [1 << 62, 1 << 40] {
            XCTAssertThrowsError(try model.addLoRA(LoRAConfig(r: rank, loraAlpha: 8, targetModules: .names(["q_proj"])), rng: &rng)) { error in
                XCTAssertTrue("\(error)".contains("model.layers.0.self_attn.q_proj"), "\(error)")
            }
        }
        XCTAssertTrue(model.adaptedLinears.allSatisfy { $0.adapters.isEmpty })
        XCTAssertNoThrow(try model.addLoRA(LoRAConfig(r: 4, loraAlpha: 8, targetModules: .names(["q_proj"])), rng: &rng))
    }
}
