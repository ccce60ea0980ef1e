// Scaled dot-product attention with grouped-query heads, forward and backward on raw buffers.
//
// q, out: [B, Hq, T, D]; k, v: [B, Hkv, S, D]; query head h reads kv head h / (Hq / Hkv). The causal mask is
// aligned to the end: query t sits at absolute position S − T + t and sees keys 0...S − T + t, so the same
// kernel serves a full prompt (T = S), a chunked prefill and a KV-cache decode step (T = 1). An optional
// additive mask [B, S] (0 keep, −inf drop) removes padded keys. Rows whose keys are all masked give zero.
//
// Forward keeps only the per-row log-sum-exp [B, Hq, T]; backward recomputes the probabilities from it
// (one extra Q·Kᵀ) instead of holding a [B, Hq, T, S] matrix per layer for the whole step.
//
// Large T: the Hq/Hkv query heads sharing a kv head are contiguous in q, so each (batch, kv head) block is
// one GEMM of rep·T rows (BLAS, multithreaded), with row-wise softmax work split across cores in between.
// Long sequences split the block into row tiles so the score scratch stays small.
// Small T (decode): plain loops, parallel over rows.
import Foundation

/// Sizes and options of one attention call.
public struct AttentionShape: Sendable, Equatable {
    /// B.
    public var batch: Int
    /// Hq: query heads.
    public var queryHeads: Int
    /// Hkv: key/value heads (Hq is a multiple of it).
    public var kvHeads: Int
    /// T: query rows per head.
    public var queryLength: Int
    /// S: key/value rows per head (cached keys included).
    public var keyLength: Int
    /// D.
    public var headDim: Int
    /// End-aligned causal mask: query t sees keys 0...S − T + t.
    public var causal: Bool
    /// Multiplies Q·Kᵀ; 1/√headDim unless a model says otherwise.
    public var scale: Float

    /// `scale` nil means 1/√headDim.
    public init(batch: Int, queryHeads: Int, kvHeads: Int, queryLength: Int, keyLength: Int, headDim: Int,
                causal: Bool, scale: Float? = nil) {
        self.batch = batch; self.queryHeads = queryHeads; self.kvHeads = kvHeads
        self.queryLength = queryLength; self.keyLength = keyLength; self.headDim = headDim; self.causal = causal
        self.scale = scale ?? 1 / Float(max(headDim, 1)).squareRoot()
    }

    /// Query heads per kv head.
    public var groupSize: Int { queryHeads / max(kvHeads, 1) }
    /// Elements of q (and out, dq): B·Hq·T·D.
    public var queryCount: Int { batch * queryHeads * queryLength * headDim }
    /// Elements of k (and v, dk, dv): B·Hkv·S·D.
    public var keyCount: Int { batch * kvHeads * keyLength * headDim }

    /// Throws unless the sizes describe a valid call (positive heads and dim, Hq a multiple of Hkv,
    /// S ≥ T when causal, element counts that fit in memory arithmetic).
    public func validate() throws {
        let op = "scaledDotProductAttention"
        guard batch >= 0, queryLength >= 0, keyLength >= 0 else {
            throw TensorError.invalidArgument(operation: op, reason: "negative size: batch \(batch), T \(queryLength), S \(keyLength)")
        }
        guard queryHeads > 0, kvHeads > 0, headDim > 0 else {
            throw TensorError.invalidArgument(operation: op, reason: "heads (\(queryHeads) query, \(kvHeads) kv) and head dim (\(headDim)) must be positive")
        }
        guard queryHeads % kvHeads == 0 else {
            throw TensorError.invalidArgument(operation: op, reason: "query heads \(queryHeads) not a multiple of kv heads \(kvHeads)")
        }
        guard !causal || keyLength >= queryLength else {
            throw TensorError.invalidArgument(operation: op, reason: "causal attention needs keys ≥ queries, got S \(keyLength) < T \(queryLength)")
        }
        guard scale.isFinite else { throw TensorError.invalidArgument(operation: op, reason: "scale \(scale) is not finite") }
        var total = 1
        for n in [batch, queryHeads, max(queryLength, keyLength), max(headDim, keyLength)] {
            let (p, o) = total.multipliedReportingOverflow(by: n)
            guard !o, p < 1 << 40 else { throw TensorError.invalidArgument(operation: op, reason: "sizes too large: \(self)") }
            total = p
        }
    }

