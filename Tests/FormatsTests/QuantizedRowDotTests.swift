// The fused decode kernels (QuantizedMatrix.matvec over several matrices) against the formula values of
// hand-assembled blocks in Float64: every type, odd row counts (the two-row kernels' tail), a zero-row matrix.
import XCTest
import Formats
import TensorCore

final class QuantizedRowDotTests: XCTestCase {
    func testGroupedMatvecMatchesFormulaForEveryType() throws {
        var rng = TestRandom(state: 19)
        let columns = 256
        for type in GGUFQuantizedMatrixTests.kernelTypes {
            // Three matrices sharing x, row counts odd and even, plus an empty one in the middle.
            let rowCounts = [37, 0, 64, 5]
            let blocks = rowCounts.map { GGMLBlockEncoder.random(type, elements: $0 * columns, rng: &rng) }
            let matrices = try zip(rowCounts, blocks).map { try QuantizedMatrix(name: "w.\(type)", type: type, rows: $0, columns: columns, bytes: $1.bytes) }
            XCTAssertEqual(matrices[0].hasFusedRowKernel, [.q4_0, .q4_1, .q8_0].contains(type))
            let x = (0..<columns).map { _ in rng.float(-2, 2) }
            let pointers = rowCounts.map { n -> UnsafeMutablePointer<Float> in
                let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1)); p.initialize(repeating: .nan, count: max(n, 1)); return p
            }
            defer { pointers.forEach { $0.deallocate() } }
            x.withUnsafeBufferPointer { QuantizedMatrix.matvec(matrices, x: $0.baseAddress!, outputs: pointers) }
            var outputs = rowCounts.map { [Float](repeating: 0, count: $0) }
            for i in outputs.indices where rowCounts[i] > 0 {
                outputs[i] = Array(UnsafeBufferPointer(start: pointers[i], count: rowCounts[i]))
                let err = matvecRelativeError(outputs[i], expected: blocks[i].expected, x: x, rows: rowCounts[i], columns: columns)
                XCTAssertLessThan(err, 1e-5, "\(type) matrix \(i)")
                // Same values as the single-matrix product.
                let single = try matrices[i].matvec(Tensor(x, shape: [columns])).array
                let scale = max(1, single.map(abs).max() ?? 1)
                XCTAssertLessThan(maxAbsDiff(outputs[i], single) / scale, 1e-5, "\(type) matrix \(i)")
            }
        }
    }
}
