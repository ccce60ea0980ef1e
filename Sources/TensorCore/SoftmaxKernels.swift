// Softmax and log-softmax over the last dimension, numerically stable (the row max is subtracted
// before exp). The row kernels are public so fused ops (cross-entropy, attention) reuse them on chunks.
import Foundation

/// Row kernels for softmax-style reductions over raw buffers.
public enum SoftmaxKernels {
    /// log Σ exp(x[j]) over one row of `n` (n ≥ 1), stable for any magnitude.
    @inline(__always)
    public static func logSumExp(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        let m = simdMax(x, n)
        if m.isInfinite { return m }  // all −∞ gives −∞; any +∞ gives +∞
        return m + Foundation.log(sumExp(x, n, minus: m))
    }

    /// Σ exp(x[j] − m). Exps go through a small stack buffer so that loop vectorises (a running Float sum
    /// inside it would not), then the buffer is summed with SIMD lanes.
    @inline(__always)
    public static func sumExp(_ x: UnsafePointer<Float>, _ n: Int, minus m: Float) -> Float {
        let block = 512
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: block) { scratch in
            let e = scratch.baseAddress!
            var total: Float = 0
            var start = 0
            while start < n {
                let len = Swift.min(block, n - start), src = x + start
                for j in 0..<len { e[j] = fastExp(src[j] - m) }
                total += simdSum(e, len)
                start += len
            }
            return total
        }
    }

    /// out = softmax(x) over one row of `n`; `out` may alias `x`.
    @inline(__always)
    public static func softmaxRow(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
        let m = simdMax(x, n)
        for j in 0..<n { out[j] = fastExp(x[j] - m) }
        let inv = 1 / simdSum(out, n)
        for j in 0..<n { out[j] *= inv }
    }

    /// out = log_softmax(x) over one row of `n`; `out` may alias `x`.
    @inline(__always)
    public static func logSoftmaxRow(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
        let lse = logSumExp(x, n)
        for j in 0..<n { out[j] = x[j] - lse }
    }

    /// Rows per parallel chunk so one chunk is ≳ 4k exps.
    public static func rowChunk(_ n: Int) -> Int { max(1, transcendentalParallelChunk / max(n, 1)) }
}

extension Tensor {
    /// Softmax over the last dimension.
    public func softmax() -> Tensor { rowwise { SoftmaxKernels.softmaxRow($0, $1, $2) } }

    /// Log-softmax over the last dimension.
    public func logSoftmax() -> Tensor { rowwise { SoftmaxKernels.logSoftmaxRow($0, $1, $2) } }

    /// log Σ exp over the last dimension: [..., n] → [...].
    public func logSumExpLastDim() -> Tensor {
        precondition(rank >= 1 && dim(-1) > 0, "logSumExp: empty last dimension in \(shape)")
        let n = dim(-1)
        return withUnsafeBufferPointer { src in
            Tensor(shape: Array(shape.dropLast())) { out in
                let x = src.baseAddress!, o = out.baseAddress!
                Parallel.forRanges(out.count, minChunk: SoftmaxKernels.rowChunk(n)) { r in
                    for i in r { o[i] = SoftmaxKernels.logSumExp(x + i * n, n) }
                }
            }
        }
    }

    @inline(__always)
    func rowwise(_ row: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        precondition(rank >= 1, "softmax needs rank ≥ 1, got \(shape)")
        let n = dim(-1)
        if n == 0 { return Tensor(zeros: shape) }
        return withUnsafeBufferPointer { src in
            Tensor(shape: shape) { out in
                let x = src.baseAddress!, o = out.baseAddress!
                Parallel.forRanges(out.count / n, minChunk: SoftmaxKernels.rowChunk(n)) { r in
                    for i in r { row(x + i * n, o + i * n, n) }
                }
            }
        }
    }
}
