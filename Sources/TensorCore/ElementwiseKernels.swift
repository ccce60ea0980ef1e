// Elementwise kernels: arithmetic (same shape, or a trailing row vector broadcast over rows), scaling,
// axpy and activations. Each is a plain loop over raw buffers, split across cores when large.
import Foundation

/// Elements per thread below which splitting a cheap elementwise loop costs more than it saves.
public let elementwiseParallelChunk = 1 << 15
/// Same for loops whose elements call exp/tanh/erf (≈10× the work per element).
public let transcendentalParallelChunk = 1 << 12

/// Which GELU formula. Hugging Face: `"gelu"` (BERT, MiniLM) is the exact erf form; `"gelu_new"`,
/// `"gelu_pytorch_tanh"` and `"gelu_fast"` are the tanh approximation.
public enum GELUApproximation: Sendable {
    /// 0.5·x·(1 + erf(x/√2)).
    case none
    /// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    case tanh
}

enum ElementwiseBinaryOp { case add, sub, mul, div }

extension Tensor {
    /// Length of the row vector `b` broadcast over `a`, or nil when the shapes are equal.
    /// `b` broadcasts when it is `[n]` or `[1, …, 1, n]` and `a`'s last dimension is `n`.
    public static func rowBroadcastLength(_ a: Tensor, _ b: Tensor, operation: String) -> Int? {
        if a.shape == b.shape { return nil }
        let n = b.shape.last ?? 1
        let isRow = b.rank >= 1 && b.shape.dropLast().allSatisfy { $0 == 1 } && b.rank <= max(a.rank, 1)
        precondition(isRow && a.rank >= 1 && a.dim(-1) == n,
                     "\(operation): shape \(b.shape) neither equals nor broadcasts as a row over \(a.shape)")
        return n
    }

    static func binary(_ a: Tensor, _ b: Tensor, _ op: ElementwiseBinaryOp, name: String) -> Tensor {
        let row = rowBroadcastLength(a, b, operation: name)
        return a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in
            Tensor(shape: a.shape) { out in
                let x = pa.baseAddress!, y = pb.baseAddress!, o = out.baseAddress!
                if let n = row {
                    // a: [rows, n], b: [n]
                    let rows = n == 0 ? 0 : out.count / n
                    Parallel.forRanges(rows, minChunk: max(1, elementwiseParallelChunk / max(n, 1))) { r in
                        for i in r { binaryLoop(x + i * n, y, o + i * n, n, op) }
                    }
                } else {
                    Parallel.forRanges(out.count, minChunk: elementwiseParallelChunk) { r in
                        binaryLoop(x + r.lowerBound, y + r.lowerBound, o + r.lowerBound, r.count, op)
                    }
                }
            }
        } }
    }

    /// a + b (same shape, or `b` a row vector over the last dimension).
    public static func add(_ a: Tensor, _ b: Tensor) -> Tensor { binary(a, b, .add, name: "add") }
    /// a − b (same shape, or `b` a row vector over the last dimension).
    public static func sub(_ a: Tensor, _ b: Tensor) -> Tensor { binary(a, b, .sub, name: "sub") }
    /// a ⊙ b (same shape, or `b` a row vector over the last dimension).
    public static func mul(_ a: Tensor, _ b: Tensor) -> Tensor { binary(a, b, .mul, name: "mul") }
    /// a ⊘ b (same shape, or `b` a row vector over the last dimension).
    public static func div(_ a: Tensor, _ b: Tensor) -> Tensor { binary(a, b, .div, name: "div") }

    /// c·self.
    public func scaled(by c: Float) -> Tensor {
        withUnsafeBufferPointer { src in
            Tensor(shape: shape) { out in
                let x = src.baseAddress!, o = out.baseAddress!
                Parallel.forRanges(out.count, minChunk: elementwiseParallelChunk) { r in
                    for i in r { o[i] = c * x[i] }
                }
            }
        }
    }

    /// In place: self ← self + alpha·x (BLAS axpy). Shapes must have equal element counts.
    public mutating func addScaled(_ x: Tensor, alpha: Float = 1) {
        precondition(x.count == count, "addScaled: \(x.shape) does not match \(shape)")
        x.withUnsafeBufferPointer { src in
            withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                Parallel.forRanges(dst.count, minChunk: elementwiseParallelChunk) { r in
                    for i in r { d[i] += alpha * s[i] }
                }
            }
        }
    }

    /// In place: self ← c·self.
    public mutating func scale(by c: Float) {
        withUnsafeMutableBufferPointer { dst in
            let d = dst.baseAddress!
            Parallel.forRanges(dst.count, minChunk: elementwiseParallelChunk) { r in
                for i in r { d[i] *= c }
            }
        }
    }

    /// max(x, 0).
    public func relu() -> Tensor { unary { x, o, n in for i in 0..<n { o[i] = x[i] > 0 ? x[i] : 0 } } }

    /// SiLU (swish): x·σ(x).
    public func silu() -> Tensor {
        unary(minChunk: transcendentalParallelChunk) { x, o, n in
            for i in 0..<n { o[i] = x[i] / (1 + fastExp(-x[i])) }
        }
    }

    /// GELU, exact erf form (`.none`, HF "gelu") or tanh approximation (`.tanh`, HF "gelu_pytorch_tanh").
    public func gelu(approximation: GELUApproximation = .none) -> Tensor {
        unary(minChunk: transcendentalParallelChunk) { x, o, n in
            switch approximation {
            case .none:
                for i in 0..<n { o[i] = 0.5 * x[i] * (1 + Foundation.erf(x[i] * geluInvSqrt2)) }
            case .tanh:
                for i in 0..<n {
                    let v = x[i], u = geluSqrt2OverPi * (v + 0.044715 * v * v * v)
                    o[i] = 0.5 * v * (1 + fastTanh(u))
                }
            }
        }
    }

    /// Applies `body(src, dst, n)` over chunks of the buffer in parallel, producing a new tensor.
    @inline(__always)
    func unary(minChunk: Int = elementwiseParallelChunk,
               _ body: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        withUnsafeBufferPointer { src in
            Tensor(shape: shape) { out in
                let x = src.baseAddress!, o = out.baseAddress!
                Parallel.forRanges(out.count, minChunk: minChunk) { r in
                    body(x + r.lowerBound, o + r.lowerBound, r.count)
                }
            }
        }
    }
}

/// 1/√2, for the erf form of GELU.
public let geluInvSqrt2: Float = 0.70710678118654752
/// √(2/π), for the tanh form of GELU.
public let geluSqrt2OverPi: Float = 0.79788456080286536

/// One contiguous run of a binary op; the switch is hoisted so each loop vectorises.
@inline(__always)
func binaryLoop(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ o: UnsafeMutablePointer<Float>,
                _ n: Int, _ op: ElementwiseBinaryOp) {
    switch op {
    case .add: for i in 0..<n { o[i] = x[i] + y[i] }
    case .sub: for i in 0..<n { o[i] = x[i] - y[i] }
    case .mul: for i in 0..<n { o[i] = x[i] * y[i] }
    case .div: for i in 0..<n { o[i] = x[i] / y[i] }
    }
}
