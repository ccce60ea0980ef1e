// Amplification (LoRA paper Table 7): exact factors on a constructed W with known singular directions, the random
// baseline's expectation r²‖W‖²/(out·in), Ky Fan's bound on the fixture adapter, a dense cross-check, and typed
// errors for base weights that do not fit the adapter.
import Foundation
import XCTest
import TensorCore
import LinearAlgebra
import Analysis
import TestSupport

final class AmplificationTests: XCTestCase {
    // W [6, 5] = Σ σ_i u_i v_iᵀ with σ = (10, 6, 3, 1, 0.5), u_i = ±e_{rowOf(i)}, v_i = e_{colOf(i)}: a signed
    // permutation of diag(σ), so every entry is exact in Float32.
    private let sigma: [Float] = [10, 6, 3, 1, 0.5]
    private let rowOf = [3, 0, 5, 1, 4], colOf = [2, 4, 0, 3, 1], signOf: [Float] = [1, -1, 1, -1, 1]

    private func constructedWeight() -> Tensor {
        var w = [Float](repeating: 0, count: 30)
        for i in 0..<5 { w[rowOf[i] * 5 + colOf[i]] = signOf[i] * sigma[i] }
        return Tensor(w, shape: [6, 5])
    }

    /// ΔW = c · Σ_{i ∈ directions} u_{left(i)} v_{right(i)}ᵀ as B [6, r] · A [r, 5] with scaling 2 (B carries c/2).
    private func module(c: Float, left: [Int], right: [Int]) throws -> AdapterModule {
        let r = left.count
        var b = [Float](repeating: 0, count: 6 * r), a = [Float](repeating: 0, count: r * 5)
        for k in 0..<r {
            b[rowOf[left[k]] * r + k] = signOf[left[k]] * c / 2
            a[k * 5 + colOf[right[k]]] = 1
        }
        return try AdapterModule(path: "constructed", a: Tensor(a, shape: [r, 5]), b: Tensor(b, shape: [6, r]), scaling: 2)
    }

    func testAmplificationOfTopDirectionsIsExact() throws {
        // ΔW = 4·(u₁v₁ᵀ + u₂v₂ᵀ): U, V span W's top-2 singular pairs, so UᵀWV = diag(10, 6) up to rotation:
        // ‖UᵀWV‖_F = √136, ‖ΔW‖_F = 4√2, factor = 4√2/√136 = 0.48507. W's own top-2 subspace gives √136 too.
        let row = try AmplificationReport.measure(module: try module(c: 4, left: [0, 1], right: [0, 1]), baseWeight: constructedWeight())
        XCTAssertEqual(row.deltaNorm, 4 * 2.0.squareRoot(), accuracy: 1e-5)
        XCTAssertEqual(row.projectionOnDelta, 136.0.squareRoot(), accuracy: 1e-5)
        XCTAssertEqual(row.projectionOnWeight, 136.0.squareRoot(), accuracy: 1e-5)
        XCTAssertEqual(row.weightNorm, 146.25.squareRoot(), accuracy: 1e-6)
        XCTAssertEqual(row.amplificationFactor!, 4 * 2.0.squareRoot() / 136.0.squareRoot(), accuracy: 1e-6)
    }

    func testAmplificationOfWeakDirectionsIsLargerAndMismatchedPairsAreUnbounded() throws {
        // ΔW = 4·(u₃v₃ᵀ + u₄v₄ᵀ) boosts directions W barely uses: ‖UᵀWV‖_F = √(3² + 1²) = √10, factor 4√2/√10.
        let weak = try AmplificationReport.measure(module: try module(c: 4, left: [2, 3], right: [2, 3]), baseWeight: constructedWeight())
        XCTAssertEqual(weak.projectionOnDelta, 10.0.squareRoot(), accuracy: 1e-5)
        XCTAssertEqual(weak.amplificationFactor!, 4 * 2.0.squareRoot() / 10.0.squareRoot(), accuracy: 1e-5)
        XCTAssertEqual(weak.projectionOnWeight, 136.0.squareRoot(), accuracy: 1e-5)   // W's top-2, independent of ΔW
        // ΔW = 4·u₁v₂ᵀ pairs a left direction with another pair's right one: u₁ᵀWv₂ = 0, the factor is unbounded.
        let crossed = try AmplificationReport.measure(module: try module(c: 4, left: [0], right: [1]), baseWeight: constructedWeight())
        XCTAssertEqual(crossed.projectionOnDelta, 0, accuracy: 1e-6)
        if let factor = crossed.amplificationFactor { XCTAssertGreaterThan(factor, 1e5) }
    }

