import XCTest
import Foundation
import TensorCore
import Formats
import TestSupport

/// Writing: byte-exact agreement with the reference serializer, round trips, atomic replacement.
final class SafeTensorsWriterTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("safetensors-writer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// Rebuilds writer_reference.safetensors (written by safetensors 0.8.0 from numpy) from the values it
    /// holds, passing entries in scrambled order, and requires identical bytes: key order, JSON, padding,
    /// offsets, and F16/BF16/F64 conversion of 216 float32 values spanning every rounding path.
    func testOutputIsByteIdenticalToReferenceSerializer() throws {
        let url = Fixtures.url("safetensors/writer_reference.safetensors")
        let reference = try SafeTensorsFile(contentsOf: url)
        let source = try reference.tensor("weights.f32")
        XCTAssertEqual(source.shape, [9, 24])
        let oddName = "Zeta \"quoted\"\\path\n\u{e9}"
        let entries: [SafeTensorsEntry] = [
            .float("weights.f16", source, as: .f16),
            .int32("ids.i32", try reference.int32s("ids.i32"), shape: [5]),
            .float("scale", try reference.tensor("scale"), as: .f32),
            .float("empty.lora_B", Tensor(zeros: [4, 0]), as: .f16),
            .float("weights.bf16", source, as: .bf16),
            .float(oddName, try reference.tensor(oddName), as: .f32),
            .int64("ids.i64", try reference.int64s("ids.i64"), shape: [2, 4]),
            .float("alpha", Tensor([0.1], shape: [1]), as: .bf16),
            .float("weights.f64", source, as: .f64),
            .float("empty.lora_A", Tensor(zeros: [0, 64]), as: .f32),
            .float("weights.f32", source, as: .f32),
        ]
        let ours = try SafeTensorsWriter.serialize(entries, metadata: ["format": "pt"])
        let theirs = [UInt8](try Data(contentsOf: url))
        assertSameBytes(ours, theirs)
        XCTAssertEqual(reference.names, ["ids.i64", "weights.f64", oddName, "empty.lora_A", "scale", "weights.f32",
                                         "ids.i32", "alpha", "weights.bf16", "empty.lora_B", "weights.f16"])
        // And the same through the atomic file path.
        let written = directory.appendingPathComponent("copy.safetensors")
        try SafeTensorsWriter.write(entries, metadata: ["format": "pt"], to: written)
        assertSameBytes([UInt8](try Data(contentsOf: written)), theirs)
    }

    /// Compares two file images, reporting the first differing byte rather than dumping both.
    private func assertSameBytes(_ ours: [UInt8], _ theirs: [UInt8], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ours.count, theirs.count, "file sizes", file: file, line: line)
        let first = zip(ours, theirs).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        XCTAssertNil(first, "first differing byte at \(first ?? -1)", file: file, line: line)
    }

    func testHeaderIsPaddedWithSpacesToMultipleOfEight() throws {
        for nameLength in 1...9 {
            let bytes = try SafeTensorsWriter.serialize([.float(String(repeating: "w", count: nameLength), Tensor([1], shape: [1]))])
            let length = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            XCTAssertEqual(length % 8, 0)
            XCTAssertEqual(bytes.count, 8 + length + 4)
            let header = String(decoding: bytes[8..<(8 + length)], as: UTF8.self)
            let trimmed = header.replacingOccurrences(of: " +$", with: "", options: .regularExpression)
            XCTAssertTrue(trimmed.hasSuffix("}"))
            XCTAssertLessThan(header.count - trimmed.count, 8)
        }
    }

    /// Every dtype the writer produces, including zero-size and scalar tensors, reads back exactly.
    func testRoundTripEveryDTypeIncludingZeroSizeAndScalar() throws {
        // Values exactly representable in every float dtype (small integers and halves).
        let values: [Float] = [0, -0.0, 1, -2.5, 0.125, 1024, -3, 7.5, 96, -0.5, 255, 0.25]
        var entries: [SafeTensorsEntry] = []
        for dtype in [SafeTensorsDType.f32, .f16, .bf16, .f64] {
            let tag = dtype.rawValue.lowercased()
            entries.append(.float("\(tag).matrix", Tensor(values, shape: [3, 4]), as: dtype))
            entries.append(.float("\(tag).scalar", Tensor.scalar(-6.5), as: dtype))
            entries.append(.float("\(tag).empty", Tensor(zeros: [0, 64]), as: dtype))
            entries.append(.float("\(tag).empty3", Tensor(zeros: [2, 0, 3]), as: dtype))
        }
        let ids: [Int64] = [Int64.min, -1, 0, 1, 49151, Int64.max]
        entries.append(.int64("ids.i64", ids, shape: [2, 3]))
        entries.append(.int64("ids.i64.scalar", [42], shape: []))
        entries.append(.int64("ids.i64.empty", [], shape: [0]))
        entries.append(.int32("ids.i32", [Int32.min, -7, 0, Int32.max], shape: [4]))
        entries.append(.int32("ids.i32.empty", [], shape: [3, 0]))
        let url = directory.appendingPathComponent("roundtrip.safetensors")
        try SafeTensorsWriter.write(entries, metadata: ["format": "pt", "note": "line\n\"two\" \u{e9}"], to: url)

        let file = try SafeTensorsFile(contentsOf: url)
        XCTAssertEqual(file.metadata, ["format": "pt", "note": "line\n\"two\" \u{e9}"])
        XCTAssertEqual(Set(file.names), Set(entries.map(\.name)))
        for dtype in [SafeTensorsDType.f32, .f16, .bf16, .f64] {
            let tag = dtype.rawValue.lowercased()
            XCTAssertEqual(try file.info("\(tag).matrix").dtype, dtype)
            let matrix = try file.tensor("\(tag).matrix")
            XCTAssertEqual(matrix, Tensor(values, shape: [3, 4]))
            XCTAssertEqual(matrix.array[1].sign, .minus, "-0 keeps its sign in \(dtype)")
            let scalar = try file.tensor("\(tag).scalar")
            XCTAssertEqual(scalar.shape, [])
            XCTAssertEqual(scalar.scalarValue, -6.5)
            XCTAssertEqual(try file.tensor("\(tag).empty").shape, [0, 64])
            XCTAssertEqual(try file.tensor("\(tag).empty3").shape, [2, 0, 3])
        }
        XCTAssertEqual(try file.int64s("ids.i64"), ids)
        XCTAssertEqual(try file.info("ids.i64").shape, [2, 3])
        XCTAssertEqual(try file.int64s("ids.i64.scalar"), [42])
        XCTAssertEqual(try file.info("ids.i64.scalar").shape, [])
        XCTAssertEqual(try file.int64s("ids.i64.empty"), [])
        XCTAssertEqual(try file.int32s("ids.i32"), [Int32.min, -7, 0, Int32.max])
        XCTAssertEqual(try file.info("ids.i32.empty").shape, [3, 0])
        // Every tensor starts aligned to its element size (wide types first, 8-byte padded header).
        for info in file.tensorInfos { XCTAssertEqual(info.dataOffsets.lowerBound % info.dtype.byteSize, 0, info.name) }
    }

    /// Every finite binary16 and bfloat16 value survives Float32 → file → bits unchanged, and F16/BF16
    /// rounding of values between them goes to nearest (ties checked in the reference test above).
    func testHalfPrecisionEncodingIsExactOnRepresentableValues() throws {
        let halves = (0...UInt16.max).map { Float(Float16(bitPattern: $0)) }.filter { !$0.isNaN }
        let brains = (0...UInt16.max).map { Float(bitPattern: UInt32($0) << 16) }.filter { !$0.isNaN }
        let bytes = try SafeTensorsWriter.serialize([
            .float("h", Tensor(halves, shape: [halves.count]), as: .f16),
            .float("b", Tensor(brains, shape: [brains.count]), as: .bf16),
        ])
        let file = try SafeTensorsFile(bytes: bytes)
        let hBits: [UInt16] = try file.withRawBytes("h") { raw in (0..<halves.count).map { raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self) } }
        let bBits: [UInt16] = try file.withRawBytes("b") { raw in (0..<brains.count).map { raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self) } }
        XCTAssertEqual(halves.count, 65536 - 2046)
        XCTAssertEqual(hBits, halves.map { Float16($0).bitPattern })
        XCTAssertEqual(bBits.map { Float(bitPattern: UInt32($0) << 16) }.map(\.bitPattern), brains.map(\.bitPattern))
        // NaN stays NaN in both.
        let nan = try SafeTensorsFile(bytes: try SafeTensorsWriter.serialize([
            .float("h", Tensor([.nan], shape: [1]), as: .f16), .float("b", Tensor([-.nan], shape: [1]), as: .bf16)]))
        XCTAssertTrue(try nan.tensor("h").scalarValue.isNaN)
        XCTAssertTrue(try nan.tensor("b").scalarValue.isNaN)
    }

    func testOverwriteReplacesFileAndLeavesNoTemporaries() throws {
        let url = directory.appendingPathComponent("adapter_model.safetensors")
        try SafeTensorsWriter.write(tensors: [(name: "w", tensor: Tensor([1, 2], shape: [2]), dtype: .f32)], to: url)
        try SafeTensorsWriter.write(tensors: [(name: "w", tensor: Tensor([3, 4, 5], shape: [3]), dtype: .f16)], to: url)
        XCTAssertEqual(try SafeTensorsFile(contentsOf: url).tensor("w").array, [3, 4, 5])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["adapter_model.safetensors"])
    }

    /// A rejected write leaves the previous file byte-identical and no temporary file behind.
    func testFailedWriteKeepsPreviousFile() throws {
        let url = directory.appendingPathComponent("model.safetensors")
        try SafeTensorsWriter.write(tensors: [(name: "keep", tensor: Tensor([9, 8, 7], shape: [3]), dtype: .f32)],
                                    metadata: ["format": "pt"], to: url)
        let before = try Data(contentsOf: url)
        let failures: [([SafeTensorsEntry], SafeTensorsError)] = [
            ([.float("a", Tensor([1], shape: [1])), .float("a", Tensor([2], shape: [1]))],
             .duplicateTensor(path: url.path, tensor: "a")),
            ([.float("__metadata__", Tensor([1], shape: [1]))],
             .invalidTensorName(path: url.path, tensor: "__metadata__", reason: "is reserved for metadata")),
            ([.float("", Tensor([1], shape: [1]))], .invalidTensorName(path: url.path, tensor: "", reason: "is empty")),
            ([.int64("ids", [1, 2, 3], shape: [2, 2])],
             .elementCountMismatch(path: url.path, tensor: "ids", shape: [2, 2], count: 3)),
            ([.int32("ids", [1], shape: [-1])], .elementCountMismatch(path: url.path, tensor: "ids", shape: [-1], count: 1)),
            ([.int64("ids", [1], shape: [Int.max, 2])],
             .elementCountMismatch(path: url.path, tensor: "ids", shape: [Int.max, 2], count: 1)),
        ]
        for (entries, expected) in failures {
            XCTAssertThrowsError(try SafeTensorsWriter.write(entries, to: url)) { error in
                XCTAssertEqual(error as? SafeTensorsError, expected)
            }
        }
        XCTAssertThrowsError(try SafeTensorsWriter.write(tensors: [(name: "x", tensor: Tensor([1], shape: [1]), dtype: .i32)], to: url)) { error in
            guard case .wrongDType(url.path, "x", .i32, _)? = error as? SafeTensorsError else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(try Data(contentsOf: url), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["model.safetensors"])
    }

    func testWriteIntoMissingDirectoryFails() throws {
        let url = directory.appendingPathComponent("no/such/dir/out.safetensors")
        XCTAssertThrowsError(try SafeTensorsWriter.write(tensors: [(name: "w", tensor: Tensor([1], shape: [1]), dtype: .f32)], to: url)) { error in
            guard case .writeFailed(url.path, _)? = error as? SafeTensorsError else { return XCTFail("\(error)") }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
    }

    /// A tensor big enough to need several conversion chunks and parallel decoding.
    func testLargeTensorRoundTripsThroughChunkedConversion() throws {
        let count = 300_000
        let source = Tensor(shape: [count]) { p in for i in 0..<count { p[i] = Float(i % 256 - 128) } }  // exact in F16 and BF16
        let url = directory.appendingPathComponent("large.safetensors")
        try SafeTensorsWriter.write(tensors: [(name: "h", tensor: source, dtype: .f16), (name: "b", tensor: source, dtype: .bf16),
                                              (name: "f", tensor: source, dtype: .f32)], to: url)
        let file = try SafeTensorsFile(contentsOf: url)
        XCTAssertEqual(try file.tensor("h"), source)
        XCTAssertEqual(try file.tensor("b"), source)
        XCTAssertEqual(try file.tensor("f"), source)
    }
}
