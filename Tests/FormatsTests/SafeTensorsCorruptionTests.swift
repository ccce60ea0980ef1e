import XCTest
import Foundation
import TensorCore
import Formats
import TestSupport

/// Damaged and hostile files: each must fail with its specific typed error, never crash or allocate wildly.
final class SafeTensorsCorruptionTests: XCTestCase {
    private let label = "bad.safetensors"

    /// 8-byte little-endian length (the real one unless `declaredLength` overrides), header, then `buffer`.
    private func image(_ header: String, buffer: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
        let json = Array(header.utf8)
        let length = declaredLength ?? UInt64(json.count)
        return (0..<8).map { UInt8(truncatingIfNeeded: length >> (8 * UInt64($0))) } + json + buffer
    }

    private func assertRejects(_ bytes: [UInt8], _ expected: SafeTensorsError, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafeTensorsFile(bytes: bytes, label: label), file: file, line: line) { error in
            XCTAssertEqual(error as? SafeTensorsError, expected, file: file, line: line)
        }
    }

    private func entry(_ name: String, _ dtype: String = "F32", shape: String, offsets: String) -> String {
        "\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":\(offsets)}"
    }

    private func temporaryFile(_ bytes: [UInt8]) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("corrupt-\(UUID().uuidString).safetensors")
        try Data(bytes).write(to: url)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testTooSmallAndMissingFiles() throws {
        assertRejects([1, 0, 0, 0, 0], .fileTooSmall(path: label, byteCount: 5))
        let empty = try temporaryFile([])
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: empty)) { error in
            XCTAssertEqual(error as? SafeTensorsError, .fileTooSmall(path: empty.path, byteCount: 0))
        }
        let missing = URL(fileURLWithPath: "/nonexistent/dir/model.safetensors")
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: missing)) { error in
            guard case .cannotOpen(missing.path, _)? = error as? SafeTensorsError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".hasPrefix("/nonexistent/dir/model.safetensors: cannot open"), "\(error)")
        }
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: FileManager.default.temporaryDirectory)) { error in
            guard case .cannotOpen(_, "not a regular file")? = error as? SafeTensorsError else { return XCTFail("\(error)") }
        }
    }

    /// A real file cut short: in the data (last tensor out of range) and inside the header.
    func testTruncatedFile() throws {
        let whole = [UInt8](try Data(contentsOf: Fixtures.url("peft/base_mlp/model.safetensors")))
        XCTAssertEqual(whole.count, 3504)
        let headerLength = 3504 - 8 - 3232
        let cutData = try temporaryFile(Array(whole.prefix(whole.count - 100)))
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: cutData)) { error in
            XCTAssertEqual(error as? SafeTensorsError, .offsetsOutOfRange(path: cutData.path, tensor: "2.weight", begin: 2208,
                                                                         end: 3232, bufferSize: 3132))
        }
        let cutHeader = try temporaryFile(Array(whole.prefix(100)))
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: cutHeader)) { error in
            XCTAssertEqual(error as? SafeTensorsError, .headerBeyondFile(path: cutHeader.path, headerLength: UInt64(headerLength),
                                                                        fileSize: 100))
        }
    }

    func testHeaderLengthBeyondFileOrLimit() throws {
        assertRejects(image("{}", declaredLength: 1000), .headerBeyondFile(path: label, headerLength: 1000, fileSize: 10))
        // 2^60 and 2^64 − 1 are refused by the limit before any allocation or arithmetic on them.
        assertRejects(image("{}", declaredLength: 1 << 60), .headerTooLarge(path: label, headerLength: 1 << 60, limit: 100_000_000))
        assertRejects(image("{}", declaredLength: .max), .headerTooLarge(path: label, headerLength: .max, limit: 100_000_000))
        let onDisk = try temporaryFile(image("{}", declaredLength: 1 << 60))
        XCTAssertThrowsError(try SafeTensorsFile(contentsOf: onDisk)) { error in
            XCTAssertEqual(error as? SafeTensorsError, .headerTooLarge(path: onDisk.path, headerLength: 1 << 60, limit: 100_000_000))
        }
    }

    func testMalformedJSON() {
        assertRejects(image("{\"a\": {"), .malformedJSON(path: label, byteOffset: 7, reason: "expected a string key"))
        assertRejects(image("{} x"), .malformedJSON(path: label, byteOffset: 3, reason: "unexpected data after the JSON value"))
        assertRejects(image("{\"a\":01}"), .malformedJSON(path: label, byteOffset: 6, reason: "expected ',' or '}' in object"))
        assertRejects(image("{\"a\":\"\\x\"}"), .malformedJSON(path: label, byteOffset: 8, reason: "invalid escape '\\x'"))
        assertRejects(image("{\"a\":\"\\ud800\"}"), .malformedJSON(path: label, byteOffset: 12, reason: "unpaired surrogate"))
        assertRejects(image("[1, 2]"), .headerNotObject(path: label))
        assertRejects(image("") , .malformedJSON(path: label, byteOffset: 0, reason: "unexpected end of header"))
        assertRejects([2, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFE], .headerNotUTF8(path: label))
        // Deep nesting is refused with an error instead of exhausting the stack.
        let deep = "{\"a\":" + String(repeating: "[", count: 100_000) + "}"
        assertRejects(image(deep), .malformedJSON(path: label, byteOffset: 68, reason: "nesting deeper than 64 levels"))
    }

    func testOverlappingGapAndTrailingBytes() {
        let buffer = [UInt8](repeating: 0, count: 24)
        assertRejects(image("{" + entry("a", shape: "[4]", offsets: "[0,16]") + "," + entry("b", shape: "[4]", offsets: "[8,24]") + "}",
                            buffer: buffer),
                      .overlappingTensors(path: label, tensor: "b", other: "a", begin: 8, otherEnd: 16))
        assertRejects(image("{" + entry("a", shape: "[2]", offsets: "[0,8]") + "," + entry("b", shape: "[2]", offsets: "[12,20]") + "}",
                            buffer: Array(buffer.prefix(20))),
                      .gapBeforeTensor(path: label, tensor: "b", expectedBegin: 8, begin: 12))
        assertRejects(image("{" + entry("a", shape: "[4]", offsets: "[0,16]") + "}", buffer: buffer),
                      .trailingBytes(path: label, coveredBytes: 16, bufferSize: 24))
        // Identical ranges overlap too.
        assertRejects(image("{" + entry("a", shape: "[2]", offsets: "[0,8]") + "," + entry("b", shape: "[2]", offsets: "[0,8]") + "}",
                            buffer: Array(buffer.prefix(8))),
                      .overlappingTensors(path: label, tensor: "b", other: "a", begin: 0, otherEnd: 8))
    }

    func testOffsetsOutOfRangeAndWrongByteCount() {
        assertRejects(image("{" + entry("a", shape: "[4]", offsets: "[0,16]") + "}", buffer: [UInt8](repeating: 0, count: 8)),
                      .offsetsOutOfRange(path: label, tensor: "a", begin: 0, end: 16, bufferSize: 8))
        let wrongCount = image("{" + entry("x.weight", shape: "[2,2]", offsets: "[0,12]") + "}", buffer: [UInt8](repeating: 0, count: 12))
        assertRejects(wrongCount, .byteCountMismatch(path: label, tensor: "x.weight", begin: 0, end: 12, dtype: .f32, shape: [2, 2],
                                                     neededBytes: 16))
        XCTAssertThrowsError(try SafeTensorsFile(bytes: wrongCount, label: "model.safetensors")) { error in
            XCTAssertEqual("\(error)", "model.safetensors: tensor 'x.weight': data_offsets [0, 12] hold 12 bytes but F32 [2, 2] needs 16")
        }
        assertRejects(image("{" + entry("a", shape: "[0]", offsets: "[8,4]") + "}", buffer: [UInt8](repeating: 0, count: 8)),
                      .invalidOffsets(path: label, tensor: "a", begin: 8, end: 4))
        assertRejects(image("{" + entry("a", shape: "[1]", offsets: "[-4,0]") + "}"),
                      .invalidField(path: label, tensor: "a", field: "data_offsets",
                                    reason: "must hold two integers in 0...\(Int.max), got [-4, 0]"))
        assertRejects(image("{" + entry("a", shape: "[1]", offsets: "[0]") + "}"),
                      .invalidField(path: label, tensor: "a", field: "data_offsets", reason: "must be an array [begin, end], got [0]"))
        assertRejects(image("{" + entry("a", shape: "[1]", offsets: "[0, 99999999999999999999]") + "}"),
                      .invalidField(path: label, tensor: "a", field: "data_offsets",
                                    reason: "must hold two integers in 0...\(Int.max), got [0, 99999999999999999999]"))
    }

    func testUnknownDTypeNegativeShapeAndOverflow() {
        assertRejects(image("{" + entry("w8", "F8_E4M3", shape: "[2]", offsets: "[0,2]") + "}", buffer: [0, 0]),
                      .unsupportedDType(path: label, tensor: "w8", dtype: "F8_E4M3"))
        XCTAssertTrue(SafeTensorsError.unsupportedDType(path: label, tensor: "w8", dtype: "F8_E4M3").description
            .hasPrefix("bad.safetensors: tensor 'w8': unsupported dtype 'F8_E4M3'"))
        assertRejects(image("{" + entry("w", "f32", shape: "[1]", offsets: "[0,4]") + "}", buffer: [0, 0, 0, 0]),
                      .unsupportedDType(path: label, tensor: "w", dtype: "f32"))
        assertRejects(image("{" + entry("w", shape: "[-1,4]", offsets: "[0,0]") + "}"),
                      .negativeDimension(path: label, tensor: "w", shape: [-1, 4]))
        assertRejects(image("{" + entry("w", shape: "[4294967296,4294967296]", offsets: "[0,0]") + "}"),
                      .shapeOverflow(path: label, tensor: "w", shape: ["4294967296", "4294967296"]))
        assertRejects(image("{" + entry("w", shape: "[99999999999999999999]", offsets: "[0,0]") + "}"),
                      .shapeOverflow(path: label, tensor: "w", shape: ["99999999999999999999"]))
        assertRejects(image("{" + entry("w", shape: "[2.0]", offsets: "[0,8]") + "}", buffer: [UInt8](repeating: 0, count: 8)),
                      .invalidField(path: label, tensor: "w", field: "shape", reason: "must hold integers, found 2.0"))
    }

    func testMissingOrMistypedFields() {
        assertRejects(image("{\"w\":{\"dtype\":5,\"shape\":[],\"data_offsets\":[0,4]}}"),
                      .invalidField(path: label, tensor: "w", field: "dtype", reason: "must be a string, got a number"))
        assertRejects(image("{\"w\":{\"shape\":[],\"data_offsets\":[0,4]}}"),
                      .invalidField(path: label, tensor: "w", field: "dtype", reason: "is missing"))
        assertRejects(image("{\"w\":{\"dtype\":\"F32\",\"shape\":\"2x2\",\"data_offsets\":[0,16]}}"),
                      .invalidField(path: label, tensor: "w", field: "shape", reason: "must be an array of integers, got a string"))
        assertRejects(image("{\"w\":{\"dtype\":\"F32\",\"shape\":[true],\"data_offsets\":[0,4]}}"),
                      .invalidField(path: label, tensor: "w", field: "shape", reason: "must be an array of integers, found a boolean"))
        assertRejects(image("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}"),
                      .invalidField(path: label, tensor: "w", field: "data_offsets", reason: "is missing"))
        assertRejects(image("{\"w\":[1,2]}"),
                      .invalidField(path: label, tensor: "w", field: "entry",
                                    reason: "must be an object with dtype, shape and data_offsets, got an array"))
        assertRejects(image("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[0,4]}}"),
                      .invalidField(path: label, tensor: "w", field: "dtype", reason: "appears more than once"))
        assertRejects(image("{\"__metadata__\":{\"format\":1}}"),
                      .invalidMetadata(path: label, key: "format", reason: "must be a string, got a number"))
        assertRejects(image("{\"__metadata__\":[\"pt\"]}"),
                      .invalidMetadata(path: label, key: "__metadata__", reason: "must be an object of strings, got an array"))
        assertRejects(image("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}"),
                      .invalidMetadata(path: label, key: "k", reason: "appears more than once"))
        assertRejects(image("{\"__metadata__\":{},\"__metadata__\":{}}"),
                      .invalidMetadata(path: label, key: "__metadata__", reason: "appears more than once"))
    }

    func testDuplicateNames() {
        let header = "{" + entry("a", shape: "[1]", offsets: "[0,4]") + "," + entry("a", shape: "[1]", offsets: "[4,8]") + "}"
        assertRejects(image(header, buffer: [UInt8](repeating: 0, count: 8)), .duplicateTensor(path: label, tensor: "a"))
        // An escaped spelling of the same name is the same name.
        let escaped = "{" + entry("a", shape: "[1]", offsets: "[0,4]") + "," + entry("\\u0061", shape: "[1]", offsets: "[4,8]") + "}"
        assertRejects(image(escaped, buffer: [UInt8](repeating: 0, count: 8)), .duplicateTensor(path: label, tensor: "a"))
    }

    /// What the format allows must still load: padding, extra fields, escapes, unaligned data, empty header.
    func testValidEdgeCasesAreAccepted() throws {
        let header = "  {\"__metadata__\":{},\"odd\\u00e9\\n\":{\"dtype\":\"I16\",\"shape\":[3],\"data_offsets\":[0,6],\"extra\":[1]}}   "
        let file = try SafeTensorsFile(bytes: image(header, buffer: [1, 0, 0xFF, 0xFF, 0x00, 0x80]), label: label)
        XCTAssertEqual(file.names, ["odd\u{e9}\n"])
        XCTAssertTrue(file.hasMetadata)
        XCTAssertEqual(try file.int64s("odd\u{e9}\n"), [1, -1, -32768])
        // This 54-byte header puts the F32 data at file byte 62, not 4-aligned; values must still be right.
        let unaligned = try SafeTensorsFile(bytes: image("{" + entry("u", shape: "[2]", offsets: "[0,8]") + "}",
                                                         buffer: [0, 0, 0xC0, 0x3F, 0, 0, 0x20, 0xC1]))
        XCTAssertEqual(try unaligned.tensor("u").array, [1.5, -10])
        let empty = try SafeTensorsFile(bytes: image("{}"))
        XCTAssertEqual(empty.names, [])
    }
}
