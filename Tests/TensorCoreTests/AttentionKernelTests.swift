import XCTest
import Foundation
import TensorCore
import TestSupport

final class AttentionKernelTests: XCTestCase {
    struct Result { var out, lse, dq, dk, dv: [Float] }

    /// Runs forward and backward of one strategy on flat arrays.
    func run(_ shape: AttentionShape, _ strategy: AttentionStrategy, q: [Float], k: [Float], v: [Float],
             dOut: [Float], mask: [Float]?) -> Result {
        var r = Result(out: .init(repeating: 0, count: shape.queryCount),
                       lse: .init(repeating: 0, count: shape.batch * shape.queryHeads * shape.queryLength),
                       dq: .init(repeating: 0, count: shape.queryCount), dk: .init(repeating: 0, count: shape.keyCount),
                       dv: .init(repeating: 0, count: shape.keyCount))
        let maskPointer = mask.map { m -> UnsafeMutablePointer<Float> in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: m.count); p.initialize(from: m, count: m.count); return p
        }
        defer { maskPointer?.deallocate() }
        attentionForward(out: &r.out, logSumExp: &r.lse, q: q, k: k, v: v, keyPaddingMask: maskPointer.map { UnsafePointer($0) },
                         shape: shape, strategy: strategy)
        attentionBackward(dq: &r.dq, dk: &r.dk, dv: &r.dv, dOut: dOut, q: q, k: k, v: v, out: r.out, logSumExp: r.lse,
                          keyPaddingMask: maskPointer.map { UnsafePointer($0) }, shape: shape, strategy: strategy)
        return r
    }

    func maxDiff(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).reduce(0) { m, p in p.0 == p.1 ? m : max(m, abs(p.0 - p.1)) }  // equal infinities count as 0
    }

    /// The GEMM path (grouped heads as one block, or tiles of query rows) and the row loops agree on every
    /// output, for sizes that are not multiples of the 8-lane loops, with masking, causal prefill and cached keys.
    func testGEMMAndRowLoopStrategiesAgree() {
        var rng = RandomGenerator(seed: 1)
        for (t, s, causal, masked) in [(37, 37, true, false), (3, 40, true, false), (20, 20, false, true), (6, 11, true, true)] {
            let shape = AttentionShape(batch: 2, queryHeads: 6, kvHeads: 2, queryLength: t, keyLength: s, headDim: 24, causal: causal)
            XCTAssertNoThrow(try shape.validate())
            let q = rng.normal([shape.queryCount]).array, k = rng.normal([shape.keyCount]).array
            let v = rng.normal([shape.keyCount]).array, dOut = rng.normal([shape.queryCount]).array
            let mask: [Float]? = masked ? (0..<(2 * s)).map { $0 >= 2 * s - 3 ? -.infinity : 0 } : nil
            let reference = run(shape, .rowLoops, q: q, k: k, v: v, dOut: dOut, mask: mask)
            XCTAssertGreaterThan(reference.dk.map(abs).max()!, 0.01)
            // One block per (batch, kv head); 2 of the 3 grouped heads per tile; 5-row tiles inside a head.
            for strategy in [AttentionStrategy.matrixProducts(), .matrixProducts(tileElements: 2 * t * s), .matrixProducts(tileElements: 5 * s)] {
                let a = run(shape, strategy, q: q, k: k, v: v, dOut: dOut, mask: mask)
                let label = "T \(t) S \(s) causal \(causal) masked \(masked) \(strategy)"
                XCTAssertLessThan(maxDiff(a.out, reference.out), 1e-5, label)
                XCTAssertLessThan(maxDiff(a.lse, reference.lse), 1e-5, label)
                XCTAssertLessThan(maxDiff(a.dq, reference.dq), 1e-5, label)
                XCTAssertLessThan(maxDiff(a.dk, reference.dk), 1e-5, label)
                XCTAssertLessThan(maxDiff(a.dv, reference.dv), 1e-5, label)
            }
        }
    }

    /// With v = identity (D = S) the output rows are the softmax probabilities themselves: they match a Double
    /// softmax over scores spanning ±60 to 1e-6 relative, plus the Float32 rounding of score − max (relative
    /// error ≈ 1.2e-7 · |score − max| once exponentiated).
    func testProbabilitiesMatchDoubleSoftmax() {
        let (t, s) = (8, 16)
        let shape = AttentionShape(batch: 1, queryHeads: 1, kvHeads: 1, queryLength: t, keyLength: s, headDim: s,
                                   causal: false, scale: 1)
        var rng = RandomGenerator(seed: 2)
        let q = rng.normal([t * s], std: 15).array
        var k = [Float](repeating: 0, count: s * s)
        for j in 0..<s { k[j * s + j] = 1 }  // scores = q
        for strategy in [AttentionStrategy.matrixProducts(), .rowLoops] {
            var out = [Float](repeating: 0, count: t * s), lse = [Float](repeating: 0, count: t)
            attentionForward(out: &out, logSumExp: &lse, q: q, k: k, v: k, keyPaddingMask: nil, shape: shape, strategy: strategy)
            for i in 0..<t {
                let row = q[(i * s)..<((i + 1) * s)].map(Double.init)
                let m = row.max()!, total = row.map { Foundation.exp($0 - m) }.reduce(0, +)
                XCTAssertEqual(Double(lse[i]), m + Foundation.log(total), accuracy: 1e-5 * max(1, abs(m)))
                for j in 0..<s {
                    let p = Foundation.exp(row[j] - m) / total
                    XCTAssertEqual(Double(out[i * s + j]), p, accuracy: p * (1e-6 + 2e-7 * (m - row[j])) + 1e-30, "\(strategy) row \(i) key \(j)")
                }
            }
        }
    }

    /// Every key masked: zero output and zero gradients instead of NaN, in both strategies.
    func testFullyMaskedRowsGiveZeros() {
        let shape = AttentionShape(batch: 1, queryHeads: 2, kvHeads: 1, queryLength: 5, keyLength: 5, headDim: 8, causal: false)
        var rng = RandomGenerator(seed: 3)
        let q = rng.normal([shape.queryCount]).array, k = rng.normal([shape.keyCount]).array
        let v = rng.normal([shape.keyCount]).array, dOut = rng.normal([shape.queryCount]).array
        for strategy in [AttentionStrategy.matrixProducts(), .rowLoops] {
            let r = run(shape, strategy, q: q, k: k, v: v, dOut: dOut, mask: [Float](repeating: -.infinity, count: 5))
            XCTAssertTrue(r.out.allSatisfy { $0 == 0 })
            XCTAssertTrue(r.lse.allSatisfy { $0 == -.infinity })
            XCTAssertTrue((r.dq + r.dk + r.dv).allSatisfy { $0 == 0 })
        }
    }

    func testShapeValidation() {
        XCTAssertThrowsError(try AttentionShape(batch: 1, queryHeads: 9, kvHeads: 2, queryLength: 1, keyLength: 1, headDim: 64, causal: true).validate())
        XCTAssertThrowsError(try AttentionShape(batch: 1, queryHeads: 9, kvHeads: 3, queryLength: 2, keyLength: 1, headDim: 64, causal: true).validate())
        XCTAssertThrowsError(try AttentionShape(batch: -1, queryHeads: 9, kvHeads: 3, queryLength: 1, keyLength: 1, headDim: 64, causal: true).validate())
        XCTAssertThrowsError(try AttentionShape(batch: 1, queryHeads: 9, kvHeads: 3, queryLength: 1 << 40, keyLength: 1 << 40, headDim: 64, causal: false).validate())
        let smol = AttentionShape(batch: 1, queryHeads: 9, kvHeads: 3, queryLength: 1, keyLength: 100, headDim: 64, causal: true)
        XCTAssertNoThrow(try smol.validate())
        XCTAssertEqual(smol.groupSize, 3)
        XCTAssertEqual(smol.scale, 0.125)
    }
}
