import XCTest
import TensorCore
import Autograd
import TestSupport

final class AttentionOpsTests: XCTestCase {
    typealias Reference = TransformerOpsReference

    /// Causal grouped-query attention (4 query heads on 2 kv heads) equals explicit loops with softmax.
    func testCausalGroupedQueryMatchesNaive() throws {
        var rng = RandomGenerator(seed: 1)
        for (t, s) in [(5, 5), (3, 7)] {  // full prompt, and a chunk after 4 cached tokens
            let q = rng.normal([2, 4, t, 8]), k = rng.normal([2, 2, s, 8]), v = rng.normal([2, 2, s, 8])
            let out = try scaledDotProductAttention(q: Variable(q), k: Variable(k), v: Variable(v), causal: true)
            XCTAssertEqual(out.shape, [2, 4, t, 8])
            XCTAssertLessThan(maxAbsDifference(out.value, Reference.attention(q: q, k: k, v: v, causal: true)), 2e-6)
        }
    }

    /// BERT-style: all heads their own kv, not causal, padded keys removed by the additive mask.
    func testPaddingMaskMatchesNaive() throws {
        var rng = RandomGenerator(seed: 2)
        let q = rng.normal([2, 3, 6, 8]), k = rng.normal([2, 3, 6, 8]), v = rng.normal([2, 3, 6, 8])
        let keep = Tensor([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0], shape: [2, 6])
        let mask = try additiveKeyPaddingMask(fromAttentionMask: keep)
        XCTAssertEqual(mask[1, 4], -.infinity); XCTAssertEqual(mask[1, 3], 0)
        let out = try scaledDotProductAttention(q: Variable(q), k: Variable(k), v: Variable(v), causal: false, keyPaddingMask: mask)
        XCTAssertLessThan(maxAbsDifference(out.value, Reference.attention(q: q, k: k, v: v, causal: false, mask: mask)), 2e-6)
        // The padded keys' values cannot matter.
        var v2 = v
        for h in 0..<3 { for j in 4..<6 { for e in 0..<8 { v2[1, h, j, e] = 100 } } }
        let out2 = try scaledDotProductAttention(q: Variable(q), k: Variable(k), v: Variable(v2), causal: false, keyPaddingMask: mask)
        XCTAssertEqual(out.value, out2.value)
        XCTAssertThrowsError(try additiveKeyPaddingMask(fromAttentionMask: Tensor([1, 0.5], shape: [1, 2])))
    }

    func testCausalGroupedQueryGradients() throws {
        var rng = RandomGenerator(seed: 3)
        let q = Variable(rng.normal([2, 4, 5, 8]), requiresGrad: true)
        let k = Variable(rng.normal([2, 2, 5, 8]), requiresGrad: true)
        let v = Variable(rng.normal([2, 2, 5, 8]), requiresGrad: true)
        let weights = rng.normal([2, 4, 5, 8])
        let error = GradientCheck.maxRelativeError(inputs: [q, k, v], epsilon: 1e-2) { x in
            Reference.weightedSum(try! scaledDotProductAttention(q: x[0], k: x[1], v: x[2], causal: true), weights)
        }
        XCTAssertLessThan(error, 5e-4)
    }

    /// Non-causal with padding, and causal with cached keys (T < S), including the decode step T = 1.
    func testMaskedAndCachedGradients() throws {
        var rng = RandomGenerator(seed: 4)
        let mask = try additiveKeyPaddingMask(fromAttentionMask: Tensor([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0], shape: [2, 6]))
        // T = 6 runs the GEMM path, T ≤ 4 the row loops.
        let cases: [(t: Int, s: Int, causal: Bool, mask: Tensor?)] = [(6, 6, false, mask), (3, 6, true, nil), (1, 6, true, nil)]
        for c in cases {
            let q = Variable(rng.normal([2, 4, c.t, 8]), requiresGrad: true)
            let k = Variable(rng.normal([2, 2, c.s, 8]), requiresGrad: true)
            let v = Variable(rng.normal([2, 2, c.s, 8]), requiresGrad: true)
            let weights = rng.normal([2, 4, c.t, 8])
            let error = GradientCheck.maxRelativeError(inputs: [q, k, v], epsilon: 1e-2) { x in
                Reference.weightedSum(try! scaledDotProductAttention(q: x[0], k: x[1], v: x[2], causal: c.causal,
                                                                    keyPaddingMask: c.mask), weights)
            }
            XCTAssertLessThan(error, 5e-4, "T \(c.t), S \(c.s), causal \(c.causal)")
            if c.mask != nil {  // padded keys of batch 1 get exactly zero gradient
                for h in 0..<2 { for j in 4..<6 { for e in 0..<8 {
                    XCTAssertEqual(k.grad![1, h, j, e], 0); XCTAssertEqual(v.grad![1, h, j, e], 0)
                } } }
            }
        }
    }

