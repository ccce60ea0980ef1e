// QuantizedMatrix.nonFiniteReport finds a NaN/Inf block scale (or min) wherever the block format keeps it, and
// reports the first poisoned element by flat index; a clean matrix reports nothing.
import XCTest
import Formats

final class QuantizedNonFiniteTests: XCTestCase {
    private let q16 = (0..<32).map { $0 % 16 }
    private let q32 = (0..<32).map { ($0 * 5 + 1) % 32 }

    /// Rows of 2 blocks each; `bad` replaces row 1's second block.
    private func matrix(_ type: GGMLType, good: EncodedBlocks, bad: EncodedBlocks) throws -> QuantizedMatrix {
        let bytes = (good + good + good + bad).bytes
        return try QuantizedMatrix(name: "t.\(type.name)", type: type, rows: 2, columns: 2 * type.blockSize, bytes: bytes)
    }

    func testCleanMatricesReportNothing() throws {
        let m = try matrix(.q4_1, good: GGMLBlockEncoder.q4_1(d: 0.5, m: -1, q: q16), bad: GGMLBlockEncoder.q4_1(d: 0.25, m: 2, q: q16))
        XCTAssertNil(m.nonFiniteReport())
    }

    func testEveryScaleFieldIsCaught() throws {
        let sc = (0..<8).map { $0 + 1 }, mn = (0..<8).map { 9 - $0 }
        let q256 = (0..<256).map { ($0 * 7) % 16 }
        let q64 = (0..<256).map { ($0 * 11) % 64 }
        let cases: [(GGMLType, EncodedBlocks, EncodedBlocks, Int)] = [
            (.q4_0, GGMLBlockEncoder.q4_0(d: 1, q: q16), GGMLBlockEncoder.q4_0(d: .nan, q: q16), 32),
            (.q4_1, GGMLBlockEncoder.q4_1(d: 1, m: 0, q: q16), GGMLBlockEncoder.q4_1(d: 1, m: .infinity, q: q16), 32),
            (.q8_0, GGMLBlockEncoder.q8_0(d: 1, q: q32), GGMLBlockEncoder.q8_0(d: -.infinity, q: q32), 32),
            (.q4_K, GGMLBlockEncoder.q4_K(d: 1, dmin: 1, scales: sc, mins: mn, q: q256),
             GGMLBlockEncoder.q4_K(d: 1, dmin: .nan, scales: sc, mins: mn, q: q256), 256),
            (.q6_K, GGMLBlockEncoder.q6_K(d: 1, scales: (0..<16).map { $0 - 8 }, q: q64),
             GGMLBlockEncoder.q6_K(d: .nan, scales: (0..<16).map { $0 - 8 }, q: q64), 256),
        ]
        for (type, good, bad, poisoned) in cases {
            let m = try matrix(type, good: good, bad: bad)
            let report = try XCTUnwrap(m.nonFiniteReport(), "\(type.name): a non-finite scale went unnoticed")
            // Row 1, second block: flat index columns + blockSize.
            XCTAssertEqual(report.firstIndex, m.columns + type.blockSize, type.name)
            XCTAssertEqual(report.count, poisoned, type.name)
            XCTAssertFalse(report.firstValue.isFinite, type.name)
        }
    }
}
