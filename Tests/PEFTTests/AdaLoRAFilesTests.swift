import XCTest
import TensorCore
import Autograd
import Formats
import PEFT
import TestSupport

final class AdaLoRAFilesTests: XCTestCase {
    let adapterDir = Fixtures.url("peft/llama_adalora/adapter")
    let q0 = "model.layers.0.self_attn.q_proj", v0 = "model.layers.0.self_attn.v_proj"
    let q1 = "model.layers.1.self_attn.q_proj", v1 = "model.layers.1.self_attn.v_proj"

    func temporaryDirectory() -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorakit-adalora-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// Issue 5, item 5: PEFT's pruned adapter loads with the final ranks of its training run (steps.json).
    func testFixtureLoadsWithPEFTFinalRanks() throws {
        let model = try LlamaProjections()
        let loaded = try AdapterFiles.load(into: model, from: adapterDir)
        guard case .adalora(let config) = loaded else { return XCTFail("expected an AdaLoRA config") }
        XCTAssertEqual(model.adaLoRARanks(), [q0: 0, v0: 5, q1: 0, v1: 3])
        // The same numbers PEFT logged after its last training step.
        let steps = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("peft/llama_adalora/steps.json"))) as? [[String: Any]])
        let last = try XCTUnwrap(steps.last?["ranks"] as? [String: Int])
        let logged = Dictionary(uniqueKeysWithValues: last.map { (String($0.key.dropLast(".lora_E.default".count)), $0.value) })
        XCTAssertEqual(model.adaLoRARanks(), logged)
        XCTAssertEqual(steps.compactMap { ($0["ranks"] as? [String: Int])?.values.reduce(0, +) }, [14, 10, 8, 8, 8])
        for (_, branch) in model.adaLoRABranches() {
            XCTAssertEqual(branch.ranknum, 6)  // init_r, as PEFT restores it
            XCTAssertEqual(branch.scaling, 8)
        }
        XCTAssertEqual(config.rankPattern?.count, 4)
        // Only q and v are adapted; k and o untouched.
        XCTAssertTrue(model.adaptedLinears.filter { $0.path.hasSuffix("k_proj") || $0.path.hasSuffix("o_proj") }.allSatisfy { $0.adapters.isEmpty })
    }

    /// The pruned tensors are PEFT's in-memory `full.*` tensors with the masked triplets removed; the masked E
    /// entries were 0; `ranknum` was init_r; and base + ΔW equals PEFT's merge_and_unload weights.
    func testPrunedTensorsAgreeWithFullTensorsAndMergedWeights() throws {
        let model = try LlamaProjections()
        let config = try AdapterFiles.loadAdaLoRA(into: model, from: adapterDir)
        let io = try SafeTensorsFile(contentsOf: Fixtures.url("peft/llama_adalora/io.safetensors"))
        let merged = try SafeTensorsFile(contentsOf: Fixtures.url("peft/llama_adalora/merged.safetensors"))
        var rng = RandomGenerator(seed: 1)
        let x = rng.normal([7, 64])
        for (path, branch) in model.adaLoRABranches() {
            let mask = try XCTUnwrap(config.rankPattern?[path + ".lora_E"])
            let full = { (name: String) in try io.tensor("full.\(path).\(name).default") }
            XCTAssertEqual(try full("ranknum").array, [6])
            let fullBranch = try AdaLoRABranch(a: Variable(try full("lora_A")), e: Variable(try full("lora_E")), b: Variable(try full("lora_B")),
                                               scaling: 8, ranknum: 6, dropout: 0)
            for (t, keep) in mask.enumerated() where !keep { XCTAssertEqual(fullBranch.e.value[flat: t], 0, "\(path) E[\(t)]") }
            let expected = try fullBranch.keeping(mask)
            XCTAssertEqual(branch.a.value, expected.a.value, path)
            XCTAssertEqual(branch.e.value, expected.e.value, path)
            XCTAssertEqual(branch.b.value, expected.b.value, path)
            XCTAssertLessThan(maxAbsDifference(branch.deltaWeight(), fullBranch.deltaWeight()), 1e-7)
            // The kept v_proj triplets carry a real update (max |ΔW| ≈ 4e-3), so the merge check below can fail.
            if branch.rank > 0 { XCTAssertGreaterThan(branch.deltaWeight().array.map(abs).max()!, 1e-3) }
            var r = RandomGenerator(seed: 0)
            XCTAssertLessThan(maxAbsDifference(branch.forward(Variable(x), rng: &r, training: false).value,
                                               fullBranch.forward(Variable(x), rng: &r, training: false).value), 1e-6)
        }
        let before = model.outputs(x)
        try model.mergeAdapters()
        for layer in model.adaptedLinears {
            XCTAssertLessThan(maxAbsDifference(layer.weight.value, try merged.tensor(layer.path + ".weight")), 1e-7, layer.path)
        }
        XCTAssertLessThan(maxAbsDifference(model.outputs(x), before), 1e-5)
        // The pruned-to-zero q modules merge to the base weight exactly.
        let base = try SafeTensorsFile(contentsOf: Fixtures.url("peft/base_llama/model.safetensors"))
        XCTAssertEqual(model.linear(at: q0)!.weight.value, try base.tensor(q0 + ".weight"))
    }

    /// Saving a trained (unpruned) adapter slices every tensor to its mask: A (Σmask, in), E (Σmask, 1),
    /// B (out, Σmask), zero-size for rank 0, no ranknum; reloading gives identical outputs.
    func testSaveSlicesToRankPatternAndReloadIsIdentical() throws {
        let model = try LlamaProjections()
        var rng = RandomGenerator(seed: 5)
        var config = AdaLoRAConfig(initR: 6, targetR: 2, tinit: 0, tfinal: 1, totalStep: 5, targetModules: .names(["q_proj", "v_proj"]))
        config.lora.initialization = .random
        config.lora.taskType = nil
        try model.addAdaLoRA(config, rng: &rng)
        let allocator = try RankAllocator(model: model, config: config)
        fillGradients(allocator.modules, rng: &rng)
        try allocator.update(step: 4)  // the fixing step: masks to b(T) = 8
        // Force one module to rank 0 (all pruned is legal) by re-masking with an explicit pattern.
        var pattern = try XCTUnwrap(allocator.config.rankPattern)
        let dropped = pattern[q1 + ".lora_E"]!.filter { $0 }.count
        pattern[q1 + ".lora_E"] = [Bool](repeating: false, count: 6)
        allocator.applyRankPattern(pattern)
        var saved = allocator.config
        saved.rankPattern = pattern
        let x = rng.normal([3, 64])
        let expected = model.outputs(x)
        let dir = temporaryDirectory()
        try AdapterFiles.saveAdaLoRA(model, config: saved, to: dir)

        let file = try SafeTensorsFile(contentsOf: dir.appendingPathComponent("adapter_model.safetensors"))
        XCTAssertEqual(file.metadata, ["format": "pt"])
        XCTAssertEqual(file.names.count, 12)
        XCTAssertFalse(file.names.contains { $0.contains("ranknum") || $0.hasSuffix(".weight") })
        for path in [q0, v0, q1, v1] {
            let kept = pattern[path + ".lora_E"]!.filter { $0 }.count
            let out = model.linear(at: path)!.outFeatures
            XCTAssertEqual(try file.info("base_model.model.\(path).lora_A").shape, [kept, 64])
            XCTAssertEqual(try file.info("base_model.model.\(path).lora_E").shape, [kept, 1])
            XCTAssertEqual(try file.info("base_model.model.\(path).lora_B").shape, [out, kept])
        }
        XCTAssertEqual(try file.info("base_model.model.\(q1).lora_A").shape, [0, 64])
        XCTAssertEqual(pattern.values.reduce(0) { $0 + $1.filter { $0 }.count }, 8 - dropped)

        let reloaded = try LlamaProjections()
        let config2 = try AdapterFiles.loadAdaLoRA(into: reloaded, from: dir)
        XCTAssertEqual(config2.rankPattern, pattern)
        XCTAssertEqual(reloaded.adaLoRARanks()[q1], 0)
        // Relative: the sliced products sum in another order (and with other BLAS kernels on other CPUs).
        XCTAssertLessThan(maxAbsDifference(reloaded.outputs(x), expected) / max(expected.array.map(abs).max()!, 1e-30), 1e-6)
        // Saving the pruned model again writes the same tensors (already at Σmask: left as they are).
        let again = temporaryDirectory()
        try AdapterFiles.saveAdaLoRA(reloaded, config: config2, to: again)
        let file2 = try SafeTensorsFile(contentsOf: again.appendingPathComponent("adapter_model.safetensors"))
        for name in file.names { XCTAssertEqual(try file2.tensor(name), try file.tensor(name), name) }
        // Without a pattern (allocation never ran) the full init_r tensors are written, like PEFT.
        var unallocated = config
        unallocated.rankPattern = nil
        let full = temporaryDirectory()
        try AdapterFiles.saveAdaLoRA(model, config: unallocated, to: full)
        XCTAssertEqual(try SafeTensorsFile(contentsOf: full.appendingPathComponent("adapter_model.safetensors")).info("base_model.model.\(q0).lora_A").shape, [6, 64])
    }

    /// A config whose rank_pattern disagrees with the tensors, an unknown pattern key, or a missing tensor is a clear
    /// error, and the model is left without a half-loaded adapter.
    func testInconsistentAdapterFilesAreRejected() throws {
        let original = try JSONValue.parseObject(Data(contentsOf: adapterDir.appendingPathComponent("adapter_config.json")), source: "fixture")
        func variant(_ edit: (inout [String: JSONValue]) -> Void) throws -> URL {
            let dir = temporaryDirectory()
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: adapterDir.appendingPathComponent("adapter_model.safetensors"),
                                             to: dir.appendingPathComponent("adapter_model.safetensors"))
            var object = original
            edit(&object)
            try JSONValue.serialize(object).write(to: dir.appendingPathComponent("adapter_config.json"))
            return dir
        }
        func setMask(_ key: String, _ mask: [Bool]) -> (inout [String: JSONValue]) -> Void {
            { o in
                var rp = o["rank_pattern"]!.objectValue!
                rp[key] = .array(mask.map(JSONValue.bool))
                o["rank_pattern"] = .object(rp)
            }
        }
        let cases: [(URL, String)] = [
            (try variant(setMask(v0 + ".lora_E", [true, true, true, true, true, true])), "keeps 6 of 6 triplets"),
            (try variant(setMask(q0 + ".lora_E", [true, false, false, false, false, false])), "\(q0)' keeps 1 of 6"),
            (try variant(setMask("model.layers.9.self_attn.q_proj.lora_E", [Bool](repeating: true, count: 6))), "names no adapted module"),
            (try variant(setMask(v1 + ".lora_E", [true, true])), "init_r is 6"),
            (try variant { $0["rank_pattern"] = .null }, "expected shape [6, 64], got [0, 64]"),
            (try variant { $0["target_modules"] = .array([.string("q_proj"), .string("v_proj"), .string("k_proj")]) }, "missing tensor"),
            (try variant { $0["tinit"] = .number(6) }, "budgeting phase"),
        ]
        for (dir, message) in cases {
            let model = try LlamaProjections()
            XCTAssertThrowsError(try AdapterFiles.loadAdaLoRA(into: model, from: dir)) { e in
                XCTAssertTrue("\(e)".contains(message), "'\(e)' lacks '\(message)'")
            }
            XCTAssertTrue(model.adaptedLinears.allSatisfy { $0.adapters.isEmpty })
        }
        XCTAssertThrowsError(try AdapterFiles.loadAdaLoRA(into: try LlamaProjections(), from: temporaryDirectory())) { e in
            XCTAssertTrue("\(e)".contains("not found"))
        }
        // The generic loader refuses LoRA-only readers for AdaLoRA data and vice versa, by peft_type.
        XCTAssertThrowsError(try AdapterFiles.loadAdaLoRA(into: try LlamaProjections(), from: Fixtures.url("peft/llama_lora/adapter"))) { e in
            XCTAssertTrue("\(e)".contains("ADALORA"), "\(e)")
        }
        guard case .lora = try AdapterFiles.load(into: try LlamaProjections(), from: Fixtures.url("peft/llama_lora/adapter")) else {
            return XCTFail("expected LoRA")
        }
    }
}
