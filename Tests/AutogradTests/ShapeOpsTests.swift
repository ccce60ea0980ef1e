import XCTest
import Autograd
import TensorCore
import TestSupport

final class ShapeOpsTests: XCTestCase {
    func testForwardValues() {
        let x = Variable(Tensor((0..<6).map(Float.init), shape: [2, 3]))
        XCTAssertEqual(transpose(x).value.array, [0, 3, 1, 4, 2, 5])
        XCTAssertEqual(reshape(x, [3, -1]).shape, [3, 2])
        XCTAssertEqual(slice(x, dimension: 1, range: 1..<3).value.array, [1, 2, 4, 5])
        XCTAssertEqual(slice(x, dimension: 0, range: 1..<2).value.array, [3, 4, 5])
        let y = Variable(Tensor([9, 8], shape: [2, 1]))
        XCTAssertEqual(concat([x, y], dimension: 1).value.array, [0, 1, 2, 9, 3, 4, 5, 8])
        XCTAssertEqual(concat([x, x], dimension: 0).value.array, [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5])
        // [B=1, T=2, H=3, D=1] → [B, H, T, D]: element (t, h) moves to (h, t).
        XCTAssertEqual(permute(reshape(x, [1, 2, 3, 1]), [0, 2, 1, 3]).value.array, [0, 3, 1, 4, 2, 5])
    }

    func testShapeGradients() {
        let x = parameter([2, 3, 4, 5], seed: 1)
        XCTAssertLessThan(gradientError([x]) { v in permute(v[0], [0, 2, 1, 3]) }, 2e-3)
        XCTAssertLessThan(gradientError([x]) { v in permute(v[0], [3, 1, 0, 2]) }, 2e-3)
        XCTAssertLessThan(gradientError([x]) { v in reshape(v[0], [6, 20]) }, 2e-3)
        XCTAssertLessThan(gradientError([x]) { v in slice(v[0], dimension: 2, range: 1..<3) }, 2e-3)
        let m = parameter([3, 4], seed: 2), n = parameter([3, 2], seed: 3)
        XCTAssertLessThan(gradientError([m]) { v in transpose(v[0]) }, 2e-3)
        XCTAssertLessThan(gradientError([m, n]) { v in concat([v[0], v[1], v[0]], dimension: -1) }, 2e-3)
    }

    func testEmbeddingLookupAndScatterAddGradient() throws {
        let table = Variable(Tensor([0, 1, 10, 11, 20, 21], shape: [3, 2]), requiresGrad: true)
        let rows = try embedding(ids: [2, 0, 2], table: table)
        XCTAssertEqual(rows.value.array, [20, 21, 0, 1, 20, 21])
        sum(mul(rows, Variable(Tensor([1, 2, 3, 4, 5, 6], shape: [3, 2])))).backward()
        // Row 2 is used twice: its gradient is the sum of both uses; row 1 is unused.
        XCTAssertEqual(table.grad!.array, [3, 4, 0, 0, 6, 8])
        let fromTensor = try embedding(ids: Tensor([1, 2, 0, 1], shape: [2, 2]), table: table)
        XCTAssertEqual(fromTensor.shape, [2, 2, 2])
        XCTAssertEqual(fromTensor.value.array, [10, 11, 20, 21, 0, 1, 10, 11])
        let t2 = parameter([5, 3], seed: 4)
        XCTAssertLessThan(gradientError([t2]) { v in try! embedding(ids: [4, 1, 4, 0], table: v[0]) }, 2e-3)
    }

    func testFrozenEmbeddingRecordsNothingAndBadIdsThrow() throws {
        let table = Variable(Tensor(zeros: [4, 2]))
        let y = try embedding(ids: [1, 3], table: table)
        XCTAssertFalse(y.requiresGrad)
        XCTAssertThrowsError(try embedding(ids: [4], table: table)) { error in
            XCTAssertTrue("\(error)".contains("id 4"), "\(error)")
        }
        XCTAssertThrowsError(try embedding(ids: [-1], table: table))
        XCTAssertEqual(try embedding(ids: [3, 1] as [Int], table: table).shape, [2, 2])
        XCTAssertThrowsError(try embedding(ids: [Int(Int32.max) + 5] as [Int], table: table))
        XCTAssertThrowsError(try embedding(ids: Tensor([0.5], shape: [1]), table: table))
    }
}
