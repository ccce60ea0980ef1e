// AdapterWeights: PEFT adapter directories read without a base model. ΔW = s·B·A must equal both a direct
// computation from the raw tensors and PEFT's own merged weights minus the base (LoRA, rsLoRA, AdaLoRA);
// malformed directories give typed errors naming the module.
import Foundation
import XCTest
import TensorCore
import Formats
import Analysis
import TestSupport

final class AdapterWeightsTests: XCTestCase {
    /// max |(merged − base) − ΔW| over every adapted module: PEFT's merge is the ground truth for ΔW.
    private func checkAgainstMerge(_ fixture: String, base: String, expectedScaling: Double, file: StaticString = #filePath,
                                   line: UInt = #line) throws -> AdapterWeights {
        let adapter = try AdapterWeights.load(from: Fixtures.url("peft/\(fixture)/adapter"))
        let merged = try SafeTensorsFile(contentsOf: Fixtures.url("peft/\(fixture)/merged.safetensors"))
        let baseFile = try SafeTensorsFile(contentsOf: Fixtures.url("peft/\(base)/model.safetensors"))
        for module in adapter.modules {
            XCTAssertEqual(module.scaling, expectedScaling, accuracy: 1e-12, module.path, file: file, line: line)
            let w0 = try baseFile.tensor(module.path + ".weight"), w1 = try merged.tensor(module.path + ".weight")
            let mergedDelta = Tensor(zip(w1.array, w0.array).map { $0 - $1 }, shape: w0.shape)
            XCTAssertEqual(module.deltaShape, w0.shape, file: file, line: line)
            XCTAssertLessThan(maxAbsDifference(module.deltaWeight(), mergedDelta), 1e-6, module.path, file: file, line: line)
        }
        return adapter
    }

