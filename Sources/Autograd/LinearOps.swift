// Matrix products with hand-written backwards. Every product is one BLAS call; transposes are passed to
// BLAS as flags, never materialised. Gradients are only computed for inputs that require them.
import TensorCore

extension GradientNode {
    /// Adds a freshly computed gradient straight into `grad`: `write(buffer, beta)` must store its result
    /// into `buffer` scaled as `result + beta·buffer` (BLAS' beta). Saves an allocation and an add when a
    /// gradient already exists (shared weights, gradient accumulation).
    func accumulateInPlace(_ write: (UnsafeMutablePointer<Float>, Float) -> Void) {
        guard requiresGrad else { return }
        if var g = grad, g.count == count {
            grad = nil  // drop our reference so the buffer is uniquely owned and written in place
            g.withUnsafeMutableBufferPointer { write($0.baseAddress!, 1) }
            grad = g
        } else {
            var g = Tensor(zeros: shape)
            g.withUnsafeMutableBufferPointer { write($0.baseAddress!, 1) }  // adds onto zeros: BLAS skips clearing it again
            grad = g
        }
    }
}

/// y = x·Wᵀ + b. x: [..., in], weight: [out, in] (PyTorch layout), bias: [out] → y: [..., out].
/// Backward: dX = dY·W only when x needs it; dW = dYᵀ·X only when the weight is trainable; db = Σ_rows dY
/// only when the bias is trainable — a frozen weight costs one GEMM in backward, not two.
public func linear(_ x: Variable, weight: Variable, bias: Variable? = nil) -> Variable {
    let xv = x.value, w = weight.value
    precondition(w.rank == 2 && xv.rank >= 1 && xv.dim(-1) == w.shape[1],
                 "linear: input \(xv.shape) does not match weight \(w.shape) ([out, in])")
    let outF = w.shape[0], inF = w.shape[1]
    let rows = xv.shape.dropLast().reduce(1, *)
    if let bias { precondition(bias.value.count == outF, "linear: bias \(bias.value.shape) does not match \(outF) outputs") }

    // y: [rows, out] starts as zeros or the bias, and the GEMM adds onto it (beta = 1: no second clearing pass).
    var y = Tensor(zeros: Array(xv.shape.dropLast()) + [outF])
    y.withUnsafeMutableBufferPointer { py in
        if let b = bias?.value {
            b.withUnsafeBufferPointer { pb in for r in 0..<rows { (py.baseAddress! + r * outF).update(from: pb.baseAddress!, count: outF) } }
        }
        xv.withUnsafeBufferPointer { px in w.withUnsafeBufferPointer { pw in
            BLAS.gemm(.none, .transposed, m: rows, n: outF, k: inF, a: px.baseAddress!, lda: inF,
                      b: pw.baseAddress!, ldb: inF, beta: 1, c: py.baseAddress!, ldc: outF)
        } }
    }
    let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
    // Saved for backward: W for dX, X only when the weight trains (a frozen weight's input is not kept).
    let savedX: Tensor? = weight.requiresGrad ? xv : nil
    return Variable(y, inputs: inputs) { [x = x.node, weight = weight.node, bias = bias?.node] dy in
        dy.withUnsafeBufferPointer { pdy in
            let g = pdy.baseAddress!
            if x.requiresGrad {  // dX [rows, in] = dY [rows, out] · W [out, in]
                w.withUnsafeBufferPointer { pw in
                    x.accumulateInPlace { dx, beta in
                        BLAS.gemm(.none, .none, m: rows, n: inF, k: outF, a: g, lda: outF,
                                  b: pw.baseAddress!, ldb: inF, beta: beta, c: dx, ldc: inF)
                    }
                }
            }
            if weight.requiresGrad, let xv = savedX {  // dW [out, in] = dYᵀ [out, rows] · X [rows, in]
                xv.withUnsafeBufferPointer { px in
                    weight.accumulateInPlace { dw, beta in
                        BLAS.gemm(.transposed, .none, m: outF, n: inF, k: rows, a: g, lda: outF,
                                  b: px.baseAddress!, ldb: inF, beta: beta, c: dw, ldc: inF)
                    }
                }
            }
        }
        if let bias, bias.requiresGrad { bias.accumulate(dy.sumRows().reshaped(bias.shape)) }
    }
}

