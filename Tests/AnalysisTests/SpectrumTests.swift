// Spectrum: a planted rank-k ΔW has exactly k non-zero singular values, the factored SVD of s·B·A agrees with the
// dense one, energy and best rank-k error follow Eckart–Young on a constructed spectrum, bad input is rejected.
import Foundation
import XCTest
import TensorCore
import LinearAlgebra
import Analysis
import TestSupport

final class SpectrumTests: XCTestCase {
    func testPlantedRankKDeltaHasExactlyKNonZeroSingularValues() throws {
        // B = B₁ C with B₁ [48, 3], C [3, 8]: the rank-8 adapter's ΔW = 2·B·A has rank exactly 3.
        let b = Tensor.matmul(randomMatrix(48, 3, seed: 1), randomMatrix(3, 8, seed: 2))
        let a = randomMatrix(8, 40, seed: 3)
        let module = try AdapterModule(path: "planted", a: a, b: b, scaling: 2)
        let spectrum = try Spectrum.of(module: module)
        XCTAssertEqual(spectrum.singularValues.count, 8)
        XCTAssertEqual(spectrum.numericalRank, 3)
        // The three planted values are O(10²); the rest are float round-off, far below the tolerance.
        XCTAssertGreaterThan(spectrum.singularValues[2], 1)
        for v in spectrum.singularValues[3...] { XCTAssertLessThan(v, spectrum.tolerance) }
        // The same count from the dense ΔW through LAPACK.
        let dense = try Spectrum.of(matrix: module.deltaWeight(), name: "dense")
        XCTAssertEqual(dense.singularValues.count, 40)
        XCTAssertEqual(dense.numericalRank, 3)
        for k in 0..<3 { XCTAssertEqual(spectrum.singularValues[k], dense.singularValues[k], accuracy: 1e-5 * dense.singularValues[0]) }
        XCTAssertEqual(try numericalRank(module.deltaWeight()), 3)
    }

    func testFactoredSVDReconstructsScaledProduct() throws {
        let b = randomMatrix(30, 6, seed: 4), a = randomMatrix(6, 50, seed: 5)
        let factored = try lowRankProductSVD(b: b, a: a, scaling: 0.75)
        XCTAssertEqual(factored.u.shape, [30, 6]); XCTAssertEqual(factored.vt.shape, [6, 50])
        let reference = referenceProduct(b, a, scaling: 0.75)
        let scale = Double(factored.singularValues[0])
        XCTAssertLessThan(Double(maxAbsDifference(factored.reconstructed(), reference)), 2e-6 * scale)
        XCTAssertLessThan(try orthonormalityError(factored.u, of: .columns), 1e-5)
        XCTAssertLessThan(try orthonormalityError(factored.vt, of: .rows), 1e-5)
        let dense = try singularValues(reference)
        for k in 0..<6 { XCTAssertEqual(factored.singularValues[k], dense[k], accuracy: Float(2e-6 * scale)) }
        // A negative scaling flips signs into U, never into the (non-negative) singular values.
        let negative = try lowRankProductSVD(b: b, a: a, scaling: -0.75)
        XCTAssertTrue(negative.singularValues.allSatisfy { $0 >= 0 })
        XCTAssertLessThan(Double(maxAbsDifference(negative.reconstructed(), referenceProduct(b, a, scaling: -0.75))), 2e-6 * scale)
    }

    func testEnergyAndRelativeErrorOnConstructedSpectrum() throws {
        // M = diag(4, 3, 2, 1, 0) inside a 6×5 matrix: Σσ² = 30.
        var values = [Float](repeating: 0, count: 30)
        for (i, s) in [Float(4), 3, 2, 1, 0].enumerated() { values[i * 5 + i] = s }
        let spectrum = try Spectrum.of(matrix: Tensor(values, shape: [6, 5]), name: "diag")
        XCTAssertEqual(spectrum.singularValues, [4, 3, 2, 1, 0])
        XCTAssertEqual(spectrum.numericalRank, 4)
        XCTAssertEqual(spectrum.frobeniusNorm, 30.0.squareRoot(), accuracy: 1e-12)
        let energies = [16.0 / 30, 25.0 / 30, 29.0 / 30, 1, 1]
        let errors = [(14.0 / 30).squareRoot(), (5.0 / 30).squareRoot(), (1.0 / 30).squareRoot(), 0, 0]
        for k in 0..<5 {
            XCTAssertEqual(spectrum.energies[k], energies[k], accuracy: 1e-12)
            XCTAssertEqual(spectrum.relativeErrors[k], errors[k], accuracy: 1e-12)
        }
        XCTAssertEqual(spectrum.energy(topK: 0), 0); XCTAssertEqual(spectrum.relativeError(rank: 0), 1)
        XCTAssertEqual(spectrum.energy(topK: 9), 1); XCTAssertEqual(spectrum.relativeError(rank: 9), 0)
        XCTAssertEqual(spectrum.stableRank, 30.0 / 16, accuracy: 1e-12)
    }

