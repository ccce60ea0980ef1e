// DoRA (issue 14): PEFT's llama_dora adapter reproduces PEFT's adapted and merged logits and merged weights, its
// training-step gradients (norm detached), exact save/load with `lora_magnitude_vector`, finite-difference
// gradients, a fresh DoRA adapter that starts as the base, and DoRA over Q4_1 / Q8_0 quantized bases.
import XCTest
import TensorCore
import Autograd
import Formats
import PEFT
import Models
import TestSupport

/// Q8_0 blocks for a dense matrix [rows, columns] (columns a multiple of 32): d = max|x|/127 (f16), q = round(x/d).
func quantizeQ8_0(_ w: Tensor) throws -> QuantizedMatrix {
    let (rows, columns) = (w.shape[0], w.shape[1])
    var bytes: [UInt8] = []
    for r in 0..<rows {
        for b in 0..<(columns / 32) {
            let x = (0..<32).map { w[r, b * 32 + $0] }
            let d = Float16((x.map(abs).max() ?? 0) / 127)
            bytes += [UInt8(d.bitPattern & 0xFF), UInt8(d.bitPattern >> 8)]
            for v in x { bytes.append(UInt8(bitPattern: Int8(Float(d) == 0 ? 0 : max(-127, min(127, (v / Float(d)).rounded()))))) }
        }
    }
    return try QuantizedMatrix(name: "test.q8_0", type: .q8_0, rows: rows, columns: columns, bytes: bytes)
}

/// max|a − b| / max|b|: the relative error the issue bounds (≤ 1e-5).
func relativeDifference(_ a: Tensor, _ b: Tensor) -> Float {
    maxAbsDifference(a, b) / max(b.array.map(abs).max() ?? 1, 1e-30)
}

final class DoRAParityTests: XCTestCase {
    let adapterURL = Fixtures.url("peft/llama_dora/adapter")

    func loadBase() throws -> LlamaModel { try ModelLoader.load(Fixtures.url("peft/base_llama")).model }
    func io() throws -> SafeTensorsFile { try SafeTensorsFile(contentsOf: Fixtures.url("peft/llama_dora/io.safetensors")) }
    func rows(_ file: SafeTensorsFile, _ key: String = "input") throws -> [[Int32]] {
        let ids = try file.int32s(key)
        let n = ids.count / 8
        return (0..<n).map { Array(ids[($0 * 8)..<(($0 + 1) * 8)]) }
    }
    func inferenceLogits(_ model: LlamaModel, _ rows: [[Int32]]) throws -> Tensor {
        var values: [Float] = []
        for row in rows { values += try model.forward(tokens: row, cache: KVCache(config: model.config), allLogits: true).array }
        return Tensor(values, shape: [rows.count, rows[0].count, model.config.vocabSize])
    }

    func testPEFTDoRAAdapterMergeAndUnmerge() throws {
        let model = try loadBase()
        let io = try io()
        let ids = try rows(io)
        let config = try AdapterFiles.loadLoRA(into: model, from: adapterURL)
        XCTAssertTrue(config.useDoRA)
        XCTAssertTrue(model.linear(at: "model.layers.0.self_attn.q_proj")!.adapter(named: "default") is DoRABranch)
        let adapted = try io.tensor("adapted_out")
        XCTAssertLessThan(relativeDifference(try model.logits(ids: ids), adapted), 1e-5)
        XCTAssertLessThan(relativeDifference(try inferenceLogits(model, ids), adapted), 1e-5)
        XCTAssertGreaterThan(maxAbsDifference(adapted, try io.tensor("base_out")), 0.1, "the adapter changes the output")

        let original = Dictionary(uniqueKeysWithValues: model.adaptedLinears.map { ($0.path, $0.weight.value) })
        try model.mergeAdapters()
        let merged = try SafeTensorsFile(contentsOf: Fixtures.url("peft/llama_dora/merged.safetensors"))
        for layer in model.adaptedLinears {
            XCTAssertLessThan(relativeDifference(layer.weight.value, try merged.tensor(layer.path + ".weight")), 1e-5, layer.path)
        }
        XCTAssertLessThan(relativeDifference(try model.logits(ids: ids), try io.tensor("merged_out")), 1e-5)
        XCTAssertLessThan(relativeDifference(try inferenceLogits(model, ids), try io.tensor("merged_out")), 1e-5)
        model.unmergeAdapters()
        for layer in model.adaptedLinears {
            XCTAssertLessThan(relativeDifference(layer.weight.value, original[layer.path]!), 1e-6, layer.path)
        }
        XCTAssertLessThan(relativeDifference(try model.logits(ids: ids), adapted), 1e-5)
    }

