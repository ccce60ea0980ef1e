import XCTest
import TensorCore
import Autograd
import LinearAlgebra
import Formats
import PEFT
import TestSupport

/// The fixture MLP: Linear(16,32) → ReLU → Linear(32,8), modules named "0" and "2" as in torch.nn.Sequential.
final class FixtureMLP: AdaptableModel {
    let first: AdaptedLinear, second: AdaptedLinear
    var adaptedLinears: [AdaptedLinear] { [first, second] }

    init(file: URL) throws {
        let f = try SafeTensorsFile(contentsOf: file)
        first = AdaptedLinear(path: "0", weight: Variable(try f.tensor("0.weight")), bias: Variable(try f.tensor("0.bias")))
        second = AdaptedLinear(path: "2", weight: Variable(try f.tensor("2.weight")), bias: Variable(try f.tensor("2.bias")))
    }

    func callAsFunction(_ x: Tensor, training: Bool = false) -> Variable {
        var rng = RandomGenerator(seed: 0)
        return second.forward(relu(first.forward(Variable(x), rng: &rng, training: training)), rng: &rng, training: training)
    }
}

final class LoRALayerTests: XCTestCase {
    let base = Fixtures.url("peft/base_mlp/model.safetensors")

    func io(_ name: String) throws -> SafeTensorsFile { try SafeTensorsFile(contentsOf: Fixtures.url("peft/\(name)/io.safetensors")) }

    /// Issue 2, item 11: PEFT's saved adapter reproduces PEFT's adapted and merged outputs.
    func testPEFTParityMLP() throws {
        let model = try FixtureMLP(file: base)
        let io = try io("mlp_lora")
        let x = try io.tensor("input")
        XCTAssertLessThan(maxAbsDifference(model(x).value, try io.tensor("base_out")), 1e-6)
        let config = try AdapterFiles.loadLoRA(into: model, from: Fixtures.url("peft/mlp_lora/adapter"))
        XCTAssertEqual(config.r, 4)
        XCTAssertEqual((model.first.adapter(named: "default") as? LoRABranch)?.scaling, 2)
        XCTAssertLessThan(maxAbsDifference(model(x).value, try io.tensor("adapted_out")), 1e-5)
        try model.mergeAdapters()
        XCTAssertLessThan(maxAbsDifference(model(x).value, try io.tensor("merged_out")), 1e-5)
        let merged = try SafeTensorsFile(contentsOf: Fixtures.url("peft/mlp_lora/merged.safetensors"))
        XCTAssertLessThan(maxAbsDifference(model.first.weight.value, try merged.tensor("0.weight")), 1e-6)
        model.unmergeAdapters()
        let original = try SafeTensorsFile(contentsOf: base)
        XCTAssertLessThan(maxAbsDifference(model.first.weight.value, try original.tensor("0.weight")), 1e-6)
        XCTAssertLessThan(maxAbsDifference(model(x).value, try io.tensor("adapted_out")), 1e-5)
    }

    func testSaveLoadRoundTripIsExact() throws {
        let model = try FixtureMLP(file: base)
        try AdapterFiles.loadLoRA(into: model, from: Fixtures.url("peft/mlp_lora/adapter"))
        let x = try io("mlp_lora").tensor("input")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorakit-roundtrip-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var config = LoRAConfig(r: 4, loraAlpha: 8, targetModules: .names(["0", "2"]))
        config.taskType = nil
        try AdapterFiles.saveLoRA(model, config: config, to: dir)
        let reloaded = try FixtureMLP(file: base)
        try AdapterFiles.loadLoRA(into: reloaded, from: dir)
        XCTAssertEqual(reloaded(x).value, model(x).value)
        let file = try SafeTensorsFile(contentsOf: dir.appendingPathComponent("adapter_model.safetensors"))
        XCTAssertEqual(file.metadata, ["format": "pt"])
        XCTAssertEqual(file.names.sorted(), ["base_model.model.0.lora_A.weight", "base_model.model.0.lora_B.weight",
                                             "base_model.model.2.lora_A.weight", "base_model.model.2.lora_B.weight"])
        XCTAssertEqual(try file.info("base_model.model.2.lora_B.weight").shape, [8, 4])
    }

