// Loading paths and their errors: sharded safetensors checkpoints, GGUF files of other architectures or with
// missing hyper-parameters, directories that are not models.
import XCTest
import TensorCore
import Formats
import Models
import TestSupport

final class ModelLoaderTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("lorakit-loader-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: directory) }

    /// The tiny fixture split into two shards with an index loads to the same logits.
    func testShardedSafeTensorsCheckpoint() throws {
        let source = try SafeTensorsFile(contentsOf: Fixtures.url("peft/base_llama/model.safetensors"))
        let names = source.names.sorted()
        var map: [String: String] = [:]
        for (part, slice) in [names[..<(names.count / 2)], names[(names.count / 2)...]].enumerated() {
            let file = "model-0000\(part + 1)-of-00002.safetensors"
            try SafeTensorsWriter.write(slice.map { .float($0, try source.tensor($0)) }, to: directory.appendingPathComponent(file))
            for n in slice { map[n] = file }
        }
        let index = try JSONSerialization.data(withJSONObject: ["metadata": [:] as [String: Any], "weight_map": map])
        try index.write(to: directory.appendingPathComponent("model.safetensors.index.json"))
        try FileManager.default.copyItem(at: Fixtures.url("peft/base_llama/config.json"), to: directory.appendingPathComponent("config.json"))
        let sharded = try ModelLoader.load(directory).model
        let single = try ModelLoader.load(Fixtures.url("peft/base_llama")).model
        let ids: [[Int32]] = [[5, 9, 200, 3]]
        XCTAssertEqual(try sharded.logits(ids: ids), try single.logits(ids: ids))
        XCTAssertNil(try ModelLoader.load(directory).tokenizer)
    }

    func testNotAModelDirectory() throws {
        XCTAssertThrowsError(try ModelLoader.load(directory)) { XCTAssertTrue("\($0)".contains("config.json"), "\($0)") }
        XCTAssertThrowsError(try ModelLoader.load(directory.appendingPathComponent("missing.gguf"))) {
            XCTAssertTrue("\($0)".contains("no such file"), "\($0)")
        }
    }

    /// A GGUF header with the given string metadata and no tensors.
    func writeGGUF(_ metadata: [(String, String)], name: String) throws -> URL {
        var bytes: [UInt8] = Array("GGUF".utf8)
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }
        u32(3); u64(0); u64(UInt64(metadata.count))
        for (key, value) in metadata { string(key); u32(8); string(value) }
        while bytes.count % 32 != 0 { bytes.append(0) }
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    func testGGUFArchitectureAndMissingKeysAreNamed() throws {
        let neox = try writeGGUF([("general.architecture", "gptneox")], name: "neox.gguf")
        XCTAssertThrowsError(try ModelLoader.load(neox)) {
            XCTAssertEqual($0 as? ModelError, .unsupportedArchitecture(file: neox.path, key: "general.architecture", value: "gptneox"))
        }
        let bare = try writeGGUF([("general.architecture", "llama")], name: "bare.gguf")
        XCTAssertThrowsError(try ModelLoader.load(bare)) {
            XCTAssertEqual($0 as? ModelError, .missingKey(file: bare.path, key: "llama.embedding_length"))
        }
    }
}
