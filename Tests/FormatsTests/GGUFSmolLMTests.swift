// The real SmolLM2-135M-Instruct Q4_1 GGUF (fetched by scripts/fetch-models.sh): tensor table and
// metadata against the gguf-py dump in Fixtures/smollm/gguf_tensors.tsv, and kernels on real weights.
import XCTest
import Formats
import TestSupport
import TensorCore

final class GGUFSmolLMTests: XCTestCase {
    static let modelPath = Fixtures.modelsDirectory.appendingPathComponent("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf").path
    // One mapping shared by the tests of this class (opening validates all 272 tensors and 49 k tokens).
    nonisolated(unsafe) static var cached: GGUFFile?

    private func model() throws -> GGUFFile {
        guard FileManager.default.fileExists(atPath: Self.modelPath) else {
            throw XCTSkip("SmolLM2 GGUF not found at \(Self.modelPath); run scripts/fetch-models.sh or set LORAKIT_MODELS")
        }
        if let file = Self.cached { return file }
        let file = try GGUFFile(path: Self.modelPath)
        Self.cached = file
        return file
    }

    func testTensorTableMatchesGGUFPyDump() throws {
        let file = try model()
        let tsv = try String(contentsOf: Fixtures.url("smollm/gguf_tensors.tsv"), encoding: .utf8)
        let rows = tsv.split(separator: "\n").dropFirst().map { $0.split(separator: "\t").map(String.init) }
        XCTAssertEqual(rows.count, 272)
        XCTAssertEqual(file.tensors.count, 272)
        XCTAssertEqual(file.tensors.map(\.name), rows.map { $0[0] }, "file order")
        var byType: [GGMLType: Int] = [:]
        for (info, row) in zip(file.tensors, rows) {
            let dims = row[2].dropFirst().dropLast().split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces))! }
            XCTAssertEqual(info.type.name, row[1], info.name)
            XCTAssertEqual(info.dimensions, dims, info.name)
            XCTAssertEqual(info.elementCount, Int(row[3]), info.name)
            XCTAssertEqual(info.byteCount, Int(row[4]), info.name)
            byType[info.type, default: 0] += 1
        }
        XCTAssertEqual(byType, [.q4_1: 210, .q8_0: 1, .f32: 61])
        XCTAssertEqual(file.tensorInfo("blk.0.ffn_down.weight")?.shape, [576, 1536])
    }

    func testMetadata() throws {
        let file = try model()
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.metadataKeys.count, 33)
        XCTAssertEqual(file.alignment, 32)
        XCTAssertEqual(file.metadata["general.architecture"]?.stringValue, "llama")
        XCTAssertEqual(file.metadata["llama.block_count"]?.intValue, 30)
        XCTAssertEqual(file.metadata["llama.embedding_length"]?.intValue, 576)
        XCTAssertEqual(file.metadata["llama.feed_forward_length"]?.intValue, 1536)
        XCTAssertEqual(file.metadata["llama.attention.head_count"]?.intValue, 9)
        XCTAssertEqual(file.metadata["llama.attention.head_count_kv"]?.intValue, 3)
        XCTAssertEqual(file.metadata["llama.rope.freq_base"]?.floatValue, 100_000)
        XCTAssertEqual(file.metadata["llama.attention.layer_norm_rms_epsilon"]?.floatValue, 1e-5)
        XCTAssertEqual(file.metadata["tokenizer.ggml.pre"]?.stringValue, "smollm")
        XCTAssertEqual(file.metadata["tokenizer.ggml.add_bos_token"]?.boolValue, false)
        let tokens = try XCTUnwrap(file.metadata["tokenizer.ggml.tokens"]?.stringArray)
        XCTAssertEqual(tokens.count, 49152)
        XCTAssertEqual(Array(tokens[0...2]), ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
        XCTAssertEqual(file.metadata["tokenizer.ggml.merges"]?.arrayValue?.count, 48900)
        XCTAssertEqual(file.metadata["tokenizer.ggml.token_type"]?.intArray?.count, 49152)
        XCTAssertEqual(file.metadata["tokenizer.ggml.eos_token_id"]?.intValue, 2)
    }

    func testDequantisedTensorsAreFiniteAndShaped() throws {
        let file = try model()
        let embedding = try file.tensor("token_embd.weight")
        XCTAssertEqual(embedding.shape, [49152, 576])
        var nonFinite = 0, absMax: Float = 0
        embedding.withUnsafeBufferPointer { for v in $0 { if !v.isFinite { nonFinite += 1 }; absMax = max(absMax, abs(v)) } }
        XCTAssertEqual(nonFinite, 0)
        XCTAssertGreaterThan(absMax, 0.01)
        let norm = try file.tensor("blk.0.attn_norm.weight")
        XCTAssertEqual(norm.shape, [576])
        XCTAssertTrue(norm.array.allSatisfy { $0.isFinite })
        // Q8_0 rows through QuantizedMatrix equal the dequantised tensor's rows exactly.
        let head = try file.quantizedMatrix("token_embd.weight")
        XCTAssertEqual(head.shape, [49152, 576])
        let rows = try head.dequantizeRows(1000..<1003)
        XCTAssertEqual(rows.array, Array(embedding.array[(1000 * 576)..<(1003 * 576)]))
    }

    func testMatvecOnRealWeightsMatchesDequantisedProduct() throws {
        let file = try model()
        var rng = RandomGenerator(seed: 3)
        for name in ["blk.0.attn_q.weight", "blk.7.ffn_down.weight", "blk.29.ffn_up.weight", "token_embd.weight"] {
            let m = try file.quantizedMatrix(name)
            let dense = try file.tensor(name)
            XCTAssertEqual(dense.shape, m.shape)
            let x = rng.normal([m.columns])
            let y = try m.matvec(x).array
            // Reference in Float64 from the dequantised weights.
            var worst = 0.0
            dense.withUnsafeBufferPointer { w in
                let xs = x.array
                for r in 0..<m.rows {
                    var ref = 0.0, magnitude = 0.0
                    for c in 0..<m.columns { let p = Double(w[r * m.columns + c]) * Double(xs[c]); ref += p; magnitude += abs(p) }
                    worst = max(worst, abs(Double(y[r]) - ref) / max(magnitude, 1e-30))
                }
            }
            XCTAssertLessThan(worst, 1e-4, name)
            // Small-batch matmul agrees with matvec row by row.
            let batch = Tensor((x.array + x.array.map { -$0 }), shape: [2, m.columns])
            let yy = try m.matmul(batch).array
            let scale = y.map(abs).max() ?? 1
            XCTAssertLessThan(zip(y, yy.prefix(m.rows)).map { abs($0 - $1) }.max()! / scale, 1e-5, name)
            XCTAssertLessThan(zip(y, yy.suffix(m.rows)).map { abs($0 + $1) }.max()! / scale, 1e-5, name)
        }
    }
}
