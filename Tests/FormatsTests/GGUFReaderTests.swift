// GGUFFile on synthetic files: every metadata type, tensor tables, alignment, and rejection of
// malformed headers with errors that name the file and the field.
import XCTest
import Formats
import TensorCore

final class GGUFReaderTests: XCTestCase {
    private func assertRejects(_ file: GGUFTestFile, _ fragments: [String], line: UInt = #line) {
        assertRejects(bytes: file.encoded(), fragments, line: line)
    }

    private func assertRejects(bytes: [UInt8], _ fragments: [String], line: UInt = #line) {
        do {
            let path = try GGUFTemp.write(bytes, name: "bad")
            XCTAssertThrowsError(try GGUFFile(path: path), line: line) { error in
                XCTAssertTrue(error is GGUFError, "\(error)", line: line)
                let text = "\(error)"
                XCTAssertTrue(text.contains(path), "error does not name the file: \(text)", line: line)
                for f in fragments { XCTAssertTrue(text.contains(f), "'\(f)' missing in: \(text)", line: line) }
            }
        } catch { XCTFail("\(error)", line: line) }
    }

    func testAllMetadataTypesAndNestedArrays() throws {
        var f = GGUFTestFile()
        let nested = GGUFValue.array(elementType: .array, values: [
            .array(elementType: .int16, values: [.int16(-3), .int16(4)]),
            .array(elementType: .string, values: []),
        ])
        f.metadata = [
            ("u8", .uint8(200)), ("i8", .int8(-100)), ("u16", .uint16(60000)), ("i16", .int16(-30000)),
            ("u32", .uint32(4_000_000_000)), ("i32", .int32(-2_000_000_000)), ("f32", .float32(100000)),
            ("bool", .bool(true)), ("str", .string("héllo 🌍")), ("u64", .uint64(UInt64.max)),
            ("i64", .int64(Int64.min)), ("f64", .float64(-2.5e-300)),
            ("names", .array(elementType: .string, values: [.string("a"), .string(""), .string("ç")])),
            ("ints", .array(elementType: .uint32, values: [.uint32(1), .uint32(2)])),
            ("nested", nested),
        ]
        let file = try GGUFTemp.open(f)
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.metadataKeys, f.metadata.map(\.0))
        for (key, value) in f.metadata { XCTAssertEqual(file.metadata[key], value, key) }
        XCTAssertEqual(file.metadata["u8"]?.intValue, 200)
        XCTAssertEqual(file.metadata["i32"]?.intValue, -2_000_000_000)
        XCTAssertNil(file.metadata["u64"]?.intValue, "u64 max does not fit Int")
        XCTAssertEqual(file.metadata["i64"]?.intValue, Int(Int64.min))
        XCTAssertEqual(file.metadata["f32"]?.floatValue, 100000)
        XCTAssertEqual(file.metadata["f64"]?.doubleValue, -2.5e-300)
        XCTAssertEqual(file.metadata["bool"]?.boolValue, true)
        XCTAssertEqual(file.metadata["str"]?.stringValue, "héllo 🌍")
        XCTAssertEqual(file.metadata["names"]?.stringArray, ["a", "", "ç"])
        XCTAssertEqual(file.metadata["ints"]?.intArray, [1, 2])
        XCTAssertEqual(file.metadata["nested"]?.arrayValue?.first?.intArray, [-3, 4])
        XCTAssertNil(file.metadata["str"]?.intValue)
        XCTAssertEqual(file.alignment, 32)
        XCTAssertEqual(file.dataOffset % 32, 0)
        XCTAssertTrue(file.tensors.isEmpty)
    }

    func testTensorTableShapesAndCustomAlignmentV2() throws {
        var f = GGUFTestFile()
        f.version = 2
        f.alignment = 64
        f.metadata = [("general.alignment", .uint32(64))]
        // ggml [ne0 = 3, ne1 = 2] → PyTorch [2, 3]; row r holds values 10r + c.
        var w = GGUFBytes()
        for r in 0..<2 { for c in 0..<3 { w.u32(Float(10 * r + c).bitPattern) } }
        f.addTensor("w", dims: [3, 2], type: .f32, bytes: w.bytes)
        f.addTensor("empty", dims: [0, 4], type: .q4_1, bytes: [])
        let q = GGMLBlockEncoder.q8_0(d: 0.5, q: (0..<32).map { $0 - 16 })
        f.addTensor("q", dims: [32], type: .q8_0, bytes: q.bytes)
        let file = try GGUFTemp.open(f)
        XCTAssertEqual(file.version, 2)
        XCTAssertEqual(file.alignment, 64)
        XCTAssertEqual(file.dataOffset % 64, 0)
        XCTAssertEqual(file.tensors.map(\.name), ["w", "empty", "q"])
        XCTAssertEqual(file.tensors.map(\.offset), [0, 64, 64])
        let info = try XCTUnwrap(file.tensorInfo("w"))
        XCTAssertEqual(info.dimensions, [3, 2]); XCTAssertEqual(info.shape, [2, 3])
        XCTAssertEqual(info.byteCount, 24); XCTAssertEqual(info.type, .f32)
        let t = try file.tensor("w")
        XCTAssertEqual(t.shape, [2, 3])
        XCTAssertEqual(t[1, 2], 12); XCTAssertEqual(t[0, 1], 1)
        XCTAssertEqual(try file.tensor("empty").shape, [4, 0])
        XCTAssertEqual(try file.tensor("q").array, q.expected.map(Float.init))
        XCTAssertThrowsError(try file.tensor("missing")) { XCTAssertTrue("\($0)".contains("no tensor named 'missing'")) }
    }

    func testUnsupportedTensorTypeIsNamed() throws {
        var f = GGUFTestFile()
        f.addTensor("blk.0.iq", dims: [256], type: .iq2_XXS, bytes: [UInt8](repeating: 0, count: 66))
        let file = try GGUFTemp.open(f)
        XCTAssertEqual(file.tensors[0].type, .iq2_XXS)
        XCTAssertThrowsError(try file.tensor("blk.0.iq")) { error in
            XCTAssertEqual(error as? GGUFError, .unsupportedTensorType(file: file.path, tensor: "blk.0.iq", type: .iq2_XXS))
            XCTAssertTrue("\(error)".contains("IQ2_XXS"))
        }
        XCTAssertThrowsError(try file.quantizedMatrix("blk.0.iq"))
    }

    func testRejectsBadMagicVersionsAndTruncation() throws {
        var bytes = GGUFTestFile().encoded()
        bytes[0] = UInt8(ascii: "X")
        assertRejects(bytes: bytes, ["not a GGUF file"])
        var v1 = GGUFTestFile(); v1.version = 1
        assertRejects(v1, ["unsupported GGUF version 1", "v1"])
        var v4 = GGUFTestFile(); v4.version = 4
        assertRejects(v4, ["unsupported GGUF version 4"])
        var big = GGUFTestFile(); big.version = UInt32(3).byteSwapped
        assertRejects(big, ["big-endian"])
        var f = GGUFTestFile(); f.metadata = [("general.name", .string("truncated model"))]
        assertRejects(bytes: Array(f.encoded().prefix(50)), ["truncated", "general.name"])
        assertRejects(bytes: Array("GGUF".utf8) + [3, 0], ["truncated"])
    }

    func testRejectsAbsurdCountsBeforeAllocating() {
        var w = GGUFBytes()
        w.bytes = Array("GGUF".utf8); w.u32(3); w.u64(UInt64(1) << 60); w.u64(0)
        assertRejects(bytes: w.bytes + [UInt8](repeating: 0, count: 64), ["tensor count", "cannot fit"])
        w = GGUFBytes()
        w.bytes = Array("GGUF".utf8); w.u32(3); w.u64(0); w.u64(1); w.string("tokens"); w.u32(9); w.u32(8); w.u64(UInt64.max)
        assertRejects(bytes: w.bytes + [UInt8](repeating: 0, count: 64), ["array count of 'tokens'", "cannot fit"])
        w = GGUFBytes()
        w.bytes = Array("GGUF".utf8); w.u32(3); w.u64(0); w.u64(1); w.string("name"); w.u32(8); w.u64(1 << 40)
        assertRejects(bytes: w.bytes + [UInt8](repeating: 0x41, count: 64), ["string value of 'name'", "cannot fit"])
        w = GGUFBytes()
        w.bytes = Array("GGUF".utf8); w.u32(3); w.u64(0); w.u64(UInt64(Int64.max))
        assertRejects(bytes: w.bytes + [UInt8](repeating: 0, count: 8), ["metadata key/value count"])
    }

    func testRejectsMalformedMetadata() {
        var f = GGUFTestFile()
        f.metadata = [("a", .uint8(1)), ("a", .uint8(2))]
        assertRejects(f, ["'a' appears twice"])
        f.metadata = [("general.alignment", .uint32(48))]
        assertRejects(f, ["general.alignment = 48"])
        f.metadata = [("general.alignment", .uint32(0))]
        assertRejects(f, ["general.alignment = 0"])
        var w = GGUFBytes()
        w.bytes = Array("GGUF".utf8); w.u32(3); w.u64(0); w.u64(1); w.string("odd"); w.u32(13)
        assertRejects(bytes: w.bytes + [0, 0, 0, 0], ["'odd'", "unknown value type 13"])
        w = GGUFBytes()
        w.bytes = Array("GGUF".utf8); w.u32(3); w.u64(0); w.u64(1); w.string("flag"); w.u32(7); w.u8(2)
        assertRejects(bytes: w.bytes, ["'flag'", "bool byte 2"])
        w = GGUFBytes()
        w.bytes = Array("GGUF".utf8); w.u32(3); w.u64(0); w.u64(1); w.u64(2); w.bytes += [0xC3, 0x28]; w.u32(4); w.u32(0)
        assertRejects(bytes: w.bytes, ["not valid UTF-8"])
        // 20 levels of nested arrays: rejected at depth 8, not recursed without bound.
        w = GGUFBytes()
        w.bytes = Array("GGUF".utf8); w.u32(3); w.u64(0); w.u64(1); w.string("deep"); w.u32(9)
        for _ in 0..<20 { w.u32(9); w.u64(1) }
        assertRejects(bytes: w.bytes + [UInt8](repeating: 0, count: 32), ["'deep'", "deeper than 8"])
    }

    func testRejectsMalformedTensorInfos() {
        func file(_ edit: (inout GGUFTestFile) -> Void) -> GGUFTestFile {
            var f = GGUFTestFile()
            f.addTensor("a", dims: [32, 2], type: .q4_1, bytes: [UInt8](repeating: 0, count: 40))
            f.addTensor("b", dims: [4], type: .f32, bytes: [UInt8](repeating: 0, count: 16))
            edit(&f)
            return f
        }
        assertRejects(file { $0.tensors[0].dims = [32, 1, 1, 1, 2] }, ["tensor 'a'", "n_dims 5 exceeds 4"])
        assertRejects(file { $0.tensors[0].type = 77 }, ["tensor 'a'", "unknown ggml type id 77"])
        assertRejects(file { $0.tensors[0].dims = [33, 2] }, ["tensor 'a'", "not a multiple of the Q4_1 block size 32"])
        assertRejects(file { $0.tensors[0].dims = [32, UInt64(1) << 40, UInt64(1) << 40] }, ["tensor 'a'", "overflows"])
        assertRejects(file { $0.tensors[1].offset = 8 }, ["tensor 'b'", "not a multiple of the alignment 32"])
        assertRejects(file { $0.tensors[1].offset = 0 }, ["'a' and 'b' overlap"])
        assertRejects(file { $0.tensors[1].dims = [64] }, ["tensor 'b'", "outside"])
        assertRejects(file { $0.tensors[1].offset = UInt64.max - 31 }, ["tensor 'b'", "outside"])
        assertRejects(file { $0.tensors[1].name = "a" }, ["tensor 'a' appears twice"])
        assertRejects(file { $0.data.removeLast() }, ["tensor 'b'", "outside"])
    }

    func testRejectsMissingAndNonRegularFiles() {
        XCTAssertThrowsError(try GGUFFile(path: "/nonexistent/model.gguf")) {
            XCTAssertTrue("\($0)".contains("/nonexistent/model.gguf"))
        }
        XCTAssertThrowsError(try GGUFFile(path: FileManager.default.temporaryDirectory.path)) {
            XCTAssertTrue("\($0)".contains("not a regular file"), "\($0)")
        }
    }

    func testValueSummariesForInspection() {
        let tokens = GGUFValue.array(elementType: .string, values: (0..<100).map { .string("t\($0)") })
        XCTAssertEqual(tokens.summary(maxItems: 3), "[\"t0\", \"t1\", \"t2\", … (100 string items)]")
        XCTAssertEqual(GGUFValue.string("a\"b\nc").summary(), "\"a\\\"b\\nc\"")
        XCTAssertEqual(GGUFValue.uint32(30).summary(), "30")
    }
}
