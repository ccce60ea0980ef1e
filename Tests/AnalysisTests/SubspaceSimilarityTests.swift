// φ(i, j) = ‖U₁[:, :i]ᵀ U₂[:, :j]‖²_F / min(i, j): exactly 1 for a subspace against itself, a closed form for a
// constructed rotation, the expected max(i, j)/n for independent random subspaces, heatmaps with one cell per
// (i, j), and typed errors for adapters that cannot be compared.
import Foundation
import XCTest
import TensorCore
import LinearAlgebra
import Analysis
import TestSupport

final class SubspaceSimilarityTests: XCTestCase {
    func testSubspaceAgainstItselfIsOneEverywhere() throws {
        let adapter = try AdapterWeights.load(from: Fixtures.url("peft/llama_lora/adapter"))
        for source in SubspaceSource.allCases {
            let result = try AdapterSimilarity.compare(adapter, adapter, source: source)
            XCTAssertEqual(result.modules.count, 4)
            for module in result.modules {
                XCTAssertEqual(module.phi.count, 4)
                // U[:, :i] ⊂ span U[:, :j] for i ≤ j, so ‖·‖²_F = min(i, j): φ = 1 on and off the diagonal.
                for row in module.phi { for v in row { XCTAssertEqual(v, 1, accuracy: 1e-5, "\(module.module) \(source)") } }
                XCTAssertEqual(module.topDirectionOverlap, 1, accuracy: 1e-5)
            }
        }
    }

    func testConstructedRotationGivesClosedForm() throws {
        // U₁ = [e₁, e₂]; U₂ = [cos θ e₁ + sin θ e₃, e₂]. Cosines: G = [[cos θ, 0], [0, 1]].
        // φ(1,1) = cos²θ, φ(1,2) = cos²θ / 1, φ(2,1) = cos²θ / 1, φ(2,2) = (cos²θ + 1) / 2.
        let theta = 0.7, n = 5
        var u1 = [Float](repeating: 0, count: 2 * n), u2 = u1
        u1[0] = 1; u1[n + 1] = 1
        u2[0] = Float(cos(theta)); u2[2] = Float(sin(theta)); u2[n + 1] = 1
        let phi = try subspaceSimilarity(rows: Tensor(u1, shape: [2, n]), Tensor(u2, shape: [2, n]))
        let c2 = cos(theta) * cos(theta)
        XCTAssertEqual(phi[0][0], c2, accuracy: 1e-6)
        XCTAssertEqual(phi[0][1], c2, accuracy: 1e-6)
        XCTAssertEqual(phi[1][0], c2, accuracy: 1e-6)
        XCTAssertEqual(phi[1][1], (c2 + 1) / 2, accuracy: 1e-6)
    }

    func testIndependentRandomSubspacesAverageMaxIJOverN() throws {
        // Expectation: for fixed orthonormal U₁ (n×i) and Haar-random U₂ (n×j), each squared cosine (u_aᵀv_b)² has
        // mean 1/n, so E‖U₁ᵀU₂‖²_F = i·j/n and E φ(i, j) = i·j/(n·min(i, j)) = max(i, j)/n. (Right singular
        // subspaces of Gaussian A are Haar-distributed by rotation invariance, and independent across adapters.)
        // Tolerance: ‖P₁v‖² for one uniform unit v is Beta(i/2, (n−i)/2), variance 2i(n−i)/(n²(n+2)). The j terms
        // of ‖U₁ᵀU₂‖²_F are correlated, but sd(Σ) ≤ Σ sd = j·sd₁ (Cauchy–Schwarz); writing the sum over the i
        // columns instead gives i·sd₁'. Dividing by min(i, j), sd(φ) ≤ sqrt(2·max(i,j)·(n−max(i,j))/(n²(n+2))).
        // The mean over S seeds has sd ≤ that / √S; we allow 5 sd (and n, S make max(i,j)/n distinguishable from
        // min(i,j)/n: for i = 8, j = 1 they differ by 0.0137, the tolerance is 0.0027).
        let n = 512, r = 8, seeds = 200
        var sum = [[Double]](repeating: [Double](repeating: 0, count: r), count: r)
        for seed in 0..<seeds {
            let a1 = randomMatrix(r, n, seed: UInt64(2 * seed + 1000)), a2 = randomMatrix(r, n, seed: UInt64(2 * seed + 1001))
            let m1 = try AdapterModule(path: "m", a: a1, b: randomMatrix(16, r, seed: 1), scaling: 1)
            let m2 = try AdapterModule(path: "m", a: a2, b: randomMatrix(16, r, seed: 2), scaling: 1)
            let phi = try AdapterSimilarity.compare(m1, m2, source: .aRight).phi
            for i in 0..<r { for j in 0..<r { sum[i][j] += phi[i][j] } }
        }
        for i in 1...r {
            for j in 1...r {
                let mean = sum[i - 1][j - 1] / Double(seeds)
                let big = Double(max(i, j)), nn = Double(n)
                let sd = (2 * big * (nn - big) / (nn * nn * (nn + 2))).squareRoot() / Double(seeds).squareRoot()
                XCTAssertEqual(mean, big / nn, accuracy: 5 * sd, "φ(\(i), \(j))")
                // Where |i − j| ≥ 2 the two candidate values differ by ≥ 2/n = 0.0039 > 5 sd (≤ 0.0027), and the data
                // rule out min(i, j)/n (what a max(i, j) normalisation would give).
                if abs(i - j) >= 2 { XCTAssertGreaterThan(abs(mean - Double(min(i, j)) / nn), 5 * sd, "φ(\(i), \(j))") }
            }
        }
    }

