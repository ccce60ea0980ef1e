// TensorSource: weights by name from a safetensors file, a directory of shards, or a GGUF file (shape reversed
// from ggml order, 1-dims dropped); missing or non-matrix tensors and NaN weights give typed errors.
import Foundation
import XCTest
import TensorCore
import Formats
import Analysis
import TestSupport

final class TensorSourceTests: XCTestCase {
    func testShardedDirectoryServesEveryTensorAndRejectsDuplicates() throws {
        let directory = try temporaryDirectory(self, "shards")
        let q = randomMatrix(6, 4, seed: 1), v = randomMatrix(3, 4, seed: 2)
        try SafeTensorsWriter.write([.float("layers.0.q_proj.weight", q)], to: directory.appendingPathComponent("model-00001-of-00002.safetensors"))
        try SafeTensorsWriter.write([.float("layers.0.v_proj.weight", v), .float("norm.weight", Tensor(zeros: [4]))],
                                    to: directory.appendingPathComponent("model-00002-of-00002.safetensors"))
        let source = try TensorSource(url: directory)
        XCTAssertEqual(source.names, ["layers.0.q_proj.weight", "layers.0.v_proj.weight", "norm.weight"])
        XCTAssertEqual(source.matrixNames, ["layers.0.q_proj.weight", "layers.0.v_proj.weight"])
        XCTAssertEqual(try source.matrix("layers.0.v_proj.weight").array, v.array)
        XCTAssertEqual(try source.baseWeight(forModule: "layers.0.q_proj")?.array, q.array)
        XCTAssertNil(try source.baseWeight(forModule: "layers.0.k_proj"))
        XCTAssertEqual(analysisError { _ = try source.matrix("norm.weight") }, .notAMatrix(tensor: "norm.weight", shape: [4]))
        guard case let .missingTensor(name, _, available)? = analysisError({ _ = try source.matrix("layers.1.q_proj.weight") }) else { return XCTFail() }
        XCTAssertEqual(name, "layers.1.q_proj.weight")
        XCTAssertEqual(available, ["layers.0.q_proj.weight"])   // same leaf suggested first

        try SafeTensorsWriter.write([.float("norm.weight", Tensor(zeros: [4]))], to: directory.appendingPathComponent("extra.safetensors"))
        guard case .file? = analysisError({ _ = try TensorSource(url: directory) }) else { return XCTFail("duplicate tensor accepted") }
    }

    func testNaNWeightIsRejectedWithItsName() throws {
        let url = try temporaryDirectory(self, "nan").appendingPathComponent("w.safetensors")
        var w = randomMatrix(3, 3, seed: 3)
        w.withUnsafeMutableBufferPointer { $0[8] = .nan }
        try SafeTensorsWriter.write([.float("proj.weight", w)], to: url)
        let source = try TensorSource(url: url)
        XCTAssertEqual(analysisError { _ = try source.matrix("proj.weight") },
                       .nonFinite(module: "proj.weight", tensor: "weight 'proj.weight' in \(url.path)", index: 8))
    }

    func testGGUFTensorsAreReadWithPyTorchShape() throws {
        // A GGUF v3 file written from the format definition: no metadata, one F32 tensor with ggml dims [in=3, out=2]
        // (row length first), so its PyTorch shape is [2, 3]; data starts at the next 32-byte boundary.
        let values: [Float] = [1, -2, 3, 4.5, 5, -6]
        var bytes = Array("GGUF".utf8)
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        u32(3); u64(1); u64(0)
        let name = "blk.0.attn_v.weight"
        u64(UInt64(name.utf8.count)); bytes += Array(name.utf8)
        u32(2); u64(3); u64(2); u32(0); u64(0)
        while bytes.count % 32 != 0 { bytes.append(0) }
        for v in values { u32(v.bitPattern) }
        let url = try temporaryDirectory(self, "gguf").appendingPathComponent("tiny.bin")   // recognised by magic, not name
        try Data(bytes).write(to: url)

        let source = try TensorSource(url: url)
        XCTAssertTrue(source.isGGUF)
        XCTAssertEqual(try source.shape(of: name), [2, 3])
        let m = try source.matrix(name)
        XCTAssertEqual(m.shape, [2, 3]); XCTAssertEqual(m.array, values)
        let spectrum = try Spectrum.of(matrix: m, name: name)
        XCTAssertEqual(spectrum.frobeniusNorm, Double(values.map { $0 * $0 }.reduce(0, +)).squareRoot(), accuracy: 1e-5)
        // Base weights from a GGUF need the Llama name map and Q/K un-permutation; a file without Llama metadata is refused.
        guard case .unsupported? = analysisError({ _ = try source.baseWeight(forModule: "model.layers.0.self_attn.v_proj") }) else { return XCTFail() }
    }
}
