import XCTest
import TensorCore
import LinearAlgebra

final class LinearAlgebraErrorTests: XCTestCase {
    private func assertThrows<T>(_ expected: LinearAlgebraError, mentioning words: [String] = [],
                                 _ body: @autoclosure () throws -> T, line: UInt = #line) {
        XCTAssertThrowsError(try body(), line: line) { error in
            XCTAssertEqual(error as? LinearAlgebraError, expected, line: line)
            for word in words { XCTAssertTrue("\(error)".contains(word), "'\(error)' lacks '\(word)'", line: line) }
        }
    }

    func testRankOutOfRangeNamesRankAndShape() {
        var rng = RandomGenerator(seed: 41)
        let matrix = rng.normal([40, 25])
        assertThrows(.rankOutOfRange(operation: "truncatedSVD", rank: 0, shape: [40, 25], allowed: 1...25),
                     mentioning: ["rank 0", "[40, 25]", "1...25"], try truncatedSVD(matrix, rank: 0))
        assertThrows(.rankOutOfRange(operation: "truncatedSVD", rank: 26, shape: [40, 25], allowed: 1...25),
                     mentioning: ["rank 26"], try truncatedSVD(matrix, rank: 26))
        assertThrows(.rankOutOfRange(operation: "lowRankApproximation", rank: -3, shape: [40, 25], allowed: 1...25),
                     try lowRankApproximation(matrix, rank: -3))
        assertThrows(.rankOutOfRange(operation: "randomizedSVD", rank: 30, shape: [40, 25], allowed: 1...25),
                     try randomizedSVD(matrix, rank: 30, rng: &rng))
        assertThrows(.invalidArgument(operation: "eckartYoungBound", argument: "rank", reason: "4 is outside 0...3 (the number of singular values)"),
                     try eckartYoungBound(singularValues: [3, 2, 1], rank: 4))
        assertThrows(.rankOutOfRange(operation: "truncatedSVD", rank: 1, shape: [0, 5], allowed: 1...1),
                     try truncatedSVD(Tensor(zeros: [0, 5]), rank: 1))
    }

    func testNonFiniteEntriesAreLocated() {
        var rng = RandomGenerator(seed: 42)
        var matrix = rng.normal([6, 5])
        matrix[2, 3] = .nan
        assertThrows(.nonFiniteEntry(operation: "svd", argument: "matrix", row: 2, column: 3),
                     mentioning: ["[2, 3]", "NaN"], try svd(matrix))
        assertThrows(.nonFiniteEntry(operation: "qr", argument: "matrix", row: 2, column: 3), try qr(matrix))
        assertThrows(.nonFiniteEntry(operation: "truncatedSVD", argument: "matrix", row: 2, column: 3),
                     try truncatedSVD(matrix, rank: 2))
        var infinite = rng.normal([6, 5])
        infinite[5, 0] = -.infinity
        assertThrows(.nonFiniteEntry(operation: "reconstructionError", argument: "approximation", row: 5, column: 0),
                     try reconstructionError(original: rng.normal([6, 5]), approximation: infinite))
        assertThrows(.nonFiniteEntry(operation: "numericalRank", argument: "matrix", row: 5, column: 0),
                     try numericalRank(infinite))
    }

    func testNonMatricesAreRejected() {
        var rng = RandomGenerator(seed: 43)
        let cube = rng.normal([2, 3, 4])
        assertThrows(.notAMatrix(operation: "svd", argument: "matrix", shape: [2, 3, 4]), mentioning: ["2-D", "[2, 3, 4]"], try svd(cube))
        assertThrows(.notAMatrix(operation: "qr", argument: "matrix", shape: [2, 3, 4]), try qr(cube))
        assertThrows(.notAMatrix(operation: "truncatedSVD", argument: "matrix", shape: [2, 3, 4]), try truncatedSVD(cube, rank: 1))
        assertThrows(.notAMatrix(operation: "spectralNorm", argument: "matrix", shape: [5]), try spectralNorm(rng.normal([5])))
        assertThrows(.notAMatrix(operation: "orthonormalityError", argument: "matrix", shape: []), try orthonormalityError(.scalar(1)))
    }

    func testOtherBadArguments() {
        var rng = RandomGenerator(seed: 44)
        let matrix = rng.normal([8, 6])
        assertThrows(.shapeMismatch(operation: "reconstructionError", first: "original", firstShape: [8, 6],
                                    second: "approximation", secondShape: [6, 8]),
                     try reconstructionError(original: matrix, approximation: rng.normal([6, 8])))
        assertThrows(.invalidArgument(operation: "numericalRank", argument: "tolerance", reason: "must be finite and ≥ 0, got -1.0"),
                     try numericalRank(matrix, tolerance: -1))
        assertThrows(.invalidArgument(operation: "randomizedSVD", argument: "oversampling", reason: "must be ≥ 0, got -1"),
                     try randomizedSVD(matrix, rank: 2, oversampling: -1, rng: &rng))
        assertThrows(.invalidArgument(operation: "randomizedSVD", argument: "powerIterations", reason: "must be ≥ 0, got -2"),
                     try randomizedSVD(matrix, rank: 2, powerIterations: -2, rng: &rng))
        assertThrows(.invalidArgument(operation: "eckartYoungBound", argument: "singularValues", reason: "not descending at index 2"),
                     try eckartYoungBound(singularValues: [3, 2, 2.5], rank: 1))
        XCTAssertThrowsError(try eckartYoungBound(singularValues: [3, -1], rank: 1))
        XCTAssertThrowsError(try SVD(u: Tensor(zeros: [4, 2]), s: Tensor([2, 1], shape: [2]), vt: Tensor(zeros: [2, 3])).truncated(to: 3))
    }

    /// The TensorCore LAPACK wrappers validate on their own, for callers that skip LinearAlgebra.
    func testLAPACKWrappersRejectBadInput() {
        XCTAssertThrowsError(try LAPACK.gesdd(Tensor(zeros: [2, 2, 2]))) { error in
            XCTAssertEqual(error as? TensorError, .invalidShape([2, 2, 2], reason: "sgesdd needs a 2-D matrix"))
        }
        XCTAssertThrowsError(try LAPACK.qr(Tensor([1, .nan, 3, 4], shape: [2, 2]))) { error in
            guard case .invalidArgument(let op, let reason)? = error as? TensorError else { return XCTFail("\(error)") }
            XCTAssertEqual(op, "sgeqrf"); XCTAssertTrue(reason.contains("[0, 1]"), reason)
        }
        XCTAssertThrowsError(try LAPACK.singularValues(Tensor([.infinity], shape: [1, 1])))
    }
}