    /// Keys query row t may attend to: 0..<visibleKeys(t).
    @inline(__always) func visibleKeys(_ t: Int) -> Int { causal ? keyLength - queryLength + t + 1 : keyLength }
}

/// How the kernels compute: BLAS GEMMs per (batch, kv head), or plain loops per row.
public enum AttentionStrategy: Sendable, Equatable {
    /// Loops for T ≤ 4 (decode steps), GEMMs otherwise.
    case automatic
    /// GEMMs over tiles of query rows whose score block holds at most `tileElements` floats (bounded scratch
    /// memory at long context; tiles inside one head also skip the keys a causal mask hides from all their rows).
    case matrixProducts(tileElements: Int = 1 << 20)
    /// Plain loops per query row (no BLAS), parallel over rows (forward) or (batch, kv head) (backward).
    case rowLoops

    func resolved(_ shape: AttentionShape) -> AttentionStrategy {
        guard self == .automatic else { return self }
        return shape.queryLength <= 4 ? .rowLoops : .matrixProducts()
    }
}

/// Tiles of the rep·T query rows of one (batch, kv head) block, each with the count of leading keys any of its
/// rows can see. Whole heads per tile while they fit the budget; otherwise runs of one head's rows.
private func queryTiles(_ shape: AttentionShape, tileElements: Int) -> [(rows: Range<Int>, keys: Int)] {
    let (T, S, rep) = (shape.queryLength, shape.keyLength, shape.groupSize)
    let budget = max(1, tileElements / max(S, 1))  // rows per tile
    var tiles: [(rows: Range<Int>, keys: Int)] = []
    if budget >= T {
        let headsPerTile = min(rep, budget / T)
        for h in stride(from: 0, to: rep, by: headsPerTile) { tiles.append(((h * T)..<(min(rep, h + headsPerTile) * T), S)) }
    } else {
        for h in 0..<rep {
            for t0 in stride(from: 0, to: T, by: budget) {
                let t1 = min(T, t0 + budget)
                tiles.append(((h * T + t0)..<(h * T + t1), shape.visibleKeys(t1 - 1)))
            }
        }
    }
    return tiles
}

