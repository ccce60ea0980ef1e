// Issue 14: weighted adapter combination against PEFT's add_weighted_adapter (fixture peft/breadth, made by
// scripts/reference/make_peft_breadth_fixtures.py), the Eckart–Young error of svd, typed errors for adapters that
// do not combine, and mixed-adapter batches (PEFT's adapter_names) equal to single-adapter runs.
import XCTest
import TensorCore
import Autograd
import Formats
import PEFT
import Models
import TestSupport

final class AdapterCombinationTests: XCTestCase {
    let combos = Fixtures.url("peft/breadth/combos.safetensors")
    func source(_ name: String) -> URL { Fixtures.url("peft/breadth/sources/\(name)") }
    func loadBase() throws -> LlamaModel { try ModelLoader.load(Fixtures.url("peft/base_llama")).model }
    func input(_ file: SafeTensorsFile) throws -> [[Int32]] {
        let ids = try file.int32s("input")
        return (0..<3).map { Array(ids[($0 * 8)..<(($0 + 1) * 8)]) }
    }
    func sources(_ pairs: [(String, Double)]) throws -> [CombinationSource] {
        try pairs.map { CombinationSource(name: $0.0, weight: $0.1, adapter: try LoRAAdapterMatrices.load(from: source($0.0))) }
    }

    /// Every method gives PEFT's logits; cat / linear / ties / magnitude_prune also PEFT's exact A and B, svd its ΔW.
    func testCombinationsMatchPEFT() throws {
        let file = try SafeTensorsFile(contentsOf: combos)
        let ids = try input(file)
        let cases: [(String, [(String, Double)], AdapterCombinationMethod, Int?, Double?)] = [
            ("cat", [("a", 0.7), ("b", 0.3)], .cat, nil, nil), ("linear", [("a", 0.7), ("b", 0.3)], .linear, nil, nil),
            ("svd", [("a", 0.7), ("b", 0.3)], .svd, 6, nil), ("svd_ac", [("a", 1.0), ("c", -0.5)], .svd, 3, nil),
            ("cat_ac", [("a", 1.0), ("c", -0.5)], .cat, nil, nil), ("ties", [("a", 0.7), ("b", 0.3)], .ties, nil, 0.5),
            ("magnitude_prune", [("a", 0.7), ("b", 0.3)], .magnitudePrune, nil, 0.5),
        ]
        for (name, pairs, method, rank, density) in cases {
            let result = try WeightedAdapterCombination.combine(try sources(pairs), method: method, rank: rank, density: density)
            XCTAssertEqual(result.adapter.config.r, Int(result.adapter.config.loraAlpha), name)
            for m in result.adapter.modules {
                let (a, b) = (try file.tensor("\(name).\(m.path).lora_A"), try file.tensor("\(name).\(m.path).lora_B"))
                XCTAssertEqual(m.a.shape, a.shape, name); XCTAssertEqual(m.b.shape, b.shape, name)
                if method == .svd {  // singular vectors are unique only up to sign: compare the product
                    XCTAssertLessThan(relativeDifference(m.delta, Tensor.matmul(b, a)), 1e-5, "\(name) \(m.path)")
                } else {
                    XCTAssertLessThan(relativeDifference(m.a, a), 1e-6, "\(name) \(m.path) A")
                    XCTAssertLessThan(relativeDifference(m.b, b), 1e-6, "\(name) \(m.path) B")
                }
            }
            let dir = try temporaryDirectory(self, "combo-\(name)")
            try result.adapter.save(to: dir)
            let model = try loadBase()
            try AdapterFiles.loadLoRA(into: model, from: dir)
            XCTAssertLessThan(relativeDifference(try model.logits(ids: ids), try file.tensor("\(name).logits")), 1e-5, name)
        }
    }