    func testRelativeErrorEqualsTruncatedSVDError() throws {
        // Eckart–Young: the listed error is what the rank-k truncated SVD actually reaches.
        let m = randomMatrix(24, 18, seed: 6)
        let spectrum = try Spectrum.of(matrix: m, name: "random")
        for k in [1, 3, 9, 17] {
            let approximation = try lowRankApproximation(m, rank: k)
            let error = try reconstructionError(original: m, approximation: approximation).frobenius
            XCTAssertEqual(spectrum.relativeError(rank: k), Double(error) / frobenius(m), accuracy: 2e-5)
            XCTAssertEqual(spectrum.energy(topK: k), 1 - pow(spectrum.relativeError(rank: k), 2), accuracy: 1e-12)
        }
    }

    func testSpectraOfFixtureAdapterMatchDenseDelta() throws {
        let adapter = try AdapterWeights.load(from: Fixtures.url("peft/mlp_lora/adapter"))
        let spectra = try Spectrum.of(adapter: adapter)
        XCTAssertEqual(spectra.map(\.name), ["0", "2"])
        for (spectrum, module) in zip(spectra, adapter.modules) {
            let dense = try singularValues(referenceProduct(module.b, module.a, scaling: 2))
            XCTAssertEqual(spectrum.singularValues.count, 4)
            XCTAssertEqual(spectrum.numericalRank, 4)
            for k in 0..<4 { XCTAssertEqual(spectrum.singularValues[k], Double(dense[k]), accuracy: 1e-5 * Double(dense[0])) }
            XCTAssertEqual(dense[4], 0, accuracy: 1e-5 * dense[0])   // rank 4: the fifth value vanishes
        }
    }

    func testBadInputIsRejectedNamingTheModule() throws {
        var a = randomMatrix(4, 10, seed: 7)
        a.withUnsafeMutableBufferPointer { $0[13] = .nan }
        XCTAssertEqual(analysisError { _ = try AdapterModule(path: "layers.3.q_proj", a: a, b: randomMatrix(6, 4, seed: 8), scaling: 1) },
                       .nonFinite(module: "layers.3.q_proj", tensor: "lora_A", index: 13))
        // r = 8 on a 6×10 matrix: ΔW cannot have rank 8.
        let wide = try AdapterModule(path: "tiny", a: randomMatrix(8, 10, seed: 9), b: randomMatrix(6, 8, seed: 10), scaling: 1)
        let error = analysisError { _ = try Spectrum.of(module: wide) }
        XCTAssertEqual(error, .rankExceedsMatrix(module: "tiny", rank: 8, shape: [6, 10]))
        XCTAssertTrue("\(error!)".contains("tiny"))
        XCTAssertEqual(analysisError { _ = try AdapterModule(path: "m", a: randomMatrix(4, 10, seed: 1), b: randomMatrix(6, 3, seed: 2), scaling: 1) },
                       .inconsistentModule(module: "m", reason: "lora_B [6, 3] · lora_A [4, 10] do not chain (need B [out, r], A [r, in])"))
        var w = randomMatrix(5, 5, seed: 11)
        w.withUnsafeMutableBufferPointer { $0[7] = .infinity }
        XCTAssertEqual(analysisError { _ = try Spectrum.of(matrix: w, name: "w") }, .nonFinite(module: "w", tensor: "weight", index: 7))
        XCTAssertNotNil(analysisError { _ = try Spectrum(name: "s", shape: [3, 3], singularValues: [1, 2]) })
        XCTAssertNotNil(analysisError { _ = try Spectrum(name: "s", shape: [3, 3], singularValues: [1, .nan]) })
        XCTAssertNotNil(analysisError { _ = try Spectrum(name: "s", shape: [2, 3], singularValues: [3, 2, 1]) })
    }

    func testSpectrumPlotHasOnePointPerSingularValue() throws {
        let adapter = try AdapterWeights.load(from: Fixtures.url("peft/llama_lora/adapter"))
        let spectra = try Spectrum.of(adapter: adapter)
        let elements = try SVGTestParser.parse(try Spectrum.plot(spectra, title: "llama_lora").render())
        XCTAssertEqual(elements.matching("g", class: "series").map { $0.attributes["data-name"]! }, adapter.modulePaths)
        XCTAssertEqual(elements.matching("circle", class: "marker").count, 16)   // 4 modules × r = 4
        // Log axis: every marker lies inside the plot frame.
        let frame = elements.matching("rect", class: "frame")[0]
        let top = frame.double("y")!, bottom = top + frame.double("height")!
        for marker in elements.matching("circle", class: "marker") {
            XCTAssertTrue((top - 0.01...bottom + 0.01).contains(marker.double("cy")!))
        }
        // Integer k ticks only.
        let xTicks = elements.matching("text", class: "tick-label", inside: "x-axis").compactMap { $0.double("data-value") }
        XCTAssertEqual(xTicks, [1, 2, 3, 4])
        XCTAssertTrue(Spectrum.summaryTable(spectra).contains("model.layers.1.self_attn.v_proj"))
    }
}
