// Activations, softmaxes and dropout, each with its derivative written out beside the forward.
import Foundation
import TensorCore

/// out[i] = body over chunks of (g, x) → a new tensor shaped like `x`, in parallel.
@inline(__always)
func gradientMap(_ g: Tensor, _ x: Tensor, minChunk: Int = transcendentalParallelChunk,
                 _ body: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
    precondition(g.count == x.count, "gradient \(g.shape) does not match \(x.shape)")
    return g.withUnsafeBufferPointer { pg in x.withUnsafeBufferPointer { px in
        Tensor(shape: x.shape) { out in
            let gp = pg.baseAddress!, xp = px.baseAddress!, o = out.baseAddress!
            Parallel.forRanges(out.count, minChunk: minChunk) { r in
                body(gp + r.lowerBound, xp + r.lowerBound, o + r.lowerBound, r.count)
            }
        }
    } }
}

/// max(x, 0); gradient passes where x > 0.
public func relu(_ x: Variable) -> Variable {
    let xv = x.value
    return Variable(xv.relu(), inputs: [x]) { [x = x.node] g in
        x.accumulate(gradientMap(g, xv, minChunk: elementwiseParallelChunk) { gp, xp, o, n in
            for i in 0..<n { o[i] = xp[i] > 0 ? gp[i] : 0 }
        })
    }
}

/// SiLU x·σ(x); derivative σ(x)·(1 + x·(1 − σ(x))).
public func silu(_ x: Variable) -> Variable {
    let xv = x.value
    return Variable(xv.silu(), inputs: [x]) { [x = x.node] g in
        x.accumulate(gradientMap(g, xv) { gp, xp, o, n in
            for i in 0..<n {
                let v = xp[i], s = fastSigmoid(v)
                o[i] = gp[i] * s * (1 + v * (1 - s))
            }
        })
    }
}

/// GELU (exact erf by default, as HF "gelu"; `.tanh` as HF "gelu_pytorch_tanh").
public func gelu(_ x: Variable, approximation: GELUApproximation = .none) -> Variable {
    let xv = x.value
    return Variable(xv.gelu(approximation: approximation), inputs: [x]) { [x = x.node] g in
        x.accumulate(gradientMap(g, xv) { gp, xp, o, n in
            switch approximation {
            case .none:  // d/dx = Φ(x) + x·φ(x)
                let invSqrt2Pi: Float = 0.3989422804014327
                for i in 0..<n {
                    let v = xp[i]
                    let cdf = 0.5 * (1 + Foundation.erf(v * geluInvSqrt2))
                    o[i] = gp[i] * (cdf + v * invSqrt2Pi * fastExp(-0.5 * v * v))
                }
            case .tanh:  // u = c(x + 0.044715x³): d/dx = ½(1 + t) + ½x(1 − t²)·c(1 + 3·0.044715x²)
                for i in 0..<n {
                    let v = xp[i], t = fastTanh(geluSqrt2OverPi * (v + 0.044715 * v * v * v))
                    let du = geluSqrt2OverPi * (1 + 3 * 0.044715 * v * v)
                    o[i] = gp[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du)
                }
            }
        })
    }
}

