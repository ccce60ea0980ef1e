// Fused LM head + cross-entropy: loss = CE(hidden·Wᵀ, targets) without ever holding the [N, V] logits.
//
// For a 49,152-token vocabulary and N = 1024 rows the logits alone are 201 MB and their gradient as much
// again. Here logits exist one chunk of rows at a time ([chunkRows, V], 50 MB at the default 256 rows) and
// are recomputed in backward, trading one extra [chunk, D]·[D, V] GEMM per chunk for ~400 MB. Rows whose
// target is ignored (prompt tokens in SFT) are skipped entirely: no GEMM work, zero gradient.
import Foundation
import TensorCore

/// Mean cross-entropy of the logits hidden·Wᵀ against `targets`, computed chunk by chunk.
/// hidden: [N, D], weight: [V, D] (usually the frozen, tied embedding), targets: N class ids or `ignoreIndex`.
/// Same value and gradients as `crossEntropy(logits: linear(hidden, weight: weight), ...)`; with every row
/// ignored the loss is 0. Memory: one [chunkRows, V] logits buffer plus [N] log-sum-exps; dW is only
/// computed when `weight.requiresGrad`.
public func linearCrossEntropy(hidden: Variable, weight: Variable, targets: [Int32], ignoreIndex: Int32 = -100,
                               chunkRows: Int = 256) throws -> Variable {
    let h = hidden.value, w = weight.value
    guard h.rank == 2 else { throw TensorError.invalidShape(h.shape, reason: "linearCrossEntropy hidden must be [rows, dim]") }
    guard w.rank == 2, w.shape[1] == h.shape[1] else {
        throw TensorError.shapeMismatch(operation: "linearCrossEntropy weight [vocab, dim]", expected: [w.shape.first ?? 0, h.shape[1]], got: w.shape)
    }
    guard chunkRows > 0 else { throw TensorError.invalidArgument(operation: "linearCrossEntropy", reason: "chunkRows must be positive, got \(chunkRows)") }
    let d = h.shape[1], v = w.shape[0]
    let counted = try countedRows(targets, rows: h.shape[0], vocab: v, ignoreIndex: ignoreIndex, operation: "linearCrossEntropy")
    let chunk = min(chunkRows, max(counted.count, 1))
    var logits = Tensor(zeros: [chunk, v])  // the only [·, V] buffer, reused for every chunk
    var rowsBuffer = Tensor(zeros: [chunk, d])

    // Forward: per chunk, logits = hidden[rows]·Wᵀ, then lse and the target's logit per row.
    var lseRows = [Float](repeating: 0, count: counted.count)
    var total: Double = 0
    var start = 0
    while start < counted.count {
        let c = min(chunk, counted.count - start)
        chunkLogits(h, w, counted, start, c, &rowsBuffer, &logits)
        logits.withUnsafeBufferPointer { pl in lseRows.withUnsafeMutableBufferPointer { pe in
            let l = pl.baseAddress!, e = pe.baseAddress! + start
            Parallel.forRanges(c, minChunk: SoftmaxKernels.rowChunk(v)) { r in
                for k in r { e[k] = SoftmaxKernels.logSumExp(l + k * v, v) }
            }
            for k in 0..<c { total += Double(e[k] - l[k * v + Int(targets[counted[start + k]])]) }
        } }
        start += c
    }
    let loss = counted.isEmpty ? 0 : Float(total / Double(counted.count))
    let lse = lseRows

    return Variable(.scalar(loss), inputs: [hidden, weight]) { [hidden = hidden.node, weight = weight.node] g in
        let scale = counted.isEmpty ? 0 : g.scalarValue / Float(counted.count)
        var dHidden = hidden.requiresGrad ? Tensor(zeros: h.shape) : Tensor(zeros: [0])
        var dWeight = Tensor(zeros: [0])
        if weight.requiresGrad {  // add straight into an existing gradient (no second [V, D] buffer)
            dWeight = weight.grad.flatMap { $0.count == w.count ? $0 : nil } ?? Tensor(zeros: w.shape)
            weight.grad = nil
        }
        var logits = Tensor(zeros: [chunk, v]), rowsBuffer = Tensor(zeros: [chunk, d])
        var dRows = Tensor(zeros: hidden.requiresGrad ? [chunk, d] : [0])
        var start = 0
        while start < counted.count {
            let c = min(chunk, counted.count - start)
            chunkLogits(h, w, counted, start, c, &rowsBuffer, &logits)
            // logits → dlogits in place: scale·(softmax − one-hot).
            logits.withUnsafeMutableBufferPointer { pl in
                let l = pl.baseAddress!
                Parallel.forRanges(c, minChunk: SoftmaxKernels.rowChunk(v)) { r in
                    for k in r {
                        let row = l + k * v, m = lse[start + k]
                        for j in 0..<v { row[j] = scale * fastExp(row[j] - m) }
                        row[Int(targets[counted[start + k]])] -= scale
                    }
                }
            }
            logits.withUnsafeBufferPointer { pl in
                let dl = pl.baseAddress!
                if hidden.requiresGrad {  // dHidden[rows] = dlogits [c, V] · W [V, D]
                    w.withUnsafeBufferPointer { pw in dRows.withUnsafeMutableBufferPointer { pr in
                        BLAS.gemm(.none, .none, m: c, n: d, k: v, a: dl, lda: v, b: pw.baseAddress!, ldb: d,
                                  c: pr.baseAddress!, ldc: d)
                    } }
                    dRows.withUnsafeBufferPointer { pr in dHidden.withUnsafeMutableBufferPointer { ph in
                        for k in 0..<c { (ph.baseAddress! + counted[start + k] * d).update(from: pr.baseAddress! + k * d, count: d) }
                    } }
                }
                if weight.requiresGrad {  // dW [V, D] += dlogitsᵀ [V, c] · hidden[rows] [c, D]
                    rowsBuffer.withUnsafeBufferPointer { ph in dWeight.withUnsafeMutableBufferPointer { pw in
                        BLAS.gemm(.transposed, .none, m: v, n: d, k: c, a: dl, lda: v, b: ph.baseAddress!, ldb: d,
                                  beta: 1, c: pw.baseAddress!, ldc: d)
                    } }
                }
            }
            start += c
        }
        if hidden.requiresGrad { hidden.accumulate(dHidden) }
        if weight.requiresGrad { weight.grad = dWeight }
    }
}

/// logits[0..<c] = hidden[counted[start..<start+c]] · Wᵀ, gathering the rows into `rows` first.
private func chunkLogits(_ h: Tensor, _ w: Tensor, _ counted: [Int], _ start: Int, _ c: Int,
                         _ rows: inout Tensor, _ logits: inout Tensor) {
    let d = h.shape[1], v = w.shape[0]
    h.withUnsafeBufferPointer { ph in rows.withUnsafeMutableBufferPointer { pr in
        for k in 0..<c where d > 0 { (pr.baseAddress! + k * d).update(from: ph.baseAddress! + counted[start + k] * d, count: d) }
    } }
    rows.withUnsafeBufferPointer { pr in w.withUnsafeBufferPointer { pw in logits.withUnsafeMutableBufferPointer { pl in
        BLAS.gemm(.none, .transposed, m: c, n: v, k: d, a: pr.baseAddress!, lda: d, b: pw.baseAddress!, ldb: d,
                  c: pl.baseAddress!, ldc: v)
    } } }
}
