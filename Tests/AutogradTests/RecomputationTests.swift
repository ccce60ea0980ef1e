// Activation recomputation: the same values and gradients as the recorded graph (dropout masks replayed from
// the same random stream position), parameters inside a segment trained even when its input is frozen, and
// nothing but the inputs kept between forward and backward.
import XCTest
import Autograd
import TensorCore

final class RecomputationTests: XCTestCase {
    /// x → dropout → linear(W) → silu → + x: a residual block with a parameter and randomness inside.
    func block(_ w: Variable) -> ([Variable], inout RandomGenerator) throws -> Variable {
        { inputs, rng in
            let dropped = dropout(inputs[0], p: 0.25, rng: &rng, training: true)
            return add(inputs[0], silu(linear(dropped, weight: w)))
        }
    }

    func testValuesGradientsAndRandomStreamEqualTheRecordedGraph() throws {
        let x0 = parameter([6, 5], seed: 1), w0 = parameter([5, 5], seed: 2, scale: 0.5)
        let x1 = Variable(x0.value, requiresGrad: true), w1 = Variable(w0.value, requiresGrad: true)
        var plainRNG = RandomGenerator(seed: 42), recomputedRNG = RandomGenerator(seed: 42)
        // Two blocks in a row, so the second replay starts mid-stream.
        var plain = try block(w0)([x0], &plainRNG)
        plain = try block(w0)([plain], &plainRNG)
        var segmented = try recomputed([x1], rng: &recomputedRNG, block(w1))
        segmented = try recomputed([segmented], rng: &recomputedRNG, block(w1))
        XCTAssertEqual(segmented.value, plain.value)
        XCTAssertEqual(recomputedRNG.position, plainRNG.position, "the caller's stream advances as without recomputation")
        weightedSum(plain).backward()
        weightedSum(segmented).backward()
        XCTAssertEqual(x1.grad, x0.grad)
        XCTAssertEqual(w1.grad, w0.grad)
        XCTAssertGreaterThan(w1.grad!.l2Norm(), 1e-3)
    }

    func testFiniteDifferencesThroughARecomputedSegment() {
        let x = parameter([4, 3], seed: 3), w = parameter([3, 3], seed: 4, scale: 0.7)
        let error = gradientError([x, w]) { v in
            var rng = RandomGenerator(seed: 5)
            return try! recomputed([v[0]], rng: &rng) { inputs, _ in gelu(linear(inputs[0], weight: v[1])) }
        }
        XCTAssertLessThan(error, 2e-3)
    }

    func testParametersInsideAFrozenInputSegmentStillLearn() throws {
        let x = Variable(Tensor(repeating: 0.5, shape: [3, 4]))  // frozen (e.g. an embedding lookup)
        let w = parameter([2, 4], seed: 6)
        var rng = RandomGenerator(seed: 0)
        let y = try recomputed([x], rng: &rng) { inputs, _ in linear(inputs[0], weight: w) }
        XCTAssertTrue(y.requiresGrad)
        sum(y).backward()
        // d Σ (x Wᵀ) / dW = column sums of x for every output row: 3 rows × 0.5.
        XCTAssertEqual(w.grad?.array, Array(repeating: 1.5, count: 8))
        XCTAssertNil(x.grad)
    }

    func testASegmentWithNothingTrainableRecordsNothing() throws {
        let x = Variable(Tensor(repeating: 1, shape: [2, 2])), w = Variable(Tensor(repeating: 2, shape: [2, 2]))
        var rng = RandomGenerator(seed: 0)
        let y = try recomputed([x], rng: &rng) { inputs, _ in linear(inputs[0], weight: w) }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertEqual(y.value.array, [4, 4, 4, 4])
    }

    func testForwardKeepsNoIntermediateNodes() throws {
        let w = parameter([4, 4], seed: 7)
        var captured: [Variable] = []
        var rng = RandomGenerator(seed: 0)
        let y = try recomputed([parameter([2, 4], seed: 8)], rng: &rng) { inputs, _ in
            let hidden = silu(linear(inputs[0], weight: w))
            captured.append(hidden)
            return linear(hidden, weight: w)
        }
        // The first (unrecorded) pass builds values without a graph; only the segment itself is recorded.
        XCTAssertTrue(captured[0].isLeaf)
        XCTAssertTrue(y.requiresGrad)
        XCTAssertTrue(GradientRecording.isEnabled)
        sum(y).backward()  // replays: a second, recorded pass
        XCTAssertEqual(captured.count, 2)
        XCTAssertFalse(captured[1].isLeaf)
        XCTAssertNotNil(w.grad)
    }
}
