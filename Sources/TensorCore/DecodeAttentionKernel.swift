// Attention for one decode step: each query head's single new row against every cached key of its kv head.
// The cache keeps each kv head's keys as a contiguous [S, D] block inside a larger buffer (room to grow), so
// heads are `headStride` floats apart rather than S·D.
//
// Work is split by (kv head, key range): the query heads sharing a kv head are done together, so each cached
// key and value row is read once per step (the cache, not the weights, dominates memory traffic for long
// contexts), and long contexts are cut into key ranges whose partial softmaxes are merged at the end
// (flash-decoding), so two threads stay busy even with only a few kv heads.
import Foundation

/// out[h] = softmax(scale · q[h]·K_gᵀ) · V_g for every query head h, with g = h / (queryHeads / kvHeads).
/// q, out: [queryHeads, headDim]; keys, values: kv head g's [keyLength, headDim] rows start at g · headStride.
/// Every cached key is visible (the new token's own key is already in the cache).
public func decodeAttention(out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, keys: UnsafePointer<Float>,
                            values: UnsafePointer<Float>, headStride: Int, queryHeads: Int, kvHeads: Int,
                            keyLength: Int, headDim: Int, scale: Float) {
    let (S, D) = (keyLength, headDim)
    guard queryHeads > 0, kvHeads > 0, D > 0 else { return }
    guard S > 0 else { out.update(repeating: 0, count: queryHeads * D); return }
    let group = max(1, queryHeads / kvHeads)
    // Key ranges per kv head: enough pieces for every thread, each at least 64 keys.
    let splits = max(1, min((2 * Parallel.threadCount + kvHeads - 1) / kvHeads, S / 64))
    let pieces = kvHeads * splits
    // Per (query head, piece): running max, exp-sum and unnormalised output.
    let maxima = UnsafeMutablePointer<Float>.allocate(capacity: queryHeads * splits)
    let sums = UnsafeMutablePointer<Float>.allocate(capacity: queryHeads * splits)
    let partial = UnsafeMutablePointer<Float>.allocate(capacity: queryHeads * splits * D)
    defer { maxima.deallocate(); sums.deallocate(); partial.deallocate() }
    let minPieces = max(1, 32_768 / max(S / splits * D * group, 1))
    Parallel.forBalancedRanges(pieces, minChunk: minPieces, chunksPerThread: 1) { range in
        let longest = (S + splits - 1) / splits
        let p = UnsafeMutablePointer<Float>.allocate(capacity: group * longest)
        defer { p.deallocate() }
        for piece in range {
            let g = piece / splits, split = piece % splits
            let j0 = S * split / splits, j1 = S * (split + 1) / splits, n = j1 - j0
            let k = keys + g * headStride, v = values + g * headStride
            // Scores: each key row is read once for all of the group's query heads.
            for j in 0..<n {
                let kr = k + (j0 + j) * D
                for i in 0..<group { p[i * n + j] = scale * decodeDot(q + (g * group + i) * D, kr, D) }
            }
            for i in 0..<group {
                let h = g * group + i, slot = h * splits + split
                var m = -Float.infinity
                for j in 0..<n { m = max(m, p[i * n + j]) }
                maxima[slot] = m
                sums[slot] = decodeExpShifted(p + i * n, n, by: m)
                (partial + slot * D).update(repeating: 0, count: D)
            }
            // Values: each row read once, added into every head's partial output.
            for j in 0..<n {
                let vr = v + (j0 + j) * D
                for i in 0..<group {
                    let slot = (g * group + i) * splits + split
                    decodeAxpy(p[i * n + j], vr, partial + slot * D, D)
                }
            }
        }
    }
    // Merge the pieces of each head: rescale to the common maximum, then normalise.
    for h in 0..<queryHeads {
        var m = -Float.infinity
        for split in 0..<splits { m = max(m, maxima[h * splits + split]) }
        let o = out + h * D
        o.update(repeating: 0, count: D)
        var total: Float = 0
        for split in 0..<splits {
            let slot = h * splits + split, w = Foundation.exp(maxima[slot] - m)
            total += w * sums[slot]
            decodeAxpy(w, partial + slot * D, o, D)
        }
        let inverse = 1 / total
        for d in 0..<D { o[d] *= inverse }
    }
}

/// Σ a[i]·b[i] with two 8-lane accumulators.
@inline(__always)
private func decodeDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    var i = 0
    while i + 16 <= n {
        acc0 = acc0.addingProduct(ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self), rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self))
        acc1 = acc1.addingProduct(ra.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self), rb.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self))
        i += 16
    }
    var s = (acc0 + acc1).sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// y += a·x over n floats.
@inline(__always)
private func decodeAxpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    let rx = UnsafeRawPointer(x), ry = UnsafeMutableRawPointer(y)
    var i = 0
    while i + 8 <= n {
        let r = ry.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            .addingProduct(rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self), a)
        ry.storeBytes(of: r, toByteOffset: i * 4, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { y[i] += a * x[i]; i += 1 }
}

/// In place p[j] = e^(p[j] − shift) for j < n (every argument ≤ 0); returns Σ p[j].
@inline(__always)
private func decodeExpShifted(_ p: UnsafeMutablePointer<Float>, _ n: Int, by shift: Float) -> Float {
    let raw = UnsafeMutableRawPointer(p)
    var acc = SIMD8<Float>()
    var j = 0
    while j + 8 <= n {
        let e = expOfNonPositive(raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self) - SIMD8(repeating: shift))
        raw.storeBytes(of: e, toByteOffset: j * 4, as: SIMD8<Float>.self)
        acc += e
        j += 8
    }
    var sum = acc.sum()
    while j < n { p[j] = Foundation.exp(p[j] - shift); sum += p[j]; j += 1 }
    return sum
}

/// e^x for 8 lanes of x ≤ 0: x = n·ln 2 + r with |r| ≤ ln2/2, e^r from a degree-6 minimax polynomial (about
/// 1 ulp), 2^n from the exponent bits. Lanes below −87.3 (including −∞) give 0.
@inline(__always)
private func expOfNonPositive(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let clamped = x.clamped(lowerBound: SIMD8(repeating: -87.3), upperBound: SIMD8(repeating: 0))
    let n = (clamped * 1.442_695_04).rounded(.toNearestOrEven)
    let r = clamped - n * 0.693_359_375 + n * 2.121_944_4e-4
    var poly = SIMD8<Float>(repeating: 1.987_569_15e-4)
    poly = poly * r + 1.398_199_950_7e-3
    poly = poly * r + 8.333_451_907_3e-3
    poly = poly * r + 4.166_579_589_4e-2
    poly = poly * r + 1.666_666_545_9e-1
    poly = poly * r + 5.000_000_120_1e-1
    poly = poly * (r * r) + r + 1
    let bits = (SIMD8<Int32>(n, rounding: .towardZero) &+ 127) &<< 23
    let result = poly * unsafeBitCast(bits, to: SIMD8<Float>.self)
    return result.replacing(with: 0, where: x .< -87.3)
}
