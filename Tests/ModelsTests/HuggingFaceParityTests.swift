// The tiny Hugging Face LlamaForCausalLM fixture (hidden 64, 2 layers, 4 heads, 2 kv heads) against
// transformers + PEFT outputs: base logits, LoRA / rsLoRA / PiSSA-as-LoRA adapters (adapted and merged),
// adapter save/load, and one training step's loss and adapter gradients.
import XCTest
import TensorCore
import Autograd
import Formats
import PEFT
import Models
import TestSupport

final class HuggingFaceParityTests: XCTestCase {
    func loadBase() throws -> LlamaModel { try ModelLoader.load(Fixtures.url("peft/base_llama")).model }

    func io(_ name: String) throws -> SafeTensorsFile { try SafeTensorsFile(contentsOf: Fixtures.url("peft/\(name)/io.safetensors")) }

    /// input_ids [2, 8] as rows.
    func inputRows(_ file: SafeTensorsFile) throws -> [[Int32]] {
        let ids = try file.int32s("input")
        return [Array(ids[0..<8]), Array(ids[8..<16])]
    }

    /// Logits [2, 8, 256] from the cache-backed inference path, one sequence at a time.
    func inferenceLogits(_ model: LlamaModel, _ rows: [[Int32]]) throws -> Tensor {
        var values: [Float] = []
        for row in rows {
            let cache = KVCache(config: model.config)
            values += try model.forward(tokens: row, cache: cache, allLogits: true).array
        }
        return Tensor(values, shape: [rows.count, rows[0].count, model.config.vocabSize])
    }

    func testConfigFromHuggingFaceJSON() throws {
        let c = try LlamaConfig(huggingFaceConfig: Fixtures.url("peft/base_llama/config.json"))
        XCTAssertEqual([c.vocabSize, c.hiddenSize, c.intermediateSize, c.layerCount, c.headCount, c.kvHeadCount, c.headDim, c.contextLength],
                       [256, 64, 128, 2, 4, 2, 16, 128])
        XCTAssertEqual(c.ropeTheta, 10_000)
        XCTAssertEqual(c.rmsNormEps, 1e-5)
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertEqual(c.eosTokenIDs, [2])
    }