    func testHeatmapHasOneCellPerPairAndSummaryNamesModules() throws {
        let first = try AdapterModule(path: "layers.0.q_proj", a: randomMatrix(4, 20, seed: 3), b: randomMatrix(12, 4, seed: 4), scaling: 2)
        let second = try AdapterModule(path: "layers.0.q_proj", a: randomMatrix(6, 20, seed: 5), b: randomMatrix(12, 6, seed: 6), scaling: 1)
        let extra = try AdapterModule(path: "layers.0.v_proj", a: randomMatrix(2, 20, seed: 7), b: randomMatrix(12, 2, seed: 8), scaling: 1)
        let result = try AdapterSimilarity.compare(adapter([first, extra]), adapter([second]), source: .deltaLeft)
        XCTAssertEqual(result.modules.map(\.module), ["layers.0.q_proj"])
        XCTAssertEqual(result.onlyInFirst, ["layers.0.v_proj"])
        let module = result.modules[0]
        XCTAssertEqual(module.ranks, [4, 6]); XCTAssertEqual(module.dimension, 12)
        XCTAssertTrue(module.phi.joined().allSatisfy { (0...1).contains($0) })
        let elements = try SVGTestParser.parse(try module.heatmap().render())
        let cells = elements.matching("rect", class: "cell")
        XCTAssertEqual(cells.count, 24)
        XCTAssertEqual(elements.matching("text", class: "annotation").count, 24)
        // Cell (i, j) carries φ(i, j).
        let cell12 = cells.first { $0.attributes["data-row"] == "0" && $0.attributes["data-column"] == "1" }!
        XCTAssertEqual(cell12.double("data-value")!, module.phi[0][1], accuracy: 1e-12)
        XCTAssertTrue(result.summaryTable().contains("only in the first adapter: layers.0.v_proj"))
        // JSON carries the grid and the summary numbers.
        let json = String(decoding: try JSONEncoder().encode(result), as: UTF8.self)
        XCTAssertTrue(json.contains("\"top_direction_overlap\""))
    }

    func testAdaptersThatCannotBeComparedGiveTypedErrors() throws {
        let q = try AdapterModule(path: "q", a: randomMatrix(2, 16, seed: 1), b: randomMatrix(8, 2, seed: 2), scaling: 1)
        let v = try AdapterModule(path: "v", a: randomMatrix(2, 16, seed: 3), b: randomMatrix(8, 2, seed: 4), scaling: 1)
        XCTAssertEqual(analysisError { _ = try AdapterSimilarity.compare(adapter([q]), adapter([v])) },
                       .noCommonModules(first: ["q"], second: ["v"]))
        // Same module name, different base model: in = 16 vs 24.
        let otherModel = try AdapterModule(path: "q", a: randomMatrix(2, 24, seed: 5), b: randomMatrix(8, 2, seed: 6), scaling: 1)
        let error = analysisError { _ = try AdapterSimilarity.compare(adapter([q], name: "one"), adapter([otherModel], name: "two")) }
        XCTAssertEqual(error, .shapeMismatch(module: "q", first: "ΔW of /one", firstShape: [8, 16], second: "ΔW of /two", secondShape: [8, 24]))
        // r larger than the matrix.
        let tooWide = try AdapterModule(path: "q", a: randomMatrix(10, 16, seed: 7), b: randomMatrix(8, 10, seed: 8), scaling: 1)
        XCTAssertEqual(analysisError { _ = try AdapterSimilarity.compare(adapter([q]), adapter([tooWide])) },
                       .rankExceedsMatrix(module: "q", rank: 10, shape: [8, 16]))
        // AdaLoRA modules pruned to rank 0 are skipped with a reason, not compared.
        let ada = try AdapterWeights.load(from: Fixtures.url("peft/llama_adalora/adapter"))
        let lora = try AdapterWeights.load(from: Fixtures.url("peft/llama_lora/adapter"))
        let mixed = try AdapterSimilarity.compare(lora, ada)
        XCTAssertEqual(mixed.modules.map(\.module), ["model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.v_proj"])
        XCTAssertEqual(mixed.skipped.map(\.module), ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj"])
        XCTAssertEqual(mixed.modules[0].ranks, [4, 5])
    }
}