    /// A decode step (one query against S cached keys) equals the last row of full causal attention, and a
    /// chunked prefill of the last 3 queries equals the last 3 rows.
    func testDecodeStepEqualsLastRowsOfFullAttention() throws {
        var rng = RandomGenerator(seed: 5)
        let (s, d) = (9, 64)
        let q = rng.normal([1, 9, s, d]), k = rng.normal([1, 3, s, d]), v = rng.normal([1, 3, s, d])
        let full = try scaledDotProductAttention(q: Variable(q), k: Variable(k), v: Variable(v), causal: true).value
        for t in [1, 3] {
            var tail = Tensor(zeros: [1, 9, t, d]), expected = Tensor(zeros: [1, 9, t, d])
            for h in 0..<9 { for i in 0..<t { for e in 0..<d {
                tail[0, h, i, e] = q[0, h, s - t + i, e]
                expected[0, h, i, e] = full[0, h, s - t + i, e]
            } } }
            let step = try scaledDotProductAttention(q: Variable(tail), k: Variable(k), v: Variable(v), causal: true).value
            XCTAssertLessThan(maxAbsDifference(step, expected), 1e-6, "T = \(t)")
        }
    }

    /// Frozen k and v get no gradient and do not change q's.
    func testFrozenInputsGetNoGradient() throws {
        var rng = RandomGenerator(seed: 6)
        let (qv, kv, vv) = (rng.normal([1, 2, 4, 8]), rng.normal([1, 1, 4, 8]), rng.normal([1, 1, 4, 8]))
        let seed = rng.normal([1, 2, 4, 8])
        let (q1, k1, v1) = (Variable(qv, requiresGrad: true), Variable(kv, requiresGrad: true), Variable(vv, requiresGrad: true))
        try scaledDotProductAttention(q: q1, k: k1, v: v1, causal: true).backward(seed: seed)
        let (q2, k2, v2) = (Variable(qv, requiresGrad: true), Variable(kv), Variable(vv))
        try scaledDotProductAttention(q: q2, k: k2, v: v2, causal: true).backward(seed: seed)
        XCTAssertNil(k2.grad); XCTAssertNil(v2.grad)
        XCTAssertEqual(q1.grad, q2.grad)
    }

    /// rope(q), rope(k) → attention: the composed graph's gradients reach q and k through both ops.
    func testRotaryThenAttentionGradients() throws {
        var rng = RandomGenerator(seed: 7)
        let table = try RotaryTable(start: 2, count: 5, dim: 8, theta: 10_000)
        let q = Variable(rng.normal([1, 4, 5, 8]), requiresGrad: true)
        let k = Variable(rng.normal([1, 2, 5, 8]), requiresGrad: true)
        let v = Variable(rng.normal([1, 2, 5, 8]), requiresGrad: true)
        let weights = rng.normal([1, 4, 5, 8])
        let error = GradientCheck.maxRelativeError(inputs: [q, k, v], epsilon: 1e-2) { x in
            let rq = try! rotaryEmbedding(x[0], table: table, layout: .halfSplit)
            let rk = try! rotaryEmbedding(x[1], table: table, layout: .halfSplit)
            return Reference.weightedSum(try! scaledDotProductAttention(q: rq, k: rk, v: x[2], causal: true), weights)
        }
        XCTAssertLessThan(error, 5e-4)
    }

    func testAttentionArgumentErrors() {
        let q = Variable(Tensor(zeros: [1, 3, 4, 8])), k = Variable(Tensor(zeros: [1, 2, 4, 8]))
        XCTAssertThrowsError(try scaledDotProductAttention(q: q, k: k, v: k, causal: true)) { error in
            XCTAssertTrue("\(error)".contains("not a multiple of kv heads"), "\(error)")
        }
        let k1 = Variable(Tensor(zeros: [1, 1, 3, 8]))
        XCTAssertThrowsError(try scaledDotProductAttention(q: q, k: k1, v: k1, causal: true))  // S < T
        XCTAssertNoThrow(try scaledDotProductAttention(q: q, k: k1, v: k1, causal: false))
        XCTAssertThrowsError(try scaledDotProductAttention(q: q, k: k1, v: Variable(Tensor(zeros: [1, 1, 3, 4])), causal: false))
        XCTAssertThrowsError(try scaledDotProductAttention(q: q, k: k1, v: k1, causal: false, keyPaddingMask: Tensor(zeros: [1, 4])))
        XCTAssertThrowsError(try scaledDotProductAttention(q: Variable(Tensor(zeros: [3, 4, 8])), k: k1, v: k1, causal: false))
    }
}