    /// cat is the exact weighted sum of the deltas; svd's error is Eckart–Young's √(Σ_{j>k} σ_j²) and vanishes at
    /// full rank; the model-level API gives the same adapter as the file-level one.
    func testCatIsExactAndSVDReportsEckartYoungError() throws {
        let srcs = try sources([("a", 0.7), ("b", 0.3)])
        let cat = try WeightedAdapterCombination.combine(srcs, method: .cat)
        for m in cat.adapter.modules {
            var expected = Tensor(zeros: m.delta.shape)
            for s in srcs { expected.addScaled(s.adapter.module(m.path)!.delta, alpha: Float(s.weight)) }
            XCTAssertLessThan(relativeDifference(m.delta, expected), 1e-6)
            let full = try WeightedAdapterCombination.combine(srcs, method: .svd, rank: 8)  // ranks 4 + 4: D has rank ≤ 8
            XCTAssertLessThan(relativeDifference(full.adapter.module(m.path)!.delta, expected), 1e-5)
            XCTAssertLessThan(full.truncationErrors.first { $0.module == m.path }!.frobenius / full.truncationErrors[0].norm, 1e-5)
            let low = try WeightedAdapterCombination.combine(srcs, method: .svd, rank: 2)
            let error = low.truncationErrors.first { $0.module == m.path }!
            var residual = expected
            residual.addScaled(low.adapter.module(m.path)!.delta, alpha: -1)
            XCTAssertEqual(residual.l2Norm(), error.frobenius, accuracy: 1e-4 * error.norm)
            XCTAssertGreaterThan(error.frobenius, 0)
        }
        let model = try loadBase()
        var configs: [String: LoRAConfig] = [:]
        for n in ["a", "b"] { configs[n] = try AdapterFiles.loadLoRA(into: model, from: source(n), as: n) }
        let inModel = try model.addWeightedAdapter([("a", 0.7, configs["a"]!), ("b", 0.3, configs["b"]!)], as: "ab", method: .cat)
        XCTAssertEqual(inModel.adapter.modules.map(\.a), cat.adapter.modules.map(\.a))
        try model.setActiveAdapters(["ab"])
        let file = try SafeTensorsFile(contentsOf: combos)
        XCTAssertLessThan(relativeDifference(try model.logits(ids: try input(file)), try file.tensor("cat.logits")), 1e-5)
        XCTAssertThrowsError(try model.addWeightedAdapter([("a", 1, configs["a"]!), ("zzz", 1, configs["a"]!)], as: "new", method: .cat)) { e in
            XCTAssertEqual(e as? PEFTError, .unknownAdapter("zzz", available: ["a", "b", "ab"]))
        }
    }

    func testDAREKeepsTheExpectationAndDensityOneIsLinear() throws {
        let srcs = try sources([("a", 0.7), ("b", 0.3)])
        let linear = try WeightedAdapterCombination.combine(srcs, method: .linear)
        let dense = try WeightedAdapterCombination.combine(srcs, method: .dareLinear, density: 1)
        XCTAssertEqual(dense.adapter.modules.map(\.a), linear.adapter.modules.map(\.a))
        // Averaged over seeds, DARE's rescaled random masks reproduce the linear combination.
        let path = linear.adapter.modules[0].path
        var mean = Tensor(zeros: linear.adapter.modules[0].a.shape)
        let draws = 200
        for seed in 0..<draws {
            let d = try WeightedAdapterCombination.combine(srcs, method: .dareLinear, density: 0.5, seed: UInt64(seed))
            mean.addScaled(d.adapter.module(path)!.a, alpha: 1 / Float(draws))
        }
        XCTAssertLessThan(relativeDifference(mean, linear.adapter.modules[0].a), 0.25)
        let once = try WeightedAdapterCombination.combine(srcs, method: .dareLinear, density: 0.5, seed: 1).adapter.modules[0].a.array
        let zeros = once.filter { $0 == 0 }.count
        XCTAssertGreaterThan(zeros, 0)
    }