    func testDefaultInitIsNoOpWithKaimingBounds() throws {
        let model = try FixtureMLP(file: base)
        var rng = RandomGenerator(seed: 7)
        let x = try io("mlp_lora").tensor("input")
        let before = model(x).value
        try model.addLoRA(LoRAConfig(r: 8, loraAlpha: 16, targetModules: .names(["0", "2"])), rng: &rng)
        XCTAssertEqual(model(x).value, before)
        let branch = try XCTUnwrap(model.first.adapter(named: "default") as? LoRABranch)
        let bound = 1 / Float(16).squareRoot()
        XCTAssertTrue(branch.a.value.array.allSatisfy { abs($0) <= bound })
        XCTAssertGreaterThan(branch.a.value.array.map(abs).max()!, 0.9 * bound)  // fills the interval
        XCTAssertTrue(branch.b.value.array.allSatisfy { $0 == 0 })
    }

    func testGaussianInitStd() throws {
        var rng = RandomGenerator(seed: 3)
        let (branch, _) = try LoRABranch.initialize(weight: Tensor(zeros: [64, 512]), rank: 4, alpha: 8, useRSLoRA: false,
                                                    dropout: 0, method: .gaussian, rng: &rng, module: "m")
        let values = branch.a.value.array
        let std = (values.map { $0 * $0 }.reduce(0, +) / Float(values.count)).squareRoot()
        XCTAssertEqual(std, 0.25, accuracy: 0.01)  // 1/r
    }

    func testPiSSAAndOLoRAKeepOutputAndTakePrincipalPart() throws {
        for method in [LoRAInitialization.pissa(powerIterations: nil), .olora, .pissa(powerIterations: 8)] {
            let model = try FixtureMLP(file: base)
            let x = try io("mlp_lora").tensor("input")
            let before = model(x).value
            let w0 = model.first.weight.value
            var rng = RandomGenerator(seed: 1)
            var config = LoRAConfig(r: 4, loraAlpha: 8, targetModules: .names(["0"]))
            config.initialization = method
            try model.addLoRA(config, rng: &rng)
            XCTAssertLessThan(maxAbsDifference(model(x).value, before), 1e-5, "\(method)")
            // W_res + ΔW == W
            let delta = try XCTUnwrap(model.first.adapter(named: "default")).deltaWeight()
            var sum = model.first.weight.value
            sum.withUnsafeMutableBufferPointer { p in delta.withUnsafeBufferPointer { d in for i in 0..<p.count { p[i] += d[i] } } }
            XCTAssertLessThan(maxAbsDifference(sum, w0), 1e-5)
            if case .pissa = method {
                // s·B·A is the best rank-4 approximation of W (Eckart–Young): it equals the truncated SVD product.
                let best = try lowRankApproximation(w0, rank: 4)
                XCTAssertLessThan(maxAbsDifference(delta, best), method == .pissa(powerIterations: nil) ? 1e-4 : 5e-3)
            }
        }
    }

    func testMergeTwiceWarnsAndSafeMergeRefusesNaN() throws {
        let model = try FixtureMLP(file: base)
        try AdapterFiles.loadLoRA(into: model, from: Fixtures.url("peft/mlp_lora/adapter"))
        var warnings: [String] = []
        let saved = PEFTDiagnostics.warn
        PEFTDiagnostics.warn = { warnings.append($0) }
        defer { PEFTDiagnostics.warn = saved }
        try model.first.merge()
        let once = model.first.weight.value
        try model.first.merge()
        XCTAssertEqual(model.first.weight.value, once)
        XCTAssertEqual(warnings.count, 1)
        model.first.unmerge()
        // A broken adapter: safe merge refuses and leaves the base untouched.
        let branch = try XCTUnwrap(model.second.adapter(named: "default") as? LoRABranch)
        branch.b.value[flat: 0] = .nan
        let w = model.second.weight.value
        XCTAssertThrowsError(try model.second.merge(safe: true)) { e in XCTAssertTrue("\(e)".contains("NaN")) }
        XCTAssertEqual(model.second.weight.value, w)
    }

    func testDisabledAdapterGivesBaseAndDeleteRules() throws {
        let model = try FixtureMLP(file: base)
        try AdapterFiles.loadLoRA(into: model, from: Fixtures.url("peft/mlp_lora/adapter"))
        let io = try io("mlp_lora"), x = try io.tensor("input")
        try model.mergeAdapters()
        model.setAdaptersDisabled(true)  // unmerges first
        XCTAssertLessThan(maxAbsDifference(model(x).value, try io.tensor("base_out")), 1e-6)
        model.setAdaptersDisabled(false)
        XCTAssertLessThan(maxAbsDifference(model(x).value, try io.tensor("adapted_out")), 1e-5)
        try model.mergeAdapters()
        XCTAssertThrowsError(try model.deleteAdapter("default"))
        model.unmergeAdapters()
        XCTAssertThrowsError(try model.deleteAdapter("nope"))
        try model.deleteAdapter("default")
        XCTAssertEqual(model.adapterNames, [])
        XCTAssertLessThan(maxAbsDifference(model(x).value, try io.tensor("base_out")), 1e-6)
    }