    func testRotatedConstructionMatchesTheSameClosedForm() throws {
        // W = Q₁ diag(σ) Q₂ᵀ with random orthogonal Q₁ [40, 5], Q₂ [30, 5]; ΔW = 3·Q₁[:, 1:3] Q₂[:, 1:3]ᵀ (directions 2
        // and 3): ‖UᵀWV‖_F = √(6² + 3²) = √45, ‖ΔW‖_F = 3√2, factor 3√2/√45.
        let q1 = try qr(randomMatrix(40, 5, seed: 21)).q, q2 = try qr(randomMatrix(30, 5, seed: 22)).q
        var scaledQ1 = q1
        scaledQ1.withUnsafeMutableBufferPointer { p in for i in 0..<p.count { p[i] *= sigma[i % 5] } }
        let w = Tensor.matmul(scaledQ1, q2, transposeB: true)
        let cols = [1, 2]
        let b = Tensor(q1.array.enumerated().filter { cols.contains($0.offset % 5) }.map { 3 * $0.element }, shape: [40, 2])
        let a = Tensor(q2.transposed().array.enumerated().filter { cols.contains($0.offset / 30) }.map(\.element), shape: [2, 30])
        let row = try AmplificationReport.measure(module: try AdapterModule(path: "rotated", a: a, b: b, scaling: 1), baseWeight: w)
        XCTAssertEqual(row.deltaNorm, 3 * 2.0.squareRoot(), accuracy: 1e-5)
        XCTAssertEqual(row.projectionOnDelta, 45.0.squareRoot(), accuracy: 1e-4)
        XCTAssertEqual(row.amplificationFactor!, 3 * 2.0.squareRoot() / 45.0.squareRoot(), accuracy: 1e-5)
        XCTAssertEqual(row.projectionOnWeight, 136.0.squareRoot(), accuracy: 1e-4)
    }

    func testRandomBaselineMatchesItsExpectation() throws {
        // For Haar-random U [out, r], V [in, r]: E‖UᵀWV‖²_F = Σ_{a,b} E(u_aᵀWv_b)² = r²‖W‖²_F/(out·in).
        // The mean of S = 200 seeded draws is compared with 5 standard errors (sample sd / √S) around it.
        let w = randomMatrix(40, 30, seed: 31)
        let m = try AdapterModule(path: "m", a: randomMatrix(3, 30, seed: 32), b: randomMatrix(40, 3, seed: 33), scaling: 1)
        let draws = try (0..<200).map { seed in pow(try AmplificationReport.measure(module: m, baseWeight: w, seed: UInt64(seed)).projectionOnRandom, 2) }
        let mean = draws.reduce(0, +) / Double(draws.count)
        let sd = (draws.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(draws.count - 1)).squareRoot()
        let expected = 9 * pow(frobenius(w), 2) / (40 * 30)
        XCTAssertEqual(mean, expected, accuracy: 5 * sd / Double(draws.count).squareRoot())
        // Same seed, same module: the same baseline.
        XCTAssertEqual(try AmplificationReport.measure(module: m, baseWeight: w, seed: 7).projectionOnRandom,
                       try AmplificationReport.measure(module: m, baseWeight: w, seed: 7).projectionOnRandom)
    }

    func testFixtureAdapterAgainstDenseComputationAndKyFanBound() throws {
        let adapter = try AdapterWeights.load(from: Fixtures.url("peft/llama_lora/adapter"))
        let base = try TensorSource(url: Fixtures.url("peft/base_llama/model.safetensors"))
        let report = try AmplificationReport.measure(adapter: adapter, base: base, seed: 0)
        XCTAssertEqual(report.modules.map(\.module), adapter.modulePaths)
        for (row, module) in zip(report.modules, adapter.modules) {
            let w = try base.matrix(module.path + ".weight")
            // Dense reference: U, V from LAPACK's SVD of the formed ΔW.
            let dense = try svd(module.deltaWeight()).truncated(to: 4)
            let projected = Tensor.matmul(Tensor.matmul(dense.u, w, transposeA: true), dense.vt, transposeB: true)
            XCTAssertEqual(row.projectionOnDelta, frobenius(projected), accuracy: 1e-5)
            XCTAssertEqual(row.deltaNorm, frobenius(referenceProduct(module.b, module.a, scaling: 2)), accuracy: 1e-5)
            // Ky Fan: no rank-4 subspace pair captures more of W than its own top-4, √(Σ_{i≤4} σ_i²).
            let top = try Spectrum.of(matrix: w, name: "w").singularValues.prefix(4)
            XCTAssertEqual(row.projectionOnWeight, top.reduce(0) { $0 + $1 * $1 }.squareRoot(), accuracy: 1e-5)
            XCTAssertLessThanOrEqual(row.projectionOnDelta, row.projectionOnWeight + 1e-6)
            XCTAssertLessThanOrEqual(row.projectionOnRandom, row.projectionOnWeight + 1e-6)
            XCTAssertEqual(row.weightNorm, frobenius(w), accuracy: 1e-5)
        }
        XCTAssertTrue(report.table().contains("model.layers.0.self_attn.q_proj"))
    }

    func testBaseWeightsThatDoNotFitGiveTypedErrors() throws {
        let mlp = try AdapterWeights.load(from: Fixtures.url("peft/mlp_lora/adapter"))
        let llama = try TensorSource(url: Fixtures.url("peft/base_llama/model.safetensors"))
        XCTAssertEqual(analysisError { _ = try AmplificationReport.measure(adapter: mlp, base: llama) },
                       .missingBaseWeight(module: "0", tensor: "0.weight"))
        let m = try module(c: 1, left: [0], right: [0])
        XCTAssertEqual(analysisError { _ = try AmplificationReport.measure(module: m, baseWeight: randomMatrix(5, 6, seed: 1), baseName: "w.weight") },
                       .shapeMismatch(module: "constructed", first: "w.weight", firstShape: [5, 6], second: "ΔW of the adapter", secondShape: [6, 5]))
        var w = constructedWeight()
        w.withUnsafeMutableBufferPointer { $0[4] = .nan }
        XCTAssertEqual(analysisError { _ = try AmplificationReport.measure(module: m, baseWeight: w, baseName: "w.weight") },
                       .nonFinite(module: "constructed", tensor: "w.weight", index: 4))
    }
}