    func testIncompatibleAdaptersAreTypedErrors() throws {
        let a = try LoRAAdapterMatrices.load(from: source("a"))
        var fewer = a; fewer.modules.removeLast()
        XCTAssertThrowsError(try WeightedAdapterCombination.combine([CombinationSource(name: "a", weight: 1, adapter: a),
                                                                     CombinationSource(name: "q-only", weight: 1, adapter: fewer)], method: .cat)) { e in
            XCTAssertEqual(e as? PEFTError, .incompatibleAdapters(first: "a", second: "q-only", module: a.modules.last!.path,
                                                                  reason: "different targets: the module is adapted by 'a' but not by 'q-only'"))
        }
        var other = a
        other.modules[0].a = Tensor(zeros: [4, 32]); other.modules[0].b = Tensor(zeros: [64, 4])
        XCTAssertThrowsError(try WeightedAdapterCombination.combine([CombinationSource(name: "a", weight: 1, adapter: a),
                                                                     CombinationSource(name: "other", weight: 1, adapter: other)], method: .svd)) { e in
            XCTAssertTrue("\(e)".contains("'a' and 'other' at \(a.modules[0].path): different base shapes"), "\(e)")
        }
        let c = try LoRAAdapterMatrices.load(from: source("c"))
        XCTAssertThrowsError(try WeightedAdapterCombination.combine([CombinationSource(name: "a", weight: 1, adapter: a),
                                                                     CombinationSource(name: "c", weight: 1, adapter: c)], method: .linear)) { e in
            XCTAssertTrue("\(e)".contains("linear needs equal ranks"), "\(e)")
        }
        var dora = a; dora.config.useDoRA = true
        XCTAssertThrowsError(try WeightedAdapterCombination.combine([CombinationSource(name: "d", weight: 1, adapter: dora),
                                                                     CombinationSource(name: "a", weight: 1, adapter: a)], method: .cat)) { e in
            guard case PEFTError.doraUnsupported(adapter: "d", module: _, reason: _) = e else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try WeightedAdapterCombination.combine([CombinationSource(name: "a", weight: 1, adapter: a),
                                                                     CombinationSource(name: "a2", weight: 1, adapter: a)], method: .ties)) { e in
            XCTAssertTrue("\(e)".contains("density"), "\(e)")
        }
    }

    /// Three adapters in one batch (one per row) equal three single-adapter runs (≤ 1e-6), through the graph and the
    /// inference path, and PEFT's own mixed batch (a, b, __base__).
    func testMixedAdapterBatchEqualsSingleAdapterRuns() throws {
        let file = try SafeTensorsFile(contentsOf: combos)
        let ids = try input(file)
        let model = try loadBase()
        for n in ["a", "b", "c"] { try AdapterFiles.loadLoRA(into: model, from: source(n), as: n) }
        let names = ["a", "b", "c"]
        var single: [Tensor] = []
        for (row, name) in zip(ids, names) {
            try model.setActiveAdapters([name])
            single.append(try model.logits(ids: [row]))
        }
        let mixed = try model.withAdapterNames(names) { try model.logits(ids: ids) }
        for i in 0..<3 {
            let rowLogits = Tensor(Array(mixed.array[(i * 8 * 256)..<((i + 1) * 8 * 256)]), shape: [1, 8, 256])
            XCTAssertLessThan(maxAbsDifference(rowLogits, single[i]), 1e-6, names[i])
            XCTAssertLessThan(relativeDifference(rowLogits, Tensor(Array(try file.tensor("\(names[i]).logits").array[(i * 2048)..<((i + 1) * 2048)]), shape: [1, 8, 256])), 1e-5)
        }
        let peftMixed = try model.withAdapterNames(["a", "b", "__base__"]) { try model.logits(ids: ids) }
        XCTAssertLessThan(relativeDifference(peftMixed, try file.tensor("mixed.logits")), 1e-5)
        // Inference path: each sequence with its adapter.
        for (row, name) in zip(ids, names) {
            let logits = try model.withAdapterNames([name]) { try model.forward(tokens: row, cache: KVCache(config: model.config), allLogits: true) }
            XCTAssertLessThan(maxAbsDifference(logits.reshaped([1, 8, 256]), single[names.firstIndex(of: name)!]), 1e-5, name)
        }
        XCTAssertThrowsError(try model.withAdapterNames(["a", "nope"]) { }) { e in
            XCTAssertEqual(e as? PEFTError, .unknownAdapter("nope", available: ["a", "b", "c", "__base__"]))
        }
        try model.setActiveAdapters(["a"]); try model.mergeAdapters()
        XCTAssertThrowsError(try model.withAdapterNames(["a", "b"]) { }) { e in XCTAssertTrue("\(e)".contains("merged"), "\(e)") }
    }
}
