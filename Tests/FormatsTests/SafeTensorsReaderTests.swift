import XCTest
import Foundation
import TensorCore
import Formats
import TestSupport

/// Reading real files written by torch/PEFT and by the reference implementation.
final class SafeTensorsReaderTests: XCTestCase {
    func testBaseMLPNamesShapesAndNoMetadata() throws {
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("peft/base_mlp/model.safetensors"))
        XCTAssertEqual(file.names, ["0.bias", "0.weight", "2.bias", "2.weight"])
        XCTAssertEqual(try file.info("0.weight").shape, [32, 16])
        XCTAssertEqual(try file.info("2.weight").shape, [8, 32])
        XCTAssertEqual(try file.info("2.bias").dtype, .f32)
        XCTAssertEqual(try file.info("0.bias").dataOffsets, 0..<128)
        XCTAssertFalse(file.hasMetadata)
        XCTAssertEqual(file.metadata, [:])
        XCTAssertTrue(file.contains("0.weight"))
        XCTAssertFalse(file.contains("1.weight"))
    }

    func testAdapterMetadataAndKeys() throws {
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("peft/mlp_lora/adapter/adapter_model.safetensors"))
        XCTAssertEqual(file.metadata, ["format": "pt"])
        XCTAssertEqual(Set(file.names), ["base_model.model.0.lora_A.weight", "base_model.model.0.lora_B.weight",
                                         "base_model.model.2.lora_A.weight", "base_model.model.2.lora_B.weight"])
        XCTAssertEqual(try file.info("base_model.model.0.lora_A.weight").shape, [4, 16])
        XCTAssertEqual(try file.info("base_model.model.0.lora_B.weight").shape, [32, 4])
        XCTAssertEqual(try file.info("base_model.model.2.lora_A.weight").shape, [4, 32])
        XCTAssertEqual(try file.info("base_model.model.2.lora_B.weight").shape, [8, 4])
        // The config beside it declares r = 4 and alpha = 8, matching the shapes above.
        let config = try JSONSerialization.jsonObject(
            with: Data(contentsOf: Fixtures.url("peft/mlp_lora/adapter/adapter_config.json"))) as? [String: Any]
        XCTAssertEqual(config?["r"] as? Int, 4)
        XCTAssertEqual(config?["lora_alpha"] as? Int, 8)
    }

    /// merged.W = base.W + (alpha / r)·B·A for both LoRA layers: checks every value of three files at once.
    func testMergedWeightsEqualBasePlusScaledLoRAProduct() throws {
        let base = try SafeTensorsFile(contentsOf: Fixtures.url("peft/base_mlp/model.safetensors"))
        let merged = try SafeTensorsFile(contentsOf: Fixtures.url("peft/mlp_lora/merged.safetensors"))
        let adapter = try SafeTensorsFile(contentsOf: Fixtures.url("peft/mlp_lora/adapter/adapter_model.safetensors"))
        let scaling: Float = 8.0 / 4.0
        for layer in ["0", "2"] {
            let a = try adapter.tensor("base_model.model.\(layer).lora_A.weight")  // [r, in]
            let b = try adapter.tensor("base_model.model.\(layer).lora_B.weight")  // [out, r]
            let expected = Tensor.matmul(b, a, alpha: scaling)
            let w0 = try base.tensor("\(layer).weight")
            let w1 = try merged.tensor("\(layer).weight")
            var delta = w1
            delta.withUnsafeMutableBufferPointer { d in w0.withUnsafeBufferPointer { w in
                for i in 0..<d.count { d[i] -= w[i] }
            } }
            let error = maxAbsDifference(delta, expected)
            XCTAssertLessThanOrEqual(error, 1e-6, "layer \(layer): max |merged − base − 2·B·A| = \(error)")
            XCTAssertGreaterThan(expected.array.map(abs).max() ?? 0, 1e-3, "the LoRA update must not be trivially zero")
            XCTAssertEqual(try merged.tensor("\(layer).bias"), try base.tensor("\(layer).bias"))
        }
    }

    /// base_out = relu(x·W0ᵀ + b0)·W2ᵀ + b2 recomputed from model.safetensors and io.safetensors.
    func testBaseOutputRecomputedFromStoredWeights() throws {
        let base = try SafeTensorsFile(contentsOf: Fixtures.url("peft/base_mlp/model.safetensors"))
        let io = try SafeTensorsFile(contentsOf: Fixtures.url("peft/mlp_lora/io.safetensors"))
        XCTAssertEqual(Set(io.names), ["adapted_out", "base_out", "input", "merged_out"])
        let x = try io.tensor("input")  // [4, 16]
        XCTAssertEqual(x.shape, [4, 16])
        func linear(_ input: Tensor, _ layer: String, relu: Bool) throws -> Tensor {
            var y = Tensor.matmul(input, try base.tensor("\(layer).weight"), transposeB: true)
            let bias = try base.tensor("\(layer).bias")
            let width = bias.count
            y.withUnsafeMutableBufferPointer { p in bias.withUnsafeBufferPointer { b in
                for i in 0..<p.count { let v = p[i] + b[i % width]; p[i] = relu ? max(v, 0) : v }
            } }
            return y
        }
        let out = try linear(linear(x, "0", relu: true), "2", relu: false)
        let error = maxAbsDifference(out, try io.tensor("base_out"))
        XCTAssertLessThanOrEqual(error, 1e-5, "max |recomputed − base_out| = \(error)")
    }

    /// AdaLoRA pruned modules to rank 0: zero-size tensors such as [0, 64] all at one offset.
    func testZeroSizeTensorsFromAdaLoRA() throws {
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("peft/llama_adalora/adapter/adapter_model.safetensors"))
        XCTAssertEqual(file.names.count, 12)
        XCTAssertEqual(file.metadata, ["format": "pt"])
        let prefix = "base_model.model.model.layers."
        for layer in [0, 1] {
            let a = try file.tensor("\(prefix)\(layer).self_attn.q_proj.lora_A")
            XCTAssertEqual(a.shape, [0, 64])
            XCTAssertEqual(a.count, 0)
            XCTAssertEqual(try file.tensor("\(prefix)\(layer).self_attn.q_proj.lora_B").shape, [64, 0])
            XCTAssertEqual(try file.info("\(prefix)\(layer).self_attn.q_proj.lora_E").shape, [0, 1])
            XCTAssertEqual(try file.withRawBytes("\(prefix)\(layer).self_attn.q_proj.lora_A") { $0.count }, 0)
        }
        XCTAssertEqual(try file.info("\(prefix)0.self_attn.v_proj.lora_A").shape, [5, 64])
        XCTAssertEqual(try file.info("\(prefix)1.self_attn.v_proj.lora_B").shape, [32, 3])
        // The surviving ranks hold trained (non-zero) values.
        XCTAssertGreaterThan(try file.tensor("\(prefix)0.self_attn.v_proj.lora_E").array.map(abs).max() ?? 0, 0)
        // Offsets tile the buffer in the order `names` reports.
        var end = 0
        for info in file.tensorInfos {
            XCTAssertEqual(info.dataOffsets.lowerBound, end, info.name)
            end = info.dataOffsets.upperBound
        }
        XCTAssertEqual(end, 4 * (5 * 64 + 32 * 5 + 5 + 3 * 64 + 32 * 3 + 3))
    }

    /// One tensor of every dtype, written by the reference implementation with known values.
    func testEveryDTypeConvertsToFloat32() throws {
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("safetensors/all_dtypes.safetensors"))
        XCTAssertEqual(file.metadata, ["source": "make_safetensors_fixture.py"])
        XCTAssertEqual(Set(file.tensorInfos.map(\.dtype)), Set(SafeTensorsDType.allCases))
        XCTAssertEqual(try file.tensor("f64").array, [Float(1.0 / 3.0), -2.5, .infinity, 0])
        let f32 = try file.tensor("f32")
        XCTAssertEqual(f32.shape, [2, 2])
        XCTAssertEqual(f32.array, [1.5, -0.0, 3.25, -7.0])
        XCTAssertEqual(f32.array[1].sign, .minus)
        XCTAssertEqual(try file.tensor("f16").array, [1, -2, 65504, 0x1p-24, .infinity])
        XCTAssertEqual(try file.tensor("bf16").array, [1, -3.140625, 3.3895314e38])
        // Integers: exact up to 2^24, nearest Float beyond (2^24 + 1 → 2^24).
        XCTAssertEqual(try file.tensor("i64").array, [-0x1p40, -1, 0, 0x1p24, 0x1p53])
        XCTAssertEqual(try file.tensor("i32").array, [-0x1p31, -1, 0, 0x1p31])
        XCTAssertEqual(try file.tensor("i16").array, [-32768, -1, 0, 32767])
        XCTAssertEqual(try file.tensor("i8").array, [-128, -1, 0, 127])
        XCTAssertEqual(try file.tensor("u8").array, [0, 1, 128, 255])
        XCTAssertEqual(try file.tensor("bool").array, [1, 0, 1])
    }

    func testIntegerAccessorsAreExact() throws {
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("safetensors/all_dtypes.safetensors"))
        XCTAssertEqual(try file.int64s("i64"), [-(1 << 40), -1, 0, (1 << 24) + 1, 1 << 53])
        XCTAssertEqual(try file.int32s("i32"), [Int32.min, -1, 0, Int32.max])
        XCTAssertEqual(try file.int64s("i16"), [-32768, -1, 0, 32767])
        XCTAssertEqual(try file.int32s("u8"), [0, 1, 128, 255])
        XCTAssertEqual(try file.int64s("bool"), [1, 0, 1])
        XCTAssertThrowsError(try file.int32s("i64")) { error in
            XCTAssertEqual(error as? SafeTensorsError, .valueOutOfRange(path: file.path, tensor: "i64", index: 0,
                                                                      value: -(1 << 40), target: "Int32"))
        }
        XCTAssertThrowsError(try file.int64s("f32")) { error in
            guard case .wrongDType(_, "f32", .f32, _)? = error as? SafeTensorsError else { return XCTFail("\(error)") }
        }
    }

    func testRawBytesAreTheFileBytes() throws {
        let url = Fixtures.url("safetensors/all_dtypes.safetensors")
        let file = try SafeTensorsFile(contentsOf: url)
        let whole = [UInt8](try Data(contentsOf: url))
        let headerLength = whole[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let info = try file.info("i16")
        let expected = Array(whole[(8 + headerLength + info.dataOffsets.lowerBound)..<(8 + headerLength + info.dataOffsets.upperBound)])
        XCTAssertEqual(try file.withRawBytes("i16") { Array($0) }, expected)
        XCTAssertEqual(expected, [0x00, 0x80, 0xFF, 0xFF, 0x00, 0x00, 0xFF, 0x7F])
    }

    func testUnknownTensorNameIsTypedError() throws {
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("peft/base_mlp/model.safetensors"))
        XCTAssertThrowsError(try file.tensor("missing.weight")) { error in
            XCTAssertEqual(error as? SafeTensorsError, .tensorNotFound(path: file.path, tensor: "missing.weight"))
            XCTAssertTrue("\(error)".contains("model.safetensors: no tensor named 'missing.weight'"), "\(error)")
        }
    }

    /// Every binary16 bit pattern decodes to the value Swift's own Float16 gives (NaNs stay NaN).
    func testHalfPrecisionDecodingIsExactForAllBitPatterns() throws {
        let patterns = (0...UInt16.max).map { $0 }
        let f16 = try SafeTensorsFile(bytes: image(dtype: "F16", patterns), label: "f16")
        let bf16 = try SafeTensorsFile(bytes: image(dtype: "BF16", patterns), label: "bf16")
        let halves = try f16.tensor("x").array, brains = try bf16.tensor("x").array
        var mismatches = 0
        for (i, bits) in patterns.enumerated() {
            let h = Float(Float16(bitPattern: bits)), b = Float(bitPattern: UInt32(bits) << 16)
            if h.isNaN ? !halves[i].isNaN : h.bitPattern != halves[i].bitPattern { mismatches += 1 }
            if b.isNaN ? !brains[i].isNaN : b.bitPattern != brains[i].bitPattern { mismatches += 1 }
        }
        XCTAssertEqual(mismatches, 0)
    }

    /// A file image with one 1-D tensor "x" of 16-bit elements.
    private func image(dtype: String, _ values: [UInt16]) -> [UInt8] {
        let header = Array("{\"x\":{\"dtype\":\"\(dtype)\",\"shape\":[\(values.count)],\"data_offsets\":[0,\(values.count * 2)]}}".utf8)
        var bytes = (0..<8).map { UInt8(truncatingIfNeeded: header.count >> (8 * $0)) } + header
        for v in values { bytes += [UInt8(v & 0xFF), UInt8(v >> 8)] }
        return bytes
    }
}