    /// PEFT's loss and the gradients of lora_A, lora_B and lora_magnitude_vector (the row norm detached).
    func testTrainingStepGradientsMatchPEFT() throws {
        let model = try loadBase()
        try AdapterFiles.loadLoRA(into: model, from: adapterURL)
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("peft/breadth/dora_train.safetensors"))
        var rng = RandomGenerator(seed: 0)
        let loss = try model.loss(ids: try rows(file), training: true, rng: &rng)
        let expected = try file.tensor("loss").array[0]
        XCTAssertEqual(loss.value.scalarValue, expected, accuracy: 1e-5 * abs(expected))
        loss.backward()
        let parameters = model.adapterParameters("default")
        XCTAssertEqual(parameters.count, 12)
        for (name, p) in parameters {
            let reference = try file.tensor("grad.base_model.model." + name)
            XCTAssertLessThan(relativeDifference(try XCTUnwrap(p.grad, name), reference), 1e-4, name)
        }
    }

    func testSaveLoadRoundTripUsesPEFTKeys() throws {
        let model = try loadBase()
        let config = try AdapterFiles.loadLoRA(into: model, from: adapterURL)
        let dir = try temporaryDirectory(self, "dora-roundtrip")
        try AdapterFiles.saveLoRA(model, config: config, to: dir)
        let written = try SafeTensorsFile(contentsOf: dir.appendingPathComponent(AdapterFiles.weightsName))
        let original = try SafeTensorsFile(contentsOf: adapterURL.appendingPathComponent(AdapterFiles.weightsName))
        XCTAssertEqual(Set(written.names), Set(original.names))
        XCTAssertTrue(written.names.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector"))
        for name in original.names { XCTAssertEqual(try written.tensor(name), try original.tensor(name), name) }
        let json = try JSONValue.parseObject(Data(contentsOf: dir.appendingPathComponent(AdapterFiles.configName)), source: "config")
        XCTAssertEqual(json["use_dora"], .bool(true))
        let reloaded = try loadBase()
        try AdapterFiles.loadLoRA(into: reloaded, from: dir)
        let ids = try rows(try io())
        XCTAssertEqual(try reloaded.logits(ids: ids), try model.logits(ids: ids))
    }

    /// A fresh DoRA adapter: m = ‖W‖ per row, output = base output; after perturbing B the output moves.
    func testFreshDoRAStartsAsBase() throws {
        let model = try loadBase()
        let ids = try rows(try io())
        let base = try model.logits(ids: ids)
        var config = LoRAConfig(r: 4, loraAlpha: 8, targetModules: .names(["q_proj", "down_proj"]))
        config.useDoRA = true
        var rng = RandomGenerator(seed: 3)
        try model.addLoRA(config, rng: &rng)
        let layer = model.linear(at: "model.layers.1.mlp.down_proj")!
        let dora = try XCTUnwrap(layer.adapter(named: "default") as? DoRABranch)
        let w = layer.weight.value
        for i in [0, 17, 63] {
            let norm = (0..<w.dim(1)).map { Double(w[i, $0] * w[i, $0]) }.reduce(0, +).squareRoot()
            XCTAssertEqual(Double(dora.magnitude.value[i]), norm, accuracy: 1e-5 * norm)
        }
        XCTAssertLessThan(maxAbsDifference(try model.logits(ids: ids), base), 1e-5)
        XCTAssertEqual(model.adapterParameters("default").map(\.0).filter { $0.hasSuffix("lora_magnitude_vector") }.count, 4)
    }

    /// Finite differences: the layer's output w.r.t. x and m (on which the detached norm does not depend), and
    /// w.r.t. A and B with the norm held at its value (what "detached" means).
    func testFiniteDifferenceGradients() throws {
        var rng = RandomGenerator(seed: 11)
        let layer = AdaptedLinear(path: "proj", weight: Variable(rng.normal([6, 5])), bias: Variable(rng.normal([6])))
        let lora = try LoRABranch(a: Variable(rng.normal([2, 5], std: 0.5), requiresGrad: true), b: Variable(rng.normal([6, 2], std: 0.5), requiresGrad: true),
                                  alpha: 4, useRSLoRA: false, dropout: 0)
        let dora = try DoRABranch(lora: lora, magnitude: Variable(rng.uniform([6], low: 0.5, high: 2), requiresGrad: true), layer: layer)
        try layer.addAdapter("default", dora)
        let x = Variable(rng.normal([3, 5]), requiresGrad: true)
        let weights = rng.normal([3, 6])
        func loss(_ inputs: [Variable]) -> Variable {
            var r = RandomGenerator(seed: 0)
            return sum(mul(layer.forward(inputs[0], rng: &r, training: true), Variable(weights)))
        }
        XCTAssertLessThan(GradientCheck.maxRelativeError(inputs: [x, dora.magnitude], epsilon: 1e-2, loss: loss), 2e-3)
        // A and B: compare with the closed form under a frozen norm, g ⊙ (x·Wᵀ + s·x·(BA)ᵀ) + b.
        let g = Tensor.div(dora.magnitude.value, dora.weightNorm())
        func frozen(_ inputs: [Variable]) -> Variable {
            let direction = add(linear(x, weight: layer.weight), linear(scale(linear(x, weight: inputs[0]), by: lora.scaling), weight: inputs[1]))
            return sum(mul(add(mul(direction, Variable(g)), layer.bias!), Variable(weights)))
        }
        for v in [x, lora.a, lora.b, dora.magnitude] { v.zeroGrad() }
        loss([x]).backward()
        let (ga, gb) = (try XCTUnwrap(lora.a.grad), try XCTUnwrap(lora.b.grad))
        let a2 = Variable(lora.a.value, requiresGrad: true), b2 = Variable(lora.b.value, requiresGrad: true)
        XCTAssertLessThan(GradientCheck.maxRelativeError(inputs: [a2, b2], epsilon: 1e-2, loss: frozen), 2e-3)
        a2.zeroGrad(); b2.zeroGrad()
        frozen([a2, b2]).backward()
        XCTAssertLessThan(maxAbsDifference(ga, a2.grad!), 1e-4)
        XCTAssertLessThan(maxAbsDifference(gb, b2.grad!), 1e-4)
    }

    /// DoRA over a Q4_1 or Q8_0 base equals DoRA over its dequantised weights (forward, inference product, input and
    /// adapter gradients, merge); the base stays quantized until merged.
    func testDoRAOnQuantizedBase() throws {
        for quantize in [quantizeQ4_1, quantizeQ8_0] {
            var rng = RandomGenerator(seed: 4)
            let q = try quantize(rng.normal([48, 64]))
            let bias = rng.normal([48])
            let quantized = try AdaptedLinear(path: "proj", quantizedWeight: q, bias: Variable(bias))
            let dense = AdaptedLinear(path: "proj", weight: Variable(q.dequantized()), bias: Variable(bias))
            let (a, b) = (rng.normal([4, 64], std: 0.2), rng.normal([48, 4], std: 0.2))
            var branches: [DoRABranch] = []
            for layer in [quantized, dense] {
                let lora = try LoRABranch(a: Variable(a, requiresGrad: true), b: Variable(b, requiresGrad: true), alpha: 8, useRSLoRA: false, dropout: 0)
                let dora = try DoRABranch.initialize(lora: lora, layer: layer)
                branches.append(dora)
                try layer.addAdapter("default", dora)
            }
            XCTAssertTrue(quantized.isQuantized)
            let x = rng.normal([20, 64])
            let xq = Variable(x, requiresGrad: true), xd = Variable(x, requiresGrad: true)
            var r = RandomGenerator(seed: 0)
            let yq = quantized.forward(xq, rng: &r, training: true), yd = dense.forward(xd, rng: &r, training: true)
            XCTAssertLessThan(relativeDifference(yq.value, yd.value), 1e-5, q.type.name)
            let seed = rng.normal(yq.shape)
            yq.backward(seed: seed); yd.backward(seed: seed)
            XCTAssertLessThan(relativeDifference(xq.grad!, xd.grad!), 1e-5)
            XCTAssertLessThan(relativeDifference(branches[0].magnitude.grad!, branches[1].magnitude.grad!), 1e-5)
            XCTAssertLessThan(relativeDifference(branches[0].b.grad!, branches[1].b.grad!), 1e-5)
            XCTAssertTrue(quantized.isQuantized, "training keeps the base quantized")
            for rows in [1, 20] {
                var out = [Float](repeating: 0, count: rows * 48)
                x.withUnsafeBufferPointer { px in out.withUnsafeMutableBufferPointer { quantized.apply(x: px.baseAddress!, rows: rows, out: $0.baseAddress!) } }
                let expected = Array(yd.value.array.prefix(rows * 48))
                XCTAssertLessThan(relativeDifference(Tensor(out, shape: [rows, 48]), Tensor(expected, shape: [rows, 48])), 1e-5, "rows \(rows)")
            }
            PEFTDiagnostics.warn = { _ in }
            try quantized.merge(); try dense.merge()
            XCTAssertLessThan(relativeDifference(quantized.weight.value, dense.weight.value), 1e-6)
        }
    }

    func testDoRARefusedWherePEFTRefusesIt() throws {
        let model = try loadBase()
        try AdapterFiles.loadLoRA(into: model, from: adapterURL, as: "dora")
        XCTAssertThrowsError(try model.withAdapterNames(["dora", "__base__"]) { }) { e in
            guard case let PEFTError.doraUnsupported(adapter, module, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(adapter, "dora"); XCTAssertEqual(module, "model.layers.0.self_attn.q_proj")
        }
        var object = try LoRAConfig.load(from: adapterURL.appendingPathComponent(AdapterFiles.configName)).jsonObject(peftType: "ADALORA")
        object["init_r"] = .number(4); object["target_r"] = .number(2); object["total_step"] = .number(10)
        XCTAssertThrowsError(try AdaLoRAConfig(json: object)) { e in XCTAssertTrue("\(e)".contains("DoRA"), "\(e)") }
    }
}

extension MergedModelWriterTests {
    /// `lorakit merge` of a PEFT DoRA adapter writes PEFT's merged state dict (≤ 1e-5 relative per tensor).
    func testMergedDoRAEqualsPEFTMergedStateDict() throws {
        let out = directory.appendingPathComponent("dora")
        let summary = try MergedModelWriter.merge(model: base, adapter: Fixtures.url("peft/llama_dora/adapter"), to: out)
        XCTAssertEqual(summary.mergedModules.count, 4)
        let ours = try SafeTensorsFile(contentsOf: out.appendingPathComponent("model.safetensors"))
        let peft = try SafeTensorsFile(contentsOf: Fixtures.url("peft/llama_dora/merged.safetensors"))
        for name in ours.names { XCTAssertLessThan(relativeDifference(try ours.tensor(name), try peft.tensor(name)), 1e-5, name) }
    }
}