    func testBaseLogitsMatchTransformers() throws {
        let model = try loadBase()
        let io = try io("llama_lora")
        let rows = try inputRows(io)
        let expected = try io.tensor("base_out")
        let graph = try model.logits(ids: rows)
        XCTAssertLessThan(maxAbsDifference(graph, expected), 1e-5)
        XCTAssertLessThan(maxAbsDifference(try inferenceLogits(model, rows), expected), 1e-5)
        XCTAssertEqual(model.adaptedLinears.count, 14)
        XCTAssertEqual(model.adaptedLinears.map(\.path).prefix(7), [
            "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj",
            "model.layers.0.self_attn.o_proj", "model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj",
            "model.layers.0.mlp.down_proj"])
        // Module names are the checkpoint's names (tied head: no lm_head entry).
        let names = Set(model.namedParameters().map(\.0))
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("peft/base_llama/model.safetensors"))
        XCTAssertEqual(names, Set(file.names))
    }

    /// PEFT adapters (plain, rsLoRA, and PiSSA saved as a rank-2r LoRA on the original base) give PEFT's
    /// adapted logits through both forward paths, and PEFT's merged logits after merging.
    func testAdaptersMatchPEFT() throws {
        for (fixture, adapterDir) in [("llama_lora", "llama_lora/adapter"), ("llama_rslora", "llama_rslora/adapter"),
                                      ("llama_pissa", "llama_pissa/adapter_as_lora")] {
            let model = try loadBase()
            let io = try io(fixture)
            let rows = try inputRows(io)
            XCTAssertLessThan(maxAbsDifference(try model.logits(ids: rows), try io.tensor("base_out")), 1e-5, fixture)
            try AdapterFiles.loadLoRA(into: model, from: Fixtures.url("peft/" + adapterDir))
            let adapted = try io.tensor("adapted_out")
            XCTAssertLessThan(maxAbsDifference(try model.logits(ids: rows), adapted), 1e-5, fixture)
            XCTAssertLessThan(maxAbsDifference(try inferenceLogits(model, rows), adapted), 1e-5, fixture)
            try model.mergeAdapters()
            XCTAssertLessThan(maxAbsDifference(try model.logits(ids: rows), try io.tensor("merged_out")), 1e-5, fixture)
            XCTAssertLessThan(maxAbsDifference(try inferenceLogits(model, rows), try io.tensor("merged_out")), 1e-5, fixture)
        }
    }

    func testAdapterSaveLoadRoundTripIsExact() throws {
        let model = try loadBase()
        let config = try AdapterFiles.loadLoRA(into: model, from: Fixtures.url("peft/llama_rslora/adapter"))
        let rows = try inputRows(try io("llama_rslora"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorakit-llama-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try AdapterFiles.saveLoRA(model, config: config, to: dir)
        let reloaded = try loadBase()
        try AdapterFiles.loadLoRA(into: reloaded, from: dir)
        XCTAssertEqual(try reloaded.logits(ids: rows), try model.logits(ids: rows))
        XCTAssertEqual(try inferenceLogits(reloaded, rows), try inferenceLogits(model, rows))
    }

    /// One step of causal-LM training (labels = input_ids): PEFT's loss and the gradient of every lora_A/B.
    /// This exercises the backward of every op of the model.
    func testTrainingStepLossAndGradientsMatchPEFT() throws {
        let model = try loadBase()
        try AdapterFiles.loadLoRA(into: model, from: Fixtures.url("peft/llama_lora/adapter"))
        let io = try io("llama_lora")
        var rng = RandomGenerator(seed: 0)
        let loss = try model.loss(ids: try inputRows(io), training: true, rng: &rng)
        let expectedLoss = try io.tensor("train_loss").array[0]
        XCTAssertEqual(loss.value.scalarValue, expectedLoss, accuracy: 1e-5 * abs(expectedLoss))
        loss.backward()
        let parameters = model.adapterParameters("default")
        XCTAssertEqual(parameters.count, 8)
        for (name, p) in parameters {
            let key = "grad." + name.replacingOccurrences(of: ".weight", with: ".default.weight")
            let expected = try io.tensor(key)
            let grad = try XCTUnwrap(p.grad, name)
            let scale = expected.array.map(abs).max() ?? 1
            XCTAssertLessThan(maxAbsDifference(grad, expected), 1e-5 * scale, name)
        }
        // Frozen base weights receive nothing.
        XCTAssertTrue(model.parameters.allSatisfy { $0.grad == nil })
    }

    func testLossIgnoresMaskedLabelsAndMatchesFullLogits() throws {
        let model = try loadBase()
        let io = try io("llama_lora")
        let rows = try inputRows(io)
        var labels = rows
        labels[0][3] = -100; labels[1][7] = -100
        var rng = RandomGenerator(seed: 0)
        let loss = try model.loss(ids: rows, labels: labels, training: false, rng: &rng).value.scalarValue
        // Reference: mean over counted positions of −log softmax(logits[t])[labels[t+1]].
        let logits = try model.logits(ids: rows)
        var total = 0.0, count = 0
        for b in 0..<2 { for t in 0..<7 where labels[b][t + 1] != -100 {
            let row = (0..<256).map { Double(logits[b, t, $0]) }
            let m = row.max()!, lse = m + log(row.map { exp($0 - m) }.reduce(0, +))
            total += lse - row[Int(labels[b][t + 1])]; count += 1
        } }
        XCTAssertEqual(count, 12)
        XCTAssertEqual(Double(loss), total / Double(count), accuracy: 1e-5)
    }

    func testBadInputsAreTypedErrors() throws {
        let model = try loadBase()
        var rng = RandomGenerator(seed: 0)
        XCTAssertThrowsError(try model.forward(ids: [[1, 2, 3], [1, 2]], rng: &rng)) { XCTAssertTrue("\($0)".contains("row 1"), "\($0)") }
        XCTAssertThrowsError(try model.forward(ids: [[1, 256]], rng: &rng)) { XCTAssertTrue("\($0)".contains("256"), "\($0)") }
        XCTAssertThrowsError(try model.forward(ids: [[Int32](repeating: 1, count: 129)], rng: &rng)) {
            XCTAssertEqual($0 as? ModelError, .contextOverflow(tokens: 129, contextLength: 128))
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorakit-badconfig-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("config.json")
        try Data(#"{"model_type": "gpt_neox", "hidden_size": 64}"#.utf8).write(to: url)
        XCTAssertThrowsError(try LlamaConfig(huggingFaceConfig: url)) {
            XCTAssertEqual($0 as? ModelError, .unsupportedArchitecture(file: url.path, key: "model_type", value: "gpt_neox"))
        }
        try Data(#"{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 3, "vocab_size": 8, "intermediate_size": 8, "num_hidden_layers": 1}"#.utf8).write(to: url)
        XCTAssertThrowsError(try LlamaConfig(huggingFaceConfig: url)) { XCTAssertTrue("\($0)".contains("num_key_value_heads"), "\($0)") }
        try Data(#"{"model_type": "llama", "rope_scaling": {"rope_type": "llama3"}}"#.utf8).write(to: url)
        XCTAssertThrowsError(try LlamaConfig(huggingFaceConfig: url)) { XCTAssertTrue("\($0)".contains("llama3"), "\($0)") }
    }
}

extension HuggingFaceParityTests {
    /// Activation recomputation changes memory, not numbers: the same loss and the same adapter gradients, bit for
    /// bit, with dropout on (each layer's replay draws the same masks).
    func testRecomputedActivationsGiveIdenticalLossAndGradients() throws {
        var positions: [UInt64] = []
        func lossAndGradients(recompute: Bool) throws -> (Float, [String: Tensor]) {
            let model = try loadBase()
            var config = LoRAConfig(r: 4, loraAlpha: 8, loraDropout: 0.2, targetModules: .names(["q_proj", "v_proj", "down_proj"]))
            config.initialization = .random
            var initRNG = RandomGenerator(seed: 1)
            try model.addLoRA(config, rng: &initRNG)
            model.recomputesActivations = recompute
            var rng = RandomGenerator(seed: 9)
            let loss = try model.loss(ids: try inputRows(try io("llama_lora")), training: true, rng: &rng)
            loss.backward()
            positions.append(rng.position)
            return (loss.value.scalarValue, Dictionary(uniqueKeysWithValues: model.adapterParameters("default").map { ($0.0, $0.1.grad!) }))
        }
        let (plainLoss, plain) = try lossAndGradients(recompute: false)
        let (recomputedLoss, recomputed) = try lossAndGradients(recompute: true)
        XCTAssertEqual(recomputedLoss, plainLoss)
        XCTAssertEqual(plain.count, 12)
        XCTAssertEqual(positions[0], positions[1], "dropout consumed the same stream")
        for (name, g) in plain {
            XCTAssertGreaterThan(g.l2Norm(), 0, name)
            XCTAssertEqual(recomputed[name], g, name)
        }
    }
}

extension HuggingFaceParityTests {
    /// PEFT's OLoRA (`init_lora_weights="olora"`, fixtures/peft/llama_olora, made by
    /// scripts/reference/make_peft_init_fixtures.py): B = Q[:, :r], A = R[:r] of the QR of W, and W − s·B·A left as
    /// the base. The residual base and s·B·A equal PEFT's; the factors equal it up to one sign per column of Q / row
    /// of R (Householder QR fixes them only up to sign); the logits equal the base's and PEFT's.
    func testOLoRAInitialisationMatchesPEFT() throws {
        let model = try loadBase()
        let io = try io("llama_olora")
        let rows = try inputRows(io)
        var config = LoRAConfig(r: 4, loraAlpha: 8, targetModules: .names(["q_proj", "v_proj"]))
        config.initialization = .olora
        var rng = RandomGenerator(seed: 1)
        try model.addLoRA(config, rng: &rng)
        var flipped = 0
        for layer in 0..<2 { for projection in ["q_proj", "v_proj"] {
            let path = "model.layers.\(layer).self_attn.\(projection)"
            let linear = try XCTUnwrap(model.linear(at: path), path)
            let branch = try XCTUnwrap(linear.adapter(named: "default") as? LoRABranch, path)
            let a = try io.tensor("init.\(path).lora_A"), b = try io.tensor("init.\(path).lora_B")
            let residual = try io.tensor("residual.\(path).weight")
            let scale = max(residual.array.map(abs).max()!, 1e-30)
            XCTAssertLessThan(maxAbsDifference(linear.weight.value, residual) / scale, 1e-5, "\(path) residual base")
            XCTAssertLessThan(maxAbsDifference(branch.deltaWeight(), Tensor.matmul(b, a, alpha: 2)) / scale, 1e-5, "\(path) s·B·A")
            for j in 0..<4 {
                let ours = (0..<b.shape[0]).map { branch.b.value[$0, j] }, theirs = (0..<b.shape[0]).map { b[$0, j] }
                let sign: Float = zip(ours, theirs).reduce(0) { $0 + $1.0 * $1.1 } >= 0 ? 1 : -1
                if sign < 0 { flipped += 1 }
                for (x, y) in zip(ours, theirs) { XCTAssertEqual(x, sign * y, accuracy: 1e-5, "\(path) B[:, \(j)]") }
                for c in 0..<a.shape[1] { XCTAssertEqual(branch.a.value[j, c], sign * a[j, c], accuracy: 1e-4, "\(path) A[\(j), :]") }
            }
        } }
        let logits = try model.logits(ids: rows)
        XCTAssertLessThan(maxAbsDifference(logits, try io.tensor("logits.olora")), 1e-4)
        XCTAssertLessThan(maxAbsDifference(logits, try io.tensor("logits.base")), 1e-4)
        print("OLoRA parity: \(flipped) of 16 Q columns have the opposite sign to torch's")
    }
}
