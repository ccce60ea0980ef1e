// Reductions: sums, means, maxima (whole tensor and over the last dimension), norms, finiteness.
// Float sums are not reassociated by the compiler, so the inner loops use explicit SIMD8 accumulators;
// partial sums of 64 elements are added in Double, which keeps 100M-element sums accurate.

/// Elements summed in Float before the partial is added in Double.
let reductionBlock = 4096

/// Σ p[0..<n]: eight Float lanes over 64-element runs, each run's total added in Double, so long sums
/// keep ~1e-7 relative accuracy (a plain Float loop over 1M values drifts by 1e-5 and does not vectorise).
@inline(__always)
public func simdSum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var total: Double = 0
    var i = 0
    let raw = UnsafeRawPointer(p)
    while i + 64 <= n {
        var acc = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        for k in 1..<8 { acc += raw.loadUnaligned(fromByteOffset: (i + 8 * k) * 4, as: SIMD8<Float>.self) }
        total += Double(acc.sum())
        i += 64
    }
    var s: Float = 0
    while i < n { s += p[i]; i += 1 }
    return Float(total + Double(s))
}

/// Σ p[i]², blocked like `simdSum`.
@inline(__always)
public func simdSumOfSquares(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var total: Double = 0
    var i = 0
    let raw = UnsafeRawPointer(p)
    while i + 64 <= n {
        var acc = SIMD8<Float>(repeating: 0)
        for k in 0..<8 {
            let v = raw.loadUnaligned(fromByteOffset: (i + 8 * k) * 4, as: SIMD8<Float>.self)
            acc += v * v
        }
        total += Double(acc.sum())
        i += 64
    }
    var s: Float = 0
    while i < n { s += p[i] * p[i]; i += 1 }
    return Float(total + Double(s))
}

/// Σ x[i]·y[i] with eight lanes.
@inline(__always)
public func simdDot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    var i = 0
    let rx = UnsafeRawPointer(x), ry = UnsafeRawPointer(y)
    while i + 8 <= n {
        acc += rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            * ry.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        i += 8
    }
    var s = acc.sum()
    while i < n { s += x[i] * y[i]; i += 1 }
    return s
}

/// max p[0..<n] (n ≥ 1); NaN propagates as in PyTorch.
@inline(__always)
public func simdMax(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var i = 0
    var m = -Float.infinity
    var sawNaN = false
    let raw = UnsafeRawPointer(p)
    if n >= 8 {
        var acc = SIMD8<Float>(repeating: -.infinity)
        while i + 8 <= n {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            sawNaN = sawNaN || any(v .!= v)
            acc = pointwiseMax(acc, v)
            i += 8
        }
        m = acc.max()
    }
    while i < n { let v = p[i]; sawNaN = sawNaN || v.isNaN; if v > m { m = v }; i += 1 }
    return sawNaN ? .nan : m
}

extension Tensor {
    /// Σ of all elements, accumulated per 4096-element block in Float and across blocks in Double.
    public func sum() -> Float { Float(blockedTotal { simdSum($0, $1) }) }

    /// Mean of all elements (NaN for an empty tensor, as in PyTorch).
    public func mean() -> Float { count == 0 ? .nan : Float(blockedTotal { simdSum($0, $1) } / Double(count)) }

    /// Σ x² over all elements (squared Frobenius norm).
    public func squaredNorm() -> Float { Float(blockedTotal { simdSumOfSquares($0, $1) }) }

    /// √(Σ x²) over all elements (Frobenius / L2 norm). When the squares overflow Float32 but every element is
    /// finite, the sum is redone on x / max|x| (LAPACK snrm2's scaling), so huge finite tensors get a finite norm.
    public func l2Norm() -> Float {
        let plain = blockedTotal { simdSumOfSquares($0, $1) }
        if plain.isFinite || !isFinite { return Float(plain.squareRoot()) }
        let scale = withUnsafeBufferPointer { b in b.reduce(Float(0)) { Swift.max($0, abs($1)) } }
        let inv = 1 / scale
        let scaled = withUnsafeBufferPointer { b in b.reduce(0.0) { $0 + Double($1 * inv) * Double($1 * inv) } }
        return Float(Double(scale) * scaled.squareRoot())
    }

    /// True when no element is NaN or ±∞.
    public var isFinite: Bool {
        withUnsafeBufferPointer { buf in
            let p = buf.baseAddress!
            var i = 0
            while i < buf.count {
                let n = Swift.min(reductionBlock, buf.count - i)
                // x·0 is 0 for finite x and NaN for NaN/∞; a block's sum is NaN iff some element was not finite.
                var acc = SIMD8<Float>(repeating: 0)
                var j = 0
                let raw = UnsafeRawPointer(p + i)
                while j + 8 <= n { acc += raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self) * 0; j += 8 }
                var s = acc.sum()
                while j < n { s += p[i + j] * 0; j += 1 }
                if !s.isFinite { return false }
                i += n
            }
            return true
        }
    }

    /// Sum over blocks; `block(pointer, n)` reduces one block in Float, blocks add up in Double.
    @inline(__always)
    func blockedTotal(_ block: (UnsafePointer<Float>, Int) -> Float) -> Double {
        withUnsafeBufferPointer { buf in
            let p = buf.baseAddress!
            var total: Double = 0
            var i = 0
            while i < buf.count {
                let n = Swift.min(reductionBlock, buf.count - i)
                total += Double(block(p + i, n))
                i += n
            }
            return total
        }
    }

    /// Σ over the last dimension: [..., n] → [...].
    public func sumLastDim() -> Tensor { lastDimReduction { simdSum($0, $1) } }

    /// Mean over the last dimension: [..., n] → [...].
    public func meanLastDim() -> Tensor {
        let n = Float(dim(-1))
        return lastDimReduction { simdSum($0, $1) / n }
    }

    /// Max over the last dimension: [..., n] → [...] (n must be ≥ 1).
    public func maxLastDim() -> Tensor {
        precondition(rank >= 1 && dim(-1) > 0, "maxLastDim: empty last dimension in \(shape)")
        return lastDimReduction { simdMax($0, $1) }
    }

    /// Σ over all leading dimensions: [..., n] → [n] (the bias gradient of a row-broadcast op).
    public func sumRows() -> Tensor {
        precondition(rank >= 1, "sumRows needs rank ≥ 1")
        let n = dim(-1), rows = n == 0 ? 0 : count / n
        return withUnsafeBufferPointer { src in
            Tensor(shape: [n]) { out in
                let x = src.baseAddress!, o = out.baseAddress!
                for r in 0..<rows {
                    let row = x + r * n
                    for j in 0..<n { o[j] += row[j] }
                }
            }
        }
    }

    @inline(__always)
    func lastDimReduction(_ reduce: (UnsafePointer<Float>, Int) -> Float) -> Tensor {
        precondition(rank >= 1, "reduction over the last dimension needs rank ≥ 1, got \(shape)")
        let n = dim(-1), rows = n == 0 ? count : count / n
        return withUnsafeBufferPointer { src in
            Tensor(shape: Array(shape.dropLast())) { out in
                let x = src.baseAddress!, o = out.baseAddress!
                if n == 0 { for r in 0..<out.count { o[r] = reduce(x, 0) }; return }
                Parallel.forRanges(rows, minChunk: Swift.max(1, elementwiseParallelChunk / n)) { r in
                    for i in r { o[i] = reduce(x + i * n, n) }
                }
            }
        }
    }
}
