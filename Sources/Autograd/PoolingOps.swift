// Sentence-embedding ops for encoders: tanh (BERT's pooler), mean pooling over an attention mask
// (sentence-transformers' Pooling(mean)), and row-wise L2 normalisation; each with its backward beside it.
import Foundation
import TensorCore

/// tanh(x) elementwise; derivative 1 − tanh².
public func tanh(_ x: Variable) -> Variable {
    var y = x.value
    y.withUnsafeMutableBufferPointer { p in for i in 0..<p.count { p[i] = Foundation.tanh(p[i]) } }
    let yv = y
    return Variable(y, inputs: [x]) { [x = x.node] g in
        x.accumulate(gradientMap(g, yv, minChunk: elementwiseParallelChunk) { gp, yp, o, n in
            for i in 0..<n { o[i] = gp[i] * (1 - yp[i] * yp[i]) }
        })
    }
}

/// Mean of the rows of h [rows·length, dim] whose mask is 1, per sequence: mask [rows, length] (0/1) →
/// [rows, dim]. A sequence without a real token averages nothing and gives zeros (the count is clamped to 1e-9,
/// as sentence-transformers does). Backward: ∂h[b·T + t] = mask[b, t] / count_b · g[b].
public func maskedMeanPool(_ h: Variable, mask: Tensor) throws -> Variable {
    guard mask.rank == 2, h.shape.count == 2, h.shape[0] == mask.shape[0] * mask.shape[1] else {
        throw TensorError.shapeMismatch(operation: "maskedMeanPool h vs mask", expected: [mask.count, h.shape.last ?? -1], got: h.shape)
    }
    let rows = mask.shape[0], length = mask.shape[1], dim = h.shape[1]
    var weights = [Float](repeating: 0, count: rows * length)  // mask[b, t] / count_b
    for b in 0..<rows {
        var count: Float = 0
        for t in 0..<length { count += mask[flat: b * length + t] }
        let inverse = 1 / max(count, 1e-9)
        for t in 0..<length { weights[b * length + t] = mask[flat: b * length + t] * inverse }
    }
    let hv = h.value
    let out = hv.withUnsafeBufferPointer { ph in
        Tensor(shape: [rows, dim]) { o in
            for b in 0..<rows { for t in 0..<length {
                let w = weights[b * length + t]
                guard w != 0 else { continue }
                let src = ph.baseAddress! + (b * length + t) * dim, dst = o.baseAddress! + b * dim
                for e in 0..<dim { dst[e] += w * src[e] }
            } }
        }
    }
    return Variable(out, inputs: [h]) { [h = h.node] g in
        let dh = g.withUnsafeBufferPointer { pg in
            Tensor(shape: [rows * length, dim]) { o in
                for b in 0..<rows { for t in 0..<length {
                    let w = weights[b * length + t]
                    guard w != 0 else { continue }
                    let src = pg.baseAddress! + b * dim, dst = o.baseAddress! + (b * length + t) * dim
                    for e in 0..<dim { dst[e] = w * src[e] }
                } }
            }
        }
        h.accumulate(dh)
    }
}

/// Each row of x [rows, dim] divided by max(‖row‖₂, eps) (torch.nn.functional.normalize). Backward for
/// ‖x‖ > eps: (g − y·⟨g, y⟩) / ‖x‖; below eps the row was only scaled: g / eps.
public func l2Normalize(_ x: Variable, eps: Float = 1e-12) throws -> Variable {
    guard x.shape.count == 2 else { throw TensorError.invalidShape(x.shape, reason: "l2Normalize needs [rows, dim]") }
    let rows = x.shape[0], dim = x.shape[1]
    var norms = [Float](repeating: 0, count: rows)
    var y = x.value
    y.withUnsafeMutableBufferPointer { p in
        for r in 0..<rows {
            var s: Float = 0
            for e in 0..<dim { s += p[r * dim + e] * p[r * dim + e] }
            norms[r] = max(s.squareRoot(), eps)
            let inverse = 1 / norms[r]
            for e in 0..<dim { p[r * dim + e] *= inverse }
        }
    }
    let yv = y
    return Variable(y, inputs: [x]) { [x = x.node] g in
        let dx = g.withUnsafeBufferPointer { pg in yv.withUnsafeBufferPointer { py in
            Tensor(shape: [rows, dim]) { o in
                for r in 0..<rows {
                    let base = r * dim
                    var dot: Float = 0
                    for e in 0..<dim { dot += pg[base + e] * py[base + e] }
                    if norms[r] <= eps { dot = 0 }  // the row was clamped: y = x / eps is linear in x
                    let inverse = 1 / norms[r]
                    for e in 0..<dim { o[base + e] = (pg[base + e] - py[base + e] * dot) * inverse }
                }
            }
        } }
        x.accumulate(dx)
    }
}
