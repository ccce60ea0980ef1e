// Plain Double-precision reference implementations of the transformer ops, written from their definitions,
// and a weighted-sum loss that turns any op output into a scalar for gradient checks.
// Gradient checks assert < 5e-4: the ops measure 1e-5…8e-5 with ε = 1e-2, so a 0.1 % error in a gradient fails.
import Foundation
import TensorCore
import Autograd

enum TransformerOpsReference {
    /// Σ out ⊙ weights as a scalar Variable (its gradient w.r.t. out is `weights`): random weights make every
    /// output element matter to the finite-difference check.
    static func weightedSum(_ v: Variable, _ weights: Tensor) -> Variable {
        precondition(v.shape == weights.shape)
        var s: Double = 0
        for i in 0..<weights.count { s += Double(v.value[flat: i]) * Double(weights[flat: i]) }
        return Variable(Tensor.scalar(Float(s)), inputs: [v]) { g in
            let scale = g.scalarValue
            v.accumulate(Tensor(weights.array.map { $0 * scale }, shape: weights.shape))
        }
    }

    /// y = w · x / sqrt(mean(x²) + eps) per row of the last dimension.
    static func rmsNorm(_ x: Tensor, _ w: Tensor, eps: Double) -> Tensor {
        let dim = w.count, rows = x.count / dim
        var y = Tensor(zeros: x.shape)
        for r in 0..<rows {
            var ss: Double = 0
            for i in 0..<dim { ss += Double(x[flat: r * dim + i]) * Double(x[flat: r * dim + i]) }
            let rstd = 1 / (ss / Double(dim) + eps).squareRoot()
            for i in 0..<dim { y[flat: r * dim + i] = Float(Double(w[flat: i]) * Double(x[flat: r * dim + i]) * rstd) }
        }
        return y
    }

    /// y = (x − mean) / sqrt(biased var + eps) · w + b per row.
    static func layerNorm(_ x: Tensor, _ w: Tensor?, _ b: Tensor?, eps: Double) -> Tensor {
        let dim = x.shape.last!, rows = x.count / dim
        var y = Tensor(zeros: x.shape)
        for r in 0..<rows {
            let row = (0..<dim).map { Double(x[flat: r * dim + $0]) }
            let mean = row.reduce(0, +) / Double(dim)
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(dim)
            for i in 0..<dim {
                let n = (row[i] - mean) / (variance + eps).squareRoot()
                y[flat: r * dim + i] = Float(n * Double(w?[flat: i] ?? 1) + Double(b?[flat: i] ?? 0))
            }
        }
        return y
    }

    /// Hugging Face RoPE written as the model does: x·cos + rotate_half(x)·sin, with cos/sin of the angle
    /// position · theta^(−2i/d) duplicated over both halves. x: [B, H, T, D]; positions: [T].
    static func ropeHalfSplit(_ x: Tensor, positions: [Int], theta: Double) -> Tensor {
        let (bh, t, d) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
        var y = Tensor(zeros: x.shape)
        for r in 0..<bh { for p in 0..<t {
            let base = (r * t + p) * d
            for i in 0..<d {
                let f = i % (d / 2)
                let angle = Double(positions[p]) * Foundation.pow(theta, -Double(2 * f) / Double(d))
                let rotated = i < d / 2 ? -Double(x[flat: base + i + d / 2]) : Double(x[flat: base + i - d / 2])
                y[flat: base + i] = Float(Double(x[flat: base + i]) * Foundation.cos(angle) + rotated * Foundation.sin(angle))
            }
        } }
        return y
    }

    /// softmax(scale·q·kᵀ + mask)·v with explicit loops. q: [B, Hq, T, D]; k, v: [B, Hkv, S, D]; mask: [B, S].
    static func attention(q: Tensor, k: Tensor, v: Tensor, causal: Bool, mask: Tensor? = nil) -> Tensor {
        let (batch, hq, t, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (hkv, s) = (k.shape[1], k.shape[2])
        let scale = 1 / Double(d).squareRoot()
        var out = Tensor(zeros: q.shape)
        for b in 0..<batch { for h in 0..<hq { for i in 0..<t {
            let g = h / (hq / hkv)
            var scores = [Double](repeating: -.infinity, count: s)
            for j in 0..<s where !causal || j <= s - t + i {
                var dot: Double = 0
                for e in 0..<d { dot += Double(q[b, h, i, e]) * Double(k[b, g, j, e]) }
                scores[j] = dot * scale + Double(mask?[b, j] ?? 0)
            }
            let m = scores.max()!
            let weights = scores.map { Foundation.exp($0 - m) }
            let total = weights.reduce(0, +)
            for e in 0..<d {
                var acc: Double = 0
                for j in 0..<s { acc += weights[j] / total * Double(v[b, g, j, e]) }
                out[b, h, i, e] = Float(acc)
            }
        } } }
        return out
    }
}
