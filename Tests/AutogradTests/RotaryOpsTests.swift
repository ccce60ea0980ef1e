import XCTest
import Foundation
import TensorCore
import Autograd
import TestSupport

final class RotaryOpsTests: XCTestCase {
    typealias Reference = TransformerOpsReference

    /// cos/sin of position · theta^(−2i/d), SmolLM2's head dim and theta. The angle is a Float32 product as in
    /// HF, so the error grows with the position: ≤ 1 ulp of the angle (~1.2e-7 · position) plus rounding.
    func testTableMatchesDefinition() throws {
        let table = try RotaryTable(positions: [0, 1, 7, 1000], dim: 64, theta: 100_000)
        XCTAssertEqual(table.cos.count, 4 * 32)
        for (row, p) in table.positions.enumerated() {
            for i in 0..<32 {
                let angle = Double(p) * Foundation.pow(100_000, -Double(2 * i) / 64)
                let tolerance = 2e-7 + 1.2e-7 * Double(p)
                XCTAssertEqual(Double(table.cos[row * 32 + i]), Foundation.cos(angle), accuracy: tolerance)
                XCTAssertEqual(Double(table.sin[row * 32 + i]), Foundation.sin(angle), accuracy: tolerance)
            }
        }
        XCTAssertEqual(table.cos[0..<32].allSatisfy { $0 == 1 }, true)
        XCTAssertEqual(table.sin[0..<32].allSatisfy { $0 == 0 }, true)
        let decode = try RotaryTable(start: 1000, count: 1, dim: 64, theta: 100_000)
        XCTAssertEqual(decode.cos, Array(table.cos[96..<128]))
    }

    func testHalfSplitMatchesHuggingFaceFormula() throws {
        var rng = RandomGenerator(seed: 1)
        let x = rng.normal([2, 3, 5, 16])
        let positions = [0, 1, 2, 3, 17]
        let table = try RotaryTable(positions: positions, dim: 16, theta: 10_000)
        let y = try rotaryEmbedding(Variable(x), table: table, layout: .halfSplit)
        XCTAssertLessThan(maxAbsDifference(y.value, Reference.ropeHalfSplit(x, positions: positions, theta: 10_000)), 2e-6)
    }

    /// llama.cpp's GGUF rows are permuted so that pair (i, i + d/2) sits at (2i, 2i + 1): the interleaved rope on
    /// the permuted vector is the permuted half-split rope.
    func testInterleavedEqualsHalfSplitAfterGGUFPermutation() throws {
        var rng = RandomGenerator(seed: 2)
        let (b, h, t, d) = (1, 9, 4, 64)
        let x = rng.normal([b, h, t, d])
        func permute(_ v: Tensor) -> Tensor {  // [.., d] half-split order → interleaved order
            var out = Tensor(zeros: v.shape)
            for row in 0..<(v.count / d) { for i in 0..<(d / 2) {
                out[flat: row * d + 2 * i] = v[flat: row * d + i]
                out[flat: row * d + 2 * i + 1] = v[flat: row * d + i + d / 2]
            } }
            return out
        }
        let table = try RotaryTable(start: 5, count: t, dim: d, theta: 100_000)
        let halfSplit = try rotaryEmbedding(Variable(x), table: table, layout: .halfSplit).value
        let interleaved = try rotaryEmbedding(Variable(permute(x)), table: table, layout: .interleaved).value
        XCTAssertEqual(interleaved, permute(halfSplit))  // same products and sums: bit-identical
        XCTAssertGreaterThan(maxAbsDifference(halfSplit, x), 0.1)
    }