    func testTwoActiveAdaptersAddTheirDeltas() throws {
        let model = try FixtureMLP(file: base)
        try AdapterFiles.loadLoRA(into: model, from: Fixtures.url("peft/mlp_lora/adapter"), as: "a")
        try AdapterFiles.loadLoRA(into: model, from: Fixtures.url("peft/mlp_lora/adapter"), as: "b")
        let x = try io("mlp_lora").tensor("input")
        XCTAssertThrowsError(try AdapterFiles.loadLoRA(into: model, from: Fixtures.url("peft/mlp_lora/adapter"), as: "a"))
        try model.setActiveAdapters(["a"])
        let single = model(x).value
        try model.setActiveAdapters(["a", "b"])
        let both = model(x).value
        XCTAssertGreaterThan(maxAbsDifference(single, both), 1e-3)
        // Same as one adapter with B doubled.
        let reference = try FixtureMLP(file: base)
        try AdapterFiles.loadLoRA(into: reference, from: Fixtures.url("peft/mlp_lora/adapter"))
        for l in reference.adaptedLinears { (l.adapter(named: "default") as! LoRABranch).b.value = Tensor.matmul((l.adapter(named: "default") as! LoRABranch).b.value, Tensor([2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2], shape: [4, 4])) }
        XCTAssertLessThan(maxAbsDifference(both, reference(x).value), 1e-5)
    }

    func testLoRABranchGradientMatchesFiniteDifferences() throws {
        var rng = RandomGenerator(seed: 11)
        let w = Variable(rng.normal([6, 5]))
        let layer = AdaptedLinear(path: "l", weight: w)
        let branch = try LoRABranch(a: Variable(rng.normal([3, 5]), requiresGrad: true), b: Variable(rng.normal([6, 3]), requiresGrad: true),
                                    alpha: 6, useRSLoRA: false, dropout: 0)
        try layer.addAdapter("default", branch)
        let x = Variable(rng.normal([4, 5]), requiresGrad: true)
        let error = GradientCheck.maxRelativeError(inputs: [branch.a, branch.b, x]) { _ in
            var r = RandomGenerator(seed: 0)
            return sum(mul(layer.forward(x, rng: &r, training: true), layer.forward(x, rng: &r, training: true)))
        }
        XCTAssertLessThan(error, 2e-3)
        // The frozen base weight received no gradient.
        XCTAssertNil(w.grad)
    }

    func testBadShapesAndRanksAreTypedErrors() throws {
        var rng = RandomGenerator(seed: 0)
        XCTAssertThrowsError(try LoRABranch.initialize(weight: Tensor(zeros: [4, 4]), rank: 0, alpha: 1, useRSLoRA: false, dropout: 0, method: .standard, rng: &rng, module: "m"))
        XCTAssertThrowsError(try LoRABranch.initialize(weight: Tensor(zeros: [4, 3]), rank: 5, alpha: 1, useRSLoRA: false, dropout: 0, method: .pissa(powerIterations: nil), rng: &rng, module: "m")) { e in
            XCTAssertTrue("\(e)".contains("m"), "\(e)")
        }
        let model = try FixtureMLP(file: base)
        XCTAssertThrowsError(try model.addLoRA(LoRAConfig(r: 2, targetModules: .names(["q_proj"])), rng: &rng)) { e in
            XCTAssertTrue("\(e)".contains("matched no module"), "\(e)")
        }
        // An adapter whose shapes do not fit this model.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorakit-bad-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Fixtures.url("peft/mlp_lora/adapter/adapter_config.json"), to: dir.appendingPathComponent("adapter_config.json"))
        try SafeTensorsWriter.write([.float("base_model.model.0.lora_A.weight", Tensor(zeros: [4, 15])),
                                     .float("base_model.model.0.lora_B.weight", Tensor(zeros: [32, 4])),
                                     .float("base_model.model.2.lora_A.weight", Tensor(zeros: [4, 32])),
                                     .float("base_model.model.2.lora_B.weight", Tensor(zeros: [8, 4]))],
                                    metadata: ["format": "pt"], to: dir.appendingPathComponent("adapter_model.safetensors"))
        XCTAssertThrowsError(try AdapterFiles.loadLoRA(into: model, from: dir)) { e in
            XCTAssertTrue("\(e)".contains("base_model.model.0.lora_A.weight"), "\(e)")
        }
        XCTAssertEqual(model.adapterNames, [])  // nothing attached from a bad file
    }
}
