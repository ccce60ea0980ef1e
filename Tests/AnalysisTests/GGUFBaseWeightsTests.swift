// Amplification against a GGUF base: W comes back in Hugging Face names and layout (q/k rows un-permuted from
// llama.cpp's rope order, quantized blocks dequantized), equal to what the loaded LlamaModel holds, and the
// amplification factor of a constructed adapter comes out exactly.
import Foundation
import XCTest
import TensorCore
import LinearAlgebra
import Formats
import PEFT
import Models
import Analysis
import TestSupport

final class GGUFBaseWeightsTests: XCTestCase {
    /// A Llama GGUF (v3, F32 tensors) written from the format definition: hidden 8, 2 query heads of dim 4, 1 kv
    /// head, one layer with attn_q [8, 8], attn_k [4, 8], attn_v [4, 8] stored as llama.cpp stores them.
    func writeTinyLlamaGGUF(q: Tensor, k: Tensor, v: Tensor, to url: URL) throws {
        var bytes = Array("GGUF".utf8)
        func u32(_ x: UInt32) { withUnsafeBytes(of: x.littleEndian) { bytes += $0 } }
        func u64(_ x: UInt64) { withUnsafeBytes(of: x.littleEndian) { bytes += $0 } }
        func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }
        let ints: [(String, UInt32)] = [("llama.embedding_length", 8), ("llama.attention.head_count", 2),
                                        ("llama.attention.head_count_kv", 1), ("llama.feed_forward_length", 16),
                                        ("llama.block_count", 1), ("llama.vocab_size", 10), ("llama.context_length", 64)]
        // llama.cpp's layout: within each head, GGUF row 2i + j holds Hugging Face row j·D/2 + i.
        func llamaCppRows(_ hf: Tensor, heads: Int) -> Tensor {
            let rows = hf.shape[0], cols = hf.shape[1], d = rows / heads, src = hf.array
            var dst = [Float](repeating: 0, count: src.count)
            for h in 0..<heads { for j in 0..<2 { for i in 0..<(d / 2) {
                let from = h * d + j * (d / 2) + i, to = h * d + 2 * i + j
                for c in 0..<cols { dst[to * cols + c] = src[from * cols + c] }
            } } }
            return Tensor(dst, shape: hf.shape)
        }
        let tensors: [(String, Tensor)] = [("blk.0.attn_q.weight", llamaCppRows(q, heads: 2)),
                                           ("blk.0.attn_k.weight", llamaCppRows(k, heads: 1)), ("blk.0.attn_v.weight", v)]
        u32(3); u64(UInt64(tensors.count)); u64(UInt64(ints.count + 2))
        string("general.architecture"); u32(8); string("llama")
        for (key, value) in ints { string(key); u32(4); u32(value) }
        string("llama.attention.layer_norm_rms_epsilon"); u32(6); u32(Float(1e-5).bitPattern)
        var offset: UInt64 = 0
        for (name, t) in tensors {   // ggml dims: row length first
            string(name); u32(2); u64(UInt64(t.shape[1])); u64(UInt64(t.shape[0])); u32(0); u64(offset)
            offset += UInt64(t.count * 4)
        }
        while bytes.count % 32 != 0 { bytes.append(0) }
        for (_, t) in tensors { for x in t.array { u32(x.bitPattern) } }
        try Data(bytes).write(to: url)
    }

    func testTinyGGUFGivesHuggingFaceRowsAndNamesMissingModules() throws {
        let q = randomMatrix(8, 8, seed: 21), k = randomMatrix(4, 8, seed: 22), v = randomMatrix(4, 8, seed: 23)
        let url = try temporaryDirectory(self, "gguf-llama").appendingPathComponent("tiny.gguf")
        try writeTinyLlamaGGUF(q: q, k: k, v: v, to: url)
        let source = try TensorSource(url: url)
        XCTAssertEqual(try source.baseWeight(forModule: "model.layers.0.self_attn.q_proj")?.array, q.array)
        XCTAssertEqual(try source.baseWeight(forModule: "model.layers.0.self_attn.k_proj")?.array, k.array)
        XCTAssertEqual(try source.baseWeight(forModule: "model.layers.0.self_attn.v_proj")?.array, v.array)
        XCTAssertNotEqual(try source.matrix("blk.0.attn_q.weight").array, q.array)   // stored permuted
        XCTAssertEqual(source.baseWeightName(forModule: "model.layers.0.self_attn.q_proj"),
                       "blk.0.attn_q.weight (model.layers.0.self_attn.q_proj.weight)")

        // An adapter on o_proj, which the file lacks: the error names the module and the GGUF tensor looked for.
        let module = try AdapterModule(path: "model.layers.0.self_attn.o_proj", a: randomMatrix(1, 8, seed: 1),
                                       b: randomMatrix(8, 1, seed: 2), scaling: 1)
        let adapter = AdapterWeights(directory: url, config: LoRAConfig(r: 1), modules: [module])
        XCTAssertEqual(analysisError { _ = try AmplificationReport.measure(adapter: adapter, base: source) },
                       .missingBaseWeight(module: "model.layers.0.self_attn.o_proj",
                                          tensor: "blk.0.attn_output.weight (model.layers.0.self_attn.o_proj.weight)"))
    }

    func testSmolLM2WeightsMatchTheLoadedModelAndGiveTheExactFactor() throws {
        let gguf = Fixtures.modelsDirectory.appendingPathComponent("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        try XCTSkipUnless(FileManager.default.fileExists(atPath: gguf.path), "run scripts/fetch-models.sh first")
        let weights = try LlamaGGUFWeights(url: gguf)
        let model = try ModelLoader.loadGGUF(gguf).model   // q/k/v kept in their Q4_1 (or Q8_0) blocks
        let layer = 5, prefix = "model.layers.5.self_attn."
        for (name, linear) in [("q_proj", model.layers[layer].attention.qProj), ("k_proj", model.layers[layer].attention.kProj),
                               ("v_proj", model.layers[layer].attention.vProj)] {
            let w = try XCTUnwrap(try weights.weight(ofModule: prefix + name))
            let held = linear.dequantizeBase().value
            XCTAssertEqual(w.shape, held.shape, name)
            XCTAssertEqual(maxAbsDifference(w, held), 0, "\(name): provider and LlamaModel disagree")
        }

        // ΔW = 3·u₁v₁ᵀ + 2·u₂v₂ᵀ along W's top singular directions: U, V of ΔW are W's top-2 pairs, so
        // ‖UᵀWV‖_F = sqrt(σ₁² + σ₂²) and the factor is sqrt(13) / sqrt(σ₁² + σ₂²).
        let w = try XCTUnwrap(try weights.weight(ofModule: prefix + "q_proj"))
        let s = try svd(w)
        let n = w.shape[0], u = s.u.array, vt = s.vt.array, cols = s.u.shape[1]
        let b = Tensor((0..<n).flatMap { i in [3 * u[i * cols], 2 * u[i * cols + 1]] }, shape: [n, 2])
        let a = Tensor(Array(vt[0..<(2 * w.shape[1])]), shape: [2, w.shape[1]])
        let module = try AdapterModule(path: prefix + "q_proj", a: a, b: b, scaling: 1)
        let adapter = AdapterWeights(directory: gguf, config: LoRAConfig(r: 2), modules: [module])
        let report = try AmplificationReport.measure(adapter: adapter, base: TensorSource(url: gguf))
        let row = try XCTUnwrap(report.modules.first)
        let top2 = (Double(s.singularValues[0]) * Double(s.singularValues[0]) + Double(s.singularValues[1]) * Double(s.singularValues[1])).squareRoot()
        XCTAssertEqual(row.deltaNorm, 13.0.squareRoot(), accuracy: 1e-4)
        XCTAssertEqual(row.projectionOnDelta, top2, accuracy: 1e-4 * top2)
        XCTAssertEqual(row.projectionOnWeight, top2, accuracy: 1e-4 * top2)
        XCTAssertEqual(try XCTUnwrap(row.amplificationFactor), 13.0.squareRoot() / top2, accuracy: 1e-4 * 13.0.squareRoot() / top2)
        XCTAssertEqual(row.weightNorm, frobenius(w), accuracy: 1e-6 * frobenius(w))
    }
}