/// Attention forward. out: [B, Hq, T, D]; logSumExp: [B, Hq, T] (optional; backward needs it);
/// q: [B, Hq, T, D]; k, v: [B, Hkv, S, D]; keyPaddingMask: additive [B, S] or nil. `shape` must be validated.
public func attentionForward(out: UnsafeMutablePointer<Float>, logSumExp: UnsafeMutablePointer<Float>?,
                             q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                             keyPaddingMask: UnsafePointer<Float>?, shape: AttentionShape,
                             strategy: AttentionStrategy = .automatic) {
    let (T, S, D, rep) = (shape.queryLength, shape.keyLength, shape.headDim, shape.groupSize)
    guard shape.batch > 0, T > 0 else { return }
    switch strategy.resolved(shape) {
    case .matrixProducts(let tileElements):
        let tiles = queryTiles(shape, tileElements: tileElements)
        let scoreCount = max(tiles.map { $0.rows.count * $0.keys }.max() ?? 1, 1)
        let scores = BufferPool.allocateScratch(count: scoreCount)
        defer { BufferPool.releaseScratch(scores, count: scoreCount) }
        for b in 0..<shape.batch {
            let mask = keyPaddingMask.map { $0 + b * S }
            for g in 0..<shape.kvHeads {
                let qOffset = (b * shape.queryHeads + g * rep) * T  // first query row of the block
                let kv = (b * shape.kvHeads + g) * S * D
                for (rows, keys) in tiles {
                    let first = qOffset + rows.lowerBound
                    // scores: [rows, keys] = scale · Q_tile · K[0..<keys]ᵀ
                    BLAS.gemm(.none, .transposed, m: rows.count, n: keys, k: D, alpha: shape.scale, a: q + first * D, lda: D,
                              b: k + kv, ldb: D, c: scores, ldc: keys)
                    Parallel.forRanges(rows.count, minChunk: max(1, 4096 / max(keys, 1))) { local in
                        for i in local {
                            let row = rows.lowerBound + i
                            let lse = softmaxRow(scores + i * keys, count: keys, visible: shape.visibleKeys(row % T), mask: mask)
                            logSumExp?[first + i] = lse
                        }
                    }
                    BLAS.gemm(.none, .none, m: rows.count, n: D, k: keys, a: scores, lda: keys, b: v + kv, ldb: D,
                              c: out + first * D, ldc: D)
                }
            }
        }
    default:
        let rows = shape.batch * shape.queryHeads * T
        Parallel.forRanges(rows, minChunk: max(1, 8192 / max(S * D, 1))) { range in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(S, 1))
            defer { p.deallocate() }
            for row in range {
                let t = row % T, bh = row / T, b = bh / shape.queryHeads, h = bh % shape.queryHeads
                let kv = (b * shape.kvHeads + h / rep) * S * D
                let qr = q + row * D, visible = shape.visibleKeys(t)
                for j in 0..<visible { p[j] = shape.scale * attentionDot(qr, k + kv + j * D, D) }
                let lse = softmaxRow(p, count: S, visible: visible, mask: keyPaddingMask.map { $0 + b * S })
                logSumExp?[row] = lse
                let o = out + row * D
                o.update(repeating: 0, count: D)
                for j in 0..<visible { let w = p[j], vr = v + kv + j * D; for d in 0..<D { o[d] += w * vr[d] } }
            }
        }
    }
}