/// op(a)·op(b): 2-D × 2-D, batched 3-D × 3-D ([batch, m, k]·[batch, k, n]), or N-D × 2-D (leading dims
/// of `a` flattened into rows; `transposeA` must then be false).
public func matmul(_ a: Variable, _ b: Variable, transposeA: Bool = false, transposeB: Bool = false) -> Variable {
    if a.value.rank > 2 && b.value.rank == 2 {
        precondition(!transposeA, "matmul: transposeA is not defined for an N-D × 2-D product")
        let lead = Array(a.shape.dropLast())
        let y = matmul(reshape(a, [-1, a.shape.last!]), b, transposeB: transposeB)
        return reshape(y, lead + [y.shape[1]])
    }
    let av = a.value, bv = b.value
    precondition((av.rank == 2 && bv.rank == 2) || (av.rank == 3 && bv.rank == 3 && av.shape[0] == bv.shape[0]),
                 "matmul: unsupported shapes \(av.shape) × \(bv.shape) (2-D, batched 3-D, or N-D × 2-D)")
    let batch = av.rank == 3 ? av.shape[0] : 1
    let (aR, aC) = (av.shape[av.rank - 2], av.shape[av.rank - 1]), (bR, bC) = (bv.shape[bv.rank - 2], bv.shape[bv.rank - 1])
    let (m, k) = transposeA ? (aC, aR) : (aR, aC)
    let (k2, n) = transposeB ? (bC, bR) : (bR, bC)
    precondition(k == k2, "matmul: inner dimensions differ in \(av.shape)\(transposeA ? "ᵀ" : "") × \(bv.shape)\(transposeB ? "ᵀ" : "")")
    let y = Tensor.matmul(av, bv, transposeA: transposeA, transposeB: transposeB)
    let tA: Transpose = transposeA ? .transposed : .none, tB: Transpose = transposeB ? .transposed : .none
    let flip = { (t: Transpose) -> Transpose in t == .none ? .transposed : .none }
    // dA needs B and dB needs A: keep only what a trainable input's gradient reads.
    let savedA = b.requiresGrad ? av : Tensor(zeros: [0]), savedB = a.requiresGrad ? bv : Tensor(zeros: [0])
    return Variable(y, inputs: [a, b]) { [a = a.node, b = b.node] dc in
        dc.withUnsafeBufferPointer { pdc in savedA.withUnsafeBufferPointer { pa in savedB.withUnsafeBufferPointer { pb in
            let g = pdc.baseAddress!, A = pa.baseAddress, B = pb.baseAddress
            if a.requiresGrad {
                a.accumulateInPlace { da, beta in
                    for i in 0..<batch {
                        let gi = g + i * m * n, bi = B! + i * bR * bC, dai = da + i * aR * aC
                        if !transposeA {  // dA [m, k] = dC · op(B)ᵀ
                            BLAS.gemm(.none, flip(tB), m: m, n: k, k: n, a: gi, lda: n, b: bi, ldb: bC,
                                      beta: beta, c: dai, ldc: aC)
                        } else {          // dA [k, m] = op(B) · dCᵀ
                            BLAS.gemm(tB, .transposed, m: k, n: m, k: n, a: bi, lda: bC, b: gi, ldb: n,
                                      beta: beta, c: dai, ldc: aC)
                        }
                    }
                }
            }
            if b.requiresGrad {
                b.accumulateInPlace { db, beta in
                    for i in 0..<batch {
                        let gi = g + i * m * n, ai = A! + i * aR * aC, dbi = db + i * bR * bC
                        if !transposeB {  // dB [k, n] = op(A)ᵀ · dC
                            BLAS.gemm(flip(tA), .none, m: k, n: n, k: m, a: ai, lda: aC, b: gi, ldb: n,
                                      beta: beta, c: dbi, ldc: bC)
                        } else {          // dB [n, k] = dCᵀ · op(A)
                            BLAS.gemm(.transposed, tA, m: n, n: k, k: m, a: gi, lda: n, b: ai, ldb: aC,
                                      beta: beta, c: dbi, ldc: bC)
                        }
                    }
                }
            }
        } } }
    }
}