/// Fused SwiGLU: silu(gate) ⊙ up, as in Llama's MLP (`down(silu(gate(x)) * up(x))`).
/// One pass forward, one pass backward, no intermediate silu tensor kept.
public func swiglu(gate: Variable, up: Variable) -> Variable {
    precondition(gate.shape == up.shape, "swiglu: gate \(gate.shape) and up \(up.shape) differ")
    let gv = gate.value, uv = up.value
    let y = gv.withUnsafeBufferPointer { pg in uv.withUnsafeBufferPointer { pu in
        Tensor(shape: gv.shape) { out in
            let a = pg.baseAddress!, b = pu.baseAddress!, o = out.baseAddress!
            Parallel.forRanges(out.count, minChunk: transcendentalParallelChunk) { r in
                for i in r { o[i] = a[i] / (1 + fastExp(-a[i])) * b[i] }
            }
        }
    } }
    return Variable(y, inputs: [gate, up]) { [gate = gate.node, up = up.node] g in
        let needGate = gate.requiresGrad, needUp = up.requiresGrad
        var dGate = Tensor(zeros: needGate ? gv.shape : [0]), dUp = Tensor(zeros: needUp ? uv.shape : [0])
        g.withUnsafeBufferPointer { pg in gv.withUnsafeBufferPointer { pa in uv.withUnsafeBufferPointer { pb in
        dGate.withUnsafeMutableBufferPointer { pdg in dUp.withUnsafeMutableBufferPointer { pdu in
            let gp = pg.baseAddress!, a = pa.baseAddress!, b = pb.baseAddress!
            let dg = pdg.baseAddress!, du = pdu.baseAddress!
            Parallel.forRanges(pg.count, minChunk: transcendentalParallelChunk) { r in
                // Branches hoisted out of the loops so each one vectorises.
                if needGate && needUp {
                    for i in r {
                        let v = a[i], s = fastSigmoid(v)
                        dg[i] = gp[i] * b[i] * s * (1 + v * (1 - s))
                        du[i] = gp[i] * v * s
                    }
                } else if needGate {
                    for i in r { let v = a[i], s = fastSigmoid(v); dg[i] = gp[i] * b[i] * s * (1 + v * (1 - s)) }
                } else {
                    for i in r { du[i] = gp[i] * a[i] * fastSigmoid(a[i]) }
                }
            }
        } } } } }
        if needGate { gate.accumulate(dGate) }
        if needUp { up.accumulate(dUp) }
    }
}

/// Softmax over the last dimension; backward dx = y ⊙ (g − Σ g⊙y) per row.
public func softmax(_ x: Variable) -> Variable {
    let y = x.value.softmax()
    let n = max(y.shape.last ?? 1, 1)
    return Variable(y, inputs: [x]) { [x = x.node] g in
        x.accumulate(rowwiseGradient(g, y, n) { gp, yp, o, n in
            let dot = simdDot(gp, yp, n)
            for j in 0..<n { o[j] = yp[j] * (gp[j] - dot) }
        })
    }
}

/// Log-softmax over the last dimension; backward dx = g − softmax(x)·Σ g per row.
public func logSoftmax(_ x: Variable) -> Variable {
    let y = x.value.logSoftmax()
    let n = max(y.shape.last ?? 1, 1)
    return Variable(y, inputs: [x]) { [x = x.node] g in
        x.accumulate(rowwiseGradient(g, y, n) { gp, yp, o, n in
            let s = simdSum(gp, n)
            for j in 0..<n { o[j] = gp[j] - fastExp(yp[j]) * s }
        })
    }
}

/// Applies `row(g, y, out, n)` to every row of n elements, rows split across cores.
func rowwiseGradient(_ g: Tensor, _ y: Tensor, _ n: Int,
                     _ row: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
    g.withUnsafeBufferPointer { pg in y.withUnsafeBufferPointer { py in
        Tensor(shape: y.shape) { out in
            let gp = pg.baseAddress!, yp = py.baseAddress!, o = out.baseAddress!
            Parallel.forRanges(out.count / n, minChunk: SoftmaxKernels.rowChunk(n)) { r in
                for i in r { row(gp + i * n, yp + i * n, o + i * n, n) }
            }
        }
    } }
}

/// Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1 − p), so the
/// expectation is unchanged. Identity (no mask, no randomness consumed) when p == 0 or not training.
/// Backward redraws the mask from the saved stream position (the generator is counter-based) instead of keeping
/// it: an x-sized tensor less per adapted module until backward, ~0.6 GB for LoRA on all of SmolLM2's projections.
public func dropout(_ x: Variable, p: Float, rng: inout RandomGenerator, training: Bool) -> Variable {
    precondition(p >= 0 && p <= 1, "dropout probability \(p) is outside [0, 1]")
    if p == 0 || !training { return x }
    let start = rng, shape = x.shape
    func mask(_ generator: inout RandomGenerator) -> Tensor {
        var m = generator.bernoulli(shape, probability: 1 - p)
        m.scale(by: p < 1 ? 1 / (1 - p) : 0)
        return m
    }
    let y = Tensor.mul(x.value, mask(&rng))
    return Variable(y, inputs: [x]) { [x = x.node] g in
        var replay = start
        x.accumulate(Tensor.mul(g, mask(&replay)))
    }
}