/// Attention backward. Writes (does not add) dq: [B, Hq, T, D] and dk, dv: [B, Hkv, S, D], each skipped when
/// nil; dk and dv sum over the query heads sharing a kv head. out and logSumExp come from the forward pass.
public func attentionBackward(dq: UnsafeMutablePointer<Float>?, dk: UnsafeMutablePointer<Float>?,
                              dv: UnsafeMutablePointer<Float>?, dOut: UnsafePointer<Float>,
                              q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                              out: UnsafePointer<Float>, logSumExp: UnsafePointer<Float>,
                              keyPaddingMask: UnsafePointer<Float>?, shape: AttentionShape,
                              strategy: AttentionStrategy = .automatic) {
    let (T, S, D, rep) = (shape.queryLength, shape.keyLength, shape.headDim, shape.groupSize)
    dq?.update(repeating: 0, count: shape.queryCount)
    dk?.update(repeating: 0, count: shape.keyCount)
    dv?.update(repeating: 0, count: shape.keyCount)
    guard shape.batch > 0, T > 0, S > 0, dq != nil || dk != nil || dv != nil else { return }
    let needScores = dq != nil || dk != nil
    switch strategy.resolved(shape) {
    case .matrixProducts(let tileElements):
        let tiles = queryTiles(shape, tileElements: tileElements)
        let capacity = max(tiles.map { $0.rows.count * $0.keys }.max() ?? 1, 1)
        let dpCount = needScores ? capacity : 1
        let p = BufferPool.allocateScratch(count: capacity), dp = BufferPool.allocateScratch(count: dpCount)
        defer { BufferPool.releaseScratch(p, count: capacity); BufferPool.releaseScratch(dp, count: dpCount) }
        for b in 0..<shape.batch {
            let mask = keyPaddingMask.map { $0 + b * S }
            for g in 0..<shape.kvHeads {
                let qOffset = (b * shape.queryHeads + g * rep) * T
                let kv = (b * shape.kvHeads + g) * S * D
                for (rows, keys) in tiles {
                    let first = qOffset + rows.lowerBound
                    let qTile = q + first * D, dOutTile = dOut + first * D
                    let rowChunk = max(1, 4096 / max(keys, 1))
                    // P = exp(scale·Q·Kᵀ + mask − lse), recomputed: [rows, keys].
                    BLAS.gemm(.none, .transposed, m: rows.count, n: keys, k: D, alpha: shape.scale, a: qTile, lda: D,
                              b: k + kv, ldb: D, c: p, ldc: keys)
                    Parallel.forRanges(rows.count, minChunk: rowChunk) { local in
                        for i in local {
                            probabilitiesRow(p + i * keys, count: keys, visible: shape.visibleKeys((rows.lowerBound + i) % T),
                                             mask: mask, logSumExp: logSumExp[first + i])
                        }
                    }
                    // dV[0..<keys] += Pᵀ·dO: summed over every query row (and so every query head) of the group.
                    if let dv = dv {
                        BLAS.gemm(.transposed, .none, m: keys, n: D, k: rows.count, a: p, lda: keys, b: dOutTile, ldb: D,
                                  beta: 1, c: dv + kv, ldc: D)
                    }
                    guard needScores else { continue }
                    // dP = dO·Vᵀ, then dS = P ⊙ (dP − rowsum(dO ⊙ O)) in place.
                    BLAS.gemm(.none, .transposed, m: rows.count, n: keys, k: D, a: dOutTile, lda: D, b: v + kv, ldb: D,
                              c: dp, ldc: keys)
                    Parallel.forRanges(rows.count, minChunk: rowChunk) { local in
                        for i in local {
                            let delta = attentionDot(dOutTile + i * D, out + (first + i) * D, D)
                            let pr = p + i * keys, dpr = dp + i * keys
                            for j in 0..<keys { dpr[j] = pr[j] * (dpr[j] - delta) }
                        }
                    }
                    if let dq = dq {  // dQ_tile = scale · dS · K
                        BLAS.gemm(.none, .none, m: rows.count, n: D, k: keys, alpha: shape.scale, a: dp, lda: keys,
                                  b: k + kv, ldb: D, c: dq + first * D, ldc: D)
                    }
                    if let dk = dk {  // dK[0..<keys] += scale · dSᵀ · Q_tile
                        BLAS.gemm(.transposed, .none, m: keys, n: D, k: rows.count, alpha: shape.scale, a: dp, lda: keys,
                                  b: qTile, ldb: D, beta: 1, c: dk + kv, ldc: D)
                    }
                }
            }
        }
    default:
        // One task per (batch, kv head): it owns that head's dk/dv rows, so no two tasks write the same memory.
        Parallel.forRanges(shape.batch * shape.kvHeads) { range in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: S)
            defer { p.deallocate() }
            for bg in range {
                let b = bg / shape.kvHeads, kv = bg * S * D
                let mask = keyPaddingMask.map { $0 + b * S }
                for row in (bg * rep * T)..<((bg + 1) * rep * T) {
                    let t = row % T, visible = shape.visibleKeys(t)
                    let qr = q + row * D, gr = dOut + row * D
                    for j in 0..<visible { p[j] = shape.scale * attentionDot(qr, k + kv + j * D, D) }
                    probabilitiesRow(p, count: S, visible: visible, mask: mask, logSumExp: logSumExp[row])
                    let delta = attentionDot(gr, out + row * D, D)
                    for j in 0..<visible where p[j] != 0 {
                        let kr = k + kv + j * D, vr = v + kv + j * D, pj = p[j]
                        if let dv = dv { let dvr = dv + kv + j * D; for d in 0..<D { dvr[d] += pj * gr[d] } }
                        guard needScores else { continue }
                        let ds = shape.scale * pj * (attentionDot(gr, vr, D) - delta)
                        if let dq = dq { let dqr = dq + row * D; for d in 0..<D { dqr[d] += ds * kr[d] } }
                        if let dk = dk { let dkr = dk + kv + j * D; for d in 0..<D { dkr[d] += ds * qr[d] } }
                    }
                }
            }
        }
    }
}