    /// A rotation preserves every pair's length, and q·k after rope depends only on the position difference.
    func testRotationPreservesNormsAndEncodesRelativePosition() throws {
        var rng = RandomGenerator(seed: 3)
        let x = rng.normal([1, 2, 6, 32])
        for layout in [RotaryLayout.halfSplit, .interleaved] {
            let table = try RotaryTable(start: 3, count: 6, dim: 32, theta: 10_000)
            let y = try rotaryEmbedding(Variable(x), table: table, layout: layout).value
            for row in 0..<12 { for i in 0..<16 {
                let (a, b) = layout == .halfSplit ? (row * 32 + i, row * 32 + i + 16) : (row * 32 + 2 * i, row * 32 + 2 * i + 1)
                let before = x[flat: a] * x[flat: a] + x[flat: b] * x[flat: b]
                let after = y[flat: a] * y[flat: a] + y[flat: b] * y[flat: b]
                XCTAssertEqual(after, before, accuracy: 1e-5 * max(1, before))
            } }
            let q = rng.normal([1, 1, 1, 32]), k = rng.normal([1, 1, 1, 32])
            func score(_ m: Int, _ n: Int) throws -> Float {
                let rq = try rotaryEmbedding(Variable(q), table: RotaryTable(positions: [m], dim: 32, theta: 10_000), layout: layout).value
                let rk = try rotaryEmbedding(Variable(k), table: RotaryTable(positions: [n], dim: 32, theta: 10_000), layout: layout).value
                return zip(rq.array, rk.array).map(*).reduce(0, +)
            }
            XCTAssertEqual(try score(7, 2), try score(25, 20), accuracy: 1e-4)
            XCTAssertNotEqual(try score(7, 2), try score(7, 3), accuracy: 1e-3)
        }
    }

    func testRotaryGradients() throws {
        var rng = RandomGenerator(seed: 4)
        let table = try RotaryTable(positions: [4, 5, 6], dim: 8, theta: 100)
        for layout in [RotaryLayout.halfSplit, .interleaved] {
            let x = Variable(rng.normal([2, 2, 3, 8]), requiresGrad: true)
            let weights = rng.normal([2, 2, 3, 8])
            let error = GradientCheck.maxRelativeError(inputs: [x], epsilon: 1e-2) { v in
                Reference.weightedSum(try! rotaryEmbedding(v[0], table: table, layout: layout), weights)
            }
            XCTAssertLessThan(error, 5e-4, "\(layout)")
        }
    }

    /// A table of B·T positions gives each batch item its own run (left-padded batches).
    func testPerBatchPositions() throws {
        var rng = RandomGenerator(seed: 5)
        let x = rng.normal([2, 3, 4, 16])
        let perBatch = try RotaryTable(positions: [0, 1, 2, 3, 10, 11, 12, 13], dim: 16, theta: 10_000)
        let y = try rotaryEmbedding(Variable(x), table: perBatch, layout: .halfSplit).value
        let first = Tensor(Array(x.array[0..<192]), shape: [1, 3, 4, 16])
        let second = Tensor(Array(x.array[192...]), shape: [1, 3, 4, 16])
        let y0 = try rotaryEmbedding(Variable(first), table: RotaryTable(start: 0, count: 4, dim: 16, theta: 10_000), layout: .halfSplit)
        let y1 = try rotaryEmbedding(Variable(second), table: RotaryTable(start: 10, count: 4, dim: 16, theta: 10_000), layout: .halfSplit)
        XCTAssertEqual(y.array, y0.value.array + y1.value.array)
    }

    func testRotaryArgumentErrors() throws {
        XCTAssertThrowsError(try RotaryTable(positions: [0], dim: 7, theta: 10_000))
        XCTAssertThrowsError(try RotaryTable(positions: [-1], dim: 8, theta: 10_000))
        XCTAssertThrowsError(try RotaryTable(positions: [0], dim: 8, theta: 0))
        let table = try RotaryTable(start: 0, count: 3, dim: 8, theta: 10_000)
        XCTAssertThrowsError(try rotaryEmbedding(Variable(Tensor(zeros: [1, 2, 3, 16])), table: table, layout: .halfSplit))
        XCTAssertThrowsError(try rotaryEmbedding(Variable(Tensor(zeros: [2, 2, 4, 8])), table: table, layout: .halfSplit))
        XCTAssertThrowsError(try rotaryEmbedding(Variable(Tensor(zeros: [2, 3, 8])), table: table, layout: .interleaved))
    }
}
