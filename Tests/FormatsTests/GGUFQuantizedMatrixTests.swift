// QuantizedMatrix products against the formula values of hand-assembled blocks, in Float64.
import XCTest
import Formats
import TensorCore

/// Largest |y − ref| / Σ|w·x| over the outputs, with ref = W·x in Float64 from `expected` [rows, columns].
func matvecRelativeError(_ y: [Float], expected w: [Double], x: [Float], rows: Int, columns: Int) -> Double {
    var worst = 0.0
    for r in 0..<rows {
        var ref = 0.0, magnitude = 0.0
        for c in 0..<columns { let p = w[r * columns + c] * Double(x[c]); ref += p; magnitude += abs(p) }
        worst = max(worst, abs(Double(y[r]) - ref) / max(magnitude, 1e-30))
    }
    return worst
}

final class GGUFQuantizedMatrixTests: XCTestCase {
    static let kernelTypes: [GGMLType] = [.q4_0, .q4_1, .q8_0, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K, .f16, .bf16, .f32]

    func testMatvecMatchesFormulaForEveryType() throws {
        var rng = TestRandom(state: 7)
        for type in Self.kernelTypes {
            let rows = 37, columns = 512   // odd row count: uneven parallel chunks
            let blocks = GGMLBlockEncoder.random(type, elements: rows * columns, rng: &rng)
            let m = try QuantizedMatrix(name: "w.\(type)", type: type, rows: rows, columns: columns, bytes: blocks.bytes)
            let x = (0..<columns).map { _ in rng.float(-2, 2) }
            let y = try m.matvec(Tensor(x, shape: [columns]))
            XCTAssertEqual(y.shape, [rows])
            let err = matvecRelativeError(y.array, expected: blocks.expected, x: x, rows: rows, columns: columns)
            XCTAssertLessThan(err, 1e-5, "\(type)")
            // dequantizeRows reproduces the formula values (exact in Float32 for these scales).
            let slice = try m.dequantizeRows(5..<9)
            XCTAssertEqual(slice.shape, [4, columns])
            let want = blocks.expected[(5 * columns)..<(9 * columns)].map { Float($0) }
            XCTAssertEqual(maxAbsDiff(slice.array, want), 0, "\(type) dequantizeRows")
        }
    }

    func testSmallBatchMatmulAndBLASTilePath() throws {
        var rng = TestRandom(state: 11)
        for type in [GGMLType.q4_1, .q8_0, .q6_K] {
            let rows = 300, columns = 256   // 300 rows: two 256-row tiles on the BLAS path
            let blocks = GGMLBlockEncoder.random(type, elements: rows * columns, rng: &rng)
            let m = try QuantizedMatrix(type: type, rows: rows, columns: columns, bytes: blocks.bytes)
            for batch in [3, QuantizedMatrix.gemmBatchThreshold + 4] {
                let x = (0..<(batch * columns)).map { _ in rng.float(-1, 1) }
                let y = try m.matmul(Tensor(x, shape: [batch, columns]))
                XCTAssertEqual(y.shape, [batch, rows])
                for b in 0..<batch {
                    let yb = Array(y.array[(b * rows)..<((b + 1) * rows)])
                    let xb = Array(x[(b * columns)..<((b + 1) * columns)])
                    let err = matvecRelativeError(yb, expected: blocks.expected, x: xb, rows: rows, columns: columns)
                    XCTAssertLessThan(err, 1e-5, "\(type) batch \(batch) row \(b)")
                }
            }
        }
    }

    func testRejectsInconsistentShapes() throws {
        XCTAssertThrowsError(try QuantizedMatrix(name: "w", type: .q4_1, rows: 2, columns: 32, bytes: [UInt8](repeating: 0, count: 39))) {
            XCTAssertTrue("\($0)".contains("'w'") && "\($0)".contains("needs 40 bytes, got 39"), "\($0)")
        }
        XCTAssertThrowsError(try QuantizedMatrix(type: .q8_0, rows: 1, columns: 48, bytes: [UInt8](repeating: 0, count: 51)))
        XCTAssertThrowsError(try QuantizedMatrix(type: .q3_K, rows: 1, columns: 256, bytes: [UInt8](repeating: 0, count: 110)))
        let m = try QuantizedMatrix(name: "w", type: .q8_0, rows: 1, columns: 32, bytes: [UInt8](repeating: 0, count: 34))
        XCTAssertThrowsError(try m.matvec(Tensor(zeros: [31]))) { XCTAssertTrue("\($0)".contains("matvec")) }
        XCTAssertThrowsError(try m.matmul(Tensor(zeros: [2, 33])))
        XCTAssertThrowsError(try m.dequantizeRows(0..<2))
    }

    func testBenchmarkReportsThroughput() throws {
        let r = try QuantizedMatvecBenchmark.run(type: .q4_1, rows: 256, columns: 256, seconds: 0.01)
        XCTAssertGreaterThanOrEqual(r.iterations, 3)
        XCTAssertGreaterThan(r.gflops, 0)
        XCTAssertEqual(r.gigabytesPerSecond / r.gflops, 20.0 / 32.0 / 2.0, accuracy: 1e-9, "bytes per flop of Q4_1")
    }
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