// MARK: - Row pieces

/// In place: scaled scores row[0..<visible] (+ mask) → softmax probabilities, zeros beyond `visible`.
/// Returns the row's log-sum-exp (−inf when every key is masked; the row is then all zero).
@inline(__always)
private func softmaxRow(_ row: UnsafeMutablePointer<Float>, count: Int, visible: Int, mask: UnsafePointer<Float>?) -> Float {
    if let mask = mask { for j in 0..<visible { row[j] += mask[j] } }
    var m = -Float.infinity
    for j in 0..<visible { m = max(m, row[j]) }
    guard m > -Float.infinity else { row.update(repeating: 0, count: count); return -.infinity }
    for j in 0..<visible { row[j] = expNonPositive(row[j] - m) }
    let sum = attentionSum(row, visible)
    let inverse = 1 / sum
    for j in 0..<visible { row[j] *= inverse }
    (row + visible).update(repeating: 0, count: count - visible)
    return m + Foundation.log(sum)
}

/// In place: scaled scores row[0..<visible] (+ mask) → exp(score − lse), zeros elsewhere (backward recompute).
@inline(__always)
private func probabilitiesRow(_ row: UnsafeMutablePointer<Float>, count: Int, visible: Int, mask: UnsafePointer<Float>?,
                              logSumExp lse: Float) {
    guard lse > -Float.infinity else { row.update(repeating: 0, count: count); return }
    if let mask = mask { for j in 0..<visible { row[j] += mask[j] } }
    for j in 0..<visible { row[j] = expNonPositive(row[j] - lse) }
    (row + visible).update(repeating: 0, count: count - visible)
}

/// e^x for x ≤ 0 (softmax arguments), branch-free so loops vectorise: x = n·ln2 + r, |r| ≤ ln2/2, e^r by
/// Cephes' degree-6 polynomial (≈1 ulp), 2^n by building the exponent bits. Results below the smallest normal
/// Float (x < −87.33, including −inf) are 0; NaN stays NaN.
@inline(__always)
private func expNonPositive(_ x: Float) -> Float {
    let clamped = min(max(x, -87.33), 0)
    // Adding 1.5·2²³ rounds to an integer and leaves n in the low mantissa bits (no Float→Int conversion).
    let shifted = clamped * 1.442_695_04 + 12_582_912
    let n = shifted - 12_582_912
    let nBits = Int32(bitPattern: shifted.bitPattern) &- Int32(bitPattern: Float(12_582_912).bitPattern)
    let r = clamped - n * 0.693_359_375 + n * 2.121_944_4e-4    // ln2 split in two for an exact n·ln2_hi
    var p: Float = 1.987_569_15e-4
    p = p * r + 1.398_199_950_7e-3
    p = p * r + 8.333_451_907_3e-3
    p = p * r + 4.166_579_589_4e-2
    p = p * r + 1.666_666_545_9e-1
    p = p * r + 5.000_000_120_1e-1
    p = p * (r * r) + r + 1
    let twoToN = Float(bitPattern: UInt32(bitPattern: (nBits &+ 127) << 23))
    return x < -87.33 ? 0 : p * twoToN
}

/// Σ a[i]·b[i] with eight lanes (vectorises; a single scalar accumulator would not).
@inline(__always)
private func attentionDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    var i = 0
    while i + 8 <= n {
        acc += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        i += 8
    }
    var s = acc.sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// Σ a[i] with eight lanes.
@inline(__always)
private func attentionSum(_ a: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    let ra = UnsafeRawPointer(a)
    var i = 0
    while i + 8 <= n { acc += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self); i += 8 }
    var s = acc.sum()
    while i < n { s += a[i]; i += 1 }
    return s
}
