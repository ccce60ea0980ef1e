// decodeAttention (one query row per head against strided cached heads) against the general attention kernel
// on the same keys laid out contiguously.
import XCTest
import TensorCore

final class DecodeAttentionKernelTests: XCTestCase {
    func testMatchesGeneralKernelWithStridedHeads() {
        var rng = RandomGenerator(seed: 5)
        for (heads, kvHeads, keys, dim) in [(9, 3, 37, 64), (4, 4, 1, 16), (6, 2, 300, 12), (9, 3, 1000, 64), (2, 1, 129, 8)] {
            let capacity = keys + 13   // room left after the valid rows, as in a KV cache
            let q = rng.normal([heads, dim]).array
            let k = rng.normal([kvHeads, keys, dim], std: 3).array, v = rng.normal([kvHeads, keys, dim]).array
            // Strided copies: kv head g's rows at g · capacity · dim, garbage (NaN) in the unused rows.
            var ks = [Float](repeating: .nan, count: kvHeads * capacity * dim), vs = ks
            for g in 0..<kvHeads { for j in 0..<(keys * dim) { ks[g * capacity * dim + j] = k[g * keys * dim + j]; vs[g * capacity * dim + j] = v[g * keys * dim + j] } }
            var fast = [Float](repeating: 0, count: heads * dim), reference = fast
            let scale = 1 / Float(dim).squareRoot()
            decodeAttention(out: &fast, q: q, keys: ks, values: vs, headStride: capacity * dim, queryHeads: heads,
                            kvHeads: kvHeads, keyLength: keys, headDim: dim, scale: scale)
            let shape = AttentionShape(batch: 1, queryHeads: heads, kvHeads: kvHeads, queryLength: 1, keyLength: keys,
                                       headDim: dim, causal: true)
            attentionForward(out: &reference, logSumExp: nil, q: q, k: k, v: v, keyPaddingMask: nil, shape: shape, strategy: .rowLoops)
            let worst = zip(fast, reference).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(worst, 1e-5, "heads \(heads)/\(kvHeads), keys \(keys), dim \(dim)")
        }
    }
}
