// The GGUF writer against gguf-py (llama.cpp's Python writer): byte-identical files from the same metadata and
// floats (layout, padding, every value type, and the F16/BF16/Q8_0/Q4_0/Q4_1 reference rounding), round trips
// through LoRAKit's reader, and rejection of what llama.cpp would refuse.
import XCTest
import Foundation
import TensorCore
import Formats
import TestSupport

final class GGUFWriterTests: XCTestCase {
    let reference = Fixtures.url("gguf/writer_reference.gguf")

    func testRebuildsGGUFPyFileByteForByte() throws {
        let file = try GGUFFile(url: reference)
        var writer = try GGUFWriter()
        writer.copyMetadata(from: file)
        let source = try file.tensor("source")
        XCTAssertEqual(source.shape, [8, 64])
        try writer.addTensor(name: "source", source, as: .f32)
        for (suffix, type) in [("f16", GGMLType.f16), ("bf16", .bf16), ("q8_0", .q8_0), ("q4_0", .q4_0), ("q4_1", .q4_1)] {
            try writer.addTensor(name: "source." + suffix, source, as: type)
            // Per-tensor comparison first, so a rounding difference names its type.
            let mine = try GGMLQuantizer.encode(source, as: type)
            let theirs = try file.withRawBytes(of: "source." + suffix) { Array($0) }
            let firstDiff = zip(mine, theirs).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            XCTAssertNil(firstDiff, "\(type.name) bytes differ from gguf-py's at byte \(firstDiff ?? -1)")
        }
        let bytes = try writer.encoded()
        let expected = try Array(Data(contentsOf: reference))
        XCTAssertEqual(bytes.count, expected.count)
        XCTAssertTrue(bytes == expected, "rebuilt file differs from gguf-py's")
    }

    func testEveryValueTypeRoundTrips() throws {
        var writer = try GGUFWriter(alignment: 64)
        let values: [(String, GGUFValue)] = [
            ("a.u8", .uint8(255)), ("a.i8", .int8(-128)), ("a.u16", .uint16(65535)), ("a.i16", .int16(-32768)),
            ("a.u32", .uint32(.max)), ("a.i32", .int32(.min)), ("a.u64", .uint64(.max)), ("a.i64", .int64(.min)),
            ("a.f32", .float32(-0.0)), ("a.f64", .float64(.pi)), ("a.bool", .bool(false)), ("a.s", .string("")),
            ("a.arr", .array(elementType: .uint16, values: [.uint16(1), .uint16(2)])),
            ("a.empty", .array(elementType: .string, values: [])),
            ("a.nested", .array(elementType: .array, values: [.array(elementType: .int8, values: [.int8(-1)])])),
        ]
        for (k, v) in values { writer.set(k, v) }
        let t = Tensor(shape: [3, 32]) { p in for i in 0..<p.count { p[i] = Float(i % 7) - 3 } }
        try writer.addTensor(name: "t.q8", t, as: .q8_0)
        try writer.addTensor(name: "t.f32", t, as: .f32)
        try writer.addTensor(name: "t.scalarish", Tensor(shape: [1]) { $0[0] = 2 }, as: .f32)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lorakit-writer-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: url) }
        try writer.write(to: url)
        let file = try GGUFFile(url: url)
        XCTAssertEqual(file.alignment, 64)
        XCTAssertEqual(file.metadata["general.alignment"], .uint32(64))
        for (k, v) in values { XCTAssertEqual(file.metadata[k], v, k) }
        XCTAssertEqual(file.metadataKeys, ["general.alignment"] + values.map(\.0))
        XCTAssertEqual(try file.requireTensorInfo("t.q8").dimensions, [32, 3])
        XCTAssertEqual(maxAbsDifference(try file.tensor("t.f32"), t), 0)
        // max |x| = 3: Q8_0's step d = 3/127, so every value comes back within half a step (d itself is f16).
        XCTAssertLessThan(maxAbsDifference(try file.tensor("t.q8"), t), 3 / 127 / 2 * 1.01)
        // Overwrite protection and atomic replacement.
        XCTAssertThrowsError(try writer.write(to: url)) { XCTAssertTrue("\($0)".contains("--overwrite"), "\($0)") }
        try writer.write(to: url, overwrite: true)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: url.deletingLastPathComponent().path)
            .filter { $0.hasPrefix(".\(url.lastPathComponent).tmp") }
        XCTAssertEqual(leftovers, [])
    }

    func testQuantizedRoundTripErrorIsWithinOneStep() throws {
        var rng = RandomGenerator(seed: 3)
        let t = rng.normal([16, 256], std: 1)
        for (type, steps) in [(GGMLType.q8_0, Float(127)), (.q4_0, 8), (.q4_1, 15)] {
            let bytes = try GGMLQuantizer.encode(t, as: type)
            let back = try GGMLDequantizer.dequantize(type, bytes: bytes, count: t.count)
            t.withUnsafeBufferPointer { x in
                for b in 0..<(t.count / 32) {
                    let block = x[(32 * b)..<(32 * b + 32)]
                    let range = type == .q4_1 ? block.max()! - block.min()! : block.map(abs).max()!
                    // One quantisation step (plus the f16 rounding of the scale) bounds every element's error.
                    let step = range / steps * 1.01
                    for j in 0..<32 { XCTAssertLessThanOrEqual(abs(back[32 * b + j] - x[32 * b + j]), step, "\(type.name) block \(b)") }
                }
            }
        }
    }

    func testRejectsWhatLlamaCppRefuses() throws {
        var writer = try GGUFWriter()
        let row = Tensor(shape: [2, 16]) { _ in }
        XCTAssertThrowsError(try writer.addTensor(name: "bad.q8", row, as: .q8_0)) { XCTAssertTrue("\($0)".contains("bad.q8"), "\($0)") }
        XCTAssertThrowsError(try writer.addTensor(name: String(repeating: "n", count: 64), row, as: .f32))
        try writer.addTensor(name: "x", row, as: .f32)
        XCTAssertThrowsError(try writer.addTensor(name: "x", row, as: .f16)) { XCTAssertTrue("\($0)".contains("twice"), "\($0)") }
        XCTAssertThrowsError(try writer.addTensor(name: "y", dimensions: [16, 2], type: .f32, bytes: [0, 0]))
        XCTAssertThrowsError(try GGUFWriter(alignment: 48))
        XCTAssertThrowsError(try writer.addTensor(name: "k2", row, as: .q4_K))
        let nan = Tensor(shape: [1, 32]) { $0[5] = .nan }
        XCTAssertThrowsError(try writer.addTensor(name: "nan", nan, as: .q4_0)) { XCTAssertTrue("\($0)".contains("#5"), "\($0)") }
        writer.set("mixed", .array(elementType: .int32, values: [.int32(1), .string("no")]))
        XCTAssertThrowsError(try writer.encoded()) { XCTAssertTrue("\($0)".contains("mixed"), "\($0)") }
    }
}