    func testLlamaLoRAModulesScalingAndDeltaMatchDirectComputationAndMerge() throws {
        let adapter = try checkAgainstMerge("llama_lora", base: "base_llama", expectedScaling: 2)   // α/r = 8/4
        XCTAssertEqual(adapter.modulePaths, ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj",
                                             "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"])
        XCTAssertEqual(adapter.peftType, "LORA")
        XCTAssertTrue(adapter.ignoredTensors.isEmpty)
        // Direct computation from the raw file: ΔW = 2·B·A in Double.
        let raw = try SafeTensorsFile(contentsOf: Fixtures.url("peft/llama_lora/adapter/adapter_model.safetensors"))
        for module in adapter.modules {
            let a = try raw.tensor("base_model.model.\(module.path).lora_A.weight")
            let b = try raw.tensor("base_model.model.\(module.path).lora_B.weight")
            XCTAssertEqual(module.rank, 4)
            XCTAssertLessThan(maxAbsDifference(module.deltaWeight(), referenceProduct(b, a, scaling: 2)), 1e-6)
        }
        XCTAssertEqual(adapter.module("model.layers.0.self_attn.v_proj")?.deltaShape, [32, 64])
    }

    func testMLPLoRADeltaMatchesMerge() throws {
        let adapter = try checkAgainstMerge("mlp_lora", base: "base_mlp", expectedScaling: 2)
        XCTAssertEqual(adapter.modules.map(\.deltaShape), [[32, 16], [8, 32]])
        let raw = try SafeTensorsFile(contentsOf: Fixtures.url("peft/mlp_lora/adapter/adapter_model.safetensors"))
        let a = try raw.tensor("base_model.model.2.lora_A.weight"), b = try raw.tensor("base_model.model.2.lora_B.weight")
        XCTAssertLessThan(maxAbsDifference(adapter.modules[1].deltaWeight(), referenceProduct(b, a, scaling: 2)), 1e-6)
    }

    func testRSLoRAAndAdaLoRAScalingsMatchMerge() throws {
        _ = try checkAgainstMerge("llama_rslora", base: "base_llama", expectedScaling: 4)   // α/√r = 8/2
        // AdaLoRA: ΔW = B·diag(λ)·A · α/(init_r + 1e-5) with init_r = 6; pruned modules keep rank 0.
        let ada = try checkAgainstMerge("llama_adalora", base: "base_llama", expectedScaling: 8 / (6 + 1e-5))
        XCTAssertEqual(ada.peftType, "ADALORA")
        XCTAssertEqual(ada.modules.map(\.rank), [0, 5, 0, 3])
        let spectra = try Spectrum.of(adapter: ada)
        XCTAssertEqual(spectra.map(\.numericalRank), [0, 5, 0, 3])
    }

    func testMalformedAdapterDirectoriesGiveTypedErrors() throws {
        let root = try temporaryDirectory(self, "adapters")
        let config = loraConfigJSON(r: 2, alpha: 4, targets: ["q_proj"])
        let key = "base_model.model.layers.0.q_proj"

        let noB = root.appendingPathComponent("no_b")
        try writeAdapter(to: noB, config: config, tensors: [("\(key).lora_A.weight", randomMatrix(2, 8, seed: 1))])
        XCTAssertEqual(analysisError { _ = try AdapterWeights.load(from: noB) },
                       .incompleteModule(module: "layers.0.q_proj", missing: "lora_B", file: noB.appendingPathComponent("adapter_model.safetensors").path))

        var bad = randomMatrix(2, 8, seed: 2)
        bad.withUnsafeMutableBufferPointer { $0[5] = .nan }
        let nan = root.appendingPathComponent("nan")
        try writeAdapter(to: nan, config: config, tensors: [("\(key).lora_A.weight", bad), ("\(key).lora_B.weight", randomMatrix(6, 2, seed: 3))])
        XCTAssertEqual(analysisError { _ = try AdapterWeights.load(from: nan) }, .nonFinite(module: "layers.0.q_proj", tensor: "lora_A", index: 5))

        // The config says r = 2 (rank_pattern gives this module 3) but the file holds rank-2 factors.
        let mismatch = root.appendingPathComponent("mismatch")
        try writeAdapter(to: mismatch, config: loraConfigJSON(r: 2, alpha: 4, targets: ["q_proj"], rankPattern: "{\"q_proj\": 3}"),
                         tensors: [("\(key).lora_A.weight", randomMatrix(2, 8, seed: 4)), ("\(key).lora_B.weight", randomMatrix(6, 2, seed: 5))])
        guard case let .inconsistentModule(module, reason)? = analysisError({ _ = try AdapterWeights.load(from: mismatch) }) else { return XCTFail() }
        XCTAssertEqual(module, "layers.0.q_proj"); XCTAssertTrue(reason.contains("r = 3"), reason)

        let empty = root.appendingPathComponent("empty")
        try writeAdapter(to: empty, config: config, tensors: [("base_model.model.score.weight", randomMatrix(2, 2, seed: 6))])
        XCTAssertEqual(analysisError { _ = try AdapterWeights.load(from: empty) },
                       .noModules(file: empty.appendingPathComponent("adapter_model.safetensors").path))

        let missing = root.appendingPathComponent("missing")
        guard case .file? = analysisError({ _ = try AdapterWeights.load(from: missing) }) else { return XCTFail() }
    }

    func testKeysWithAdapterNameAndEmbeddingsAreGroupedPerModule() throws {
        let directory = try temporaryDirectory(self, "keys")
        let a = randomMatrix(2, 10, seed: 7), b = randomMatrix(4, 2, seed: 8)
        let ea = randomMatrix(2, 12, seed: 9), eb = randomMatrix(5, 2, seed: 10)
        try writeAdapter(to: directory, config: loraConfigJSON(r: 2, alpha: 2, targets: ["fc", "embed"]), tensors: [
            ("base_model.model.net.fc.lora_A.default.weight", a), ("base_model.model.net.fc.lora_B.default.weight", b),
            ("base_model.model.embed.lora_embedding_A", ea), ("base_model.model.embed.lora_embedding_B", eb),
            ("base_model.model.net.fc.bias", Tensor(zeros: [4])),
        ])
        let adapter = try AdapterWeights.load(from: directory)
        XCTAssertEqual(adapter.modulePaths, ["embed", "net.fc"])
        XCTAssertEqual(adapter.ignoredTensors, ["base_model.model.net.fc.bias"])
        let embed = adapter.module("embed")!
        // PEFT adds (s·B·A)ᵀ [vocab, dim] to an embedding weight.
        XCTAssertTrue(embed.isEmbedding)
        XCTAssertEqual(embed.deltaShape, [12, 5])
        XCTAssertLessThan(maxAbsDifference(embed.deltaWeight(), referenceProduct(eb, ea, scaling: 1).transposed()), 1e-6)
        // Its SVD is in the same (transposed) layout.
        XCTAssertLessThan(maxAbsDifference(try embed.deltaSVD().reconstructed(), embed.deltaWeight()), 1e-5)
    }
}
