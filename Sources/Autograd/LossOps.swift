// Losses: mean squared error and cross-entropy over rows of logits.
import Foundation
import TensorCore

/// Mean squared error: mean((a − b)²) → scalar. Gradient 2(a − b)/N to a and its negative to b.
public func mseLoss(_ a: Variable, _ b: Variable) -> Variable {
    precondition(a.shape == b.shape, "mseLoss: shapes \(a.shape) and \(b.shape) differ")
    let diff = Tensor.sub(a.value, b.value)
    let n = Float(max(diff.count, 1))
    return Variable(.scalar(diff.squaredNorm() / n), inputs: [a, b]) { [a = a.node, b = b.node] g in
        let d = diff.scaled(by: 2 * g.scalarValue / n)
        a.accumulate(d)
        if b.requiresGrad { b.accumulate(d.scaled(by: -1)) }
    }
}

/// Checks every target is a class index in 0..<vocab or `ignoreIndex`; returns the rows that count.
func countedRows(_ targets: [Int32], rows: Int, vocab: Int, ignoreIndex: Int32, operation: String) throws -> [Int] {
    guard targets.count == rows else {
        throw TensorError.shapeMismatch(operation: "\(operation) (targets per row)", expected: [rows], got: [targets.count])
    }
    var counted: [Int] = []
    counted.reserveCapacity(rows)
    for (i, t) in targets.enumerated() where t != ignoreIndex {
        guard t >= 0 && Int(t) < vocab else {
            throw TensorError.invalidArgument(operation: operation,
                                              reason: "target \(t) at row \(i) is outside 0..<\(vocab) and is not ignoreIndex \(ignoreIndex)")
        }
        counted.append(i)
    }
    return counted
}

/// Mean cross-entropy of `logits` [N, V] against class `targets` (N ids), skipping rows whose target is
/// `ignoreIndex` (PyTorch `F.cross_entropy(..., ignore_index=-100)`). With every row ignored the loss is 0
/// and the gradient zero (PyTorch returns NaN there; a fully-masked batch must not poison training).
/// Memory: forward keeps one log-sum-exp per row; backward writes softmax − one-hot straight into the
/// logits' own gradient, row by row — no second [N, V] buffer at any point.
public func crossEntropy(logits: Variable, targets: [Int32], ignoreIndex: Int32 = -100) throws -> Variable {
    let lv = logits.value
    guard lv.rank == 2 else { throw TensorError.invalidShape(lv.shape, reason: "crossEntropy logits must be [rows, classes]") }
    let n = lv.shape[0], v = lv.shape[1]
    let counted = try countedRows(targets, rows: n, vocab: v, ignoreIndex: ignoreIndex, operation: "crossEntropy")
    if !counted.isEmpty && v == 0 { throw TensorError.invalidShape(lv.shape, reason: "crossEntropy needs at least one class") }

    // lse[i] for every row (ignored rows too: they are cheap to skip in backward but simpler to keep aligned).
    var lseRows = [Float](repeating: 0, count: n)
    var rowLoss = [Float](repeating: 0, count: counted.count)
    lv.withUnsafeBufferPointer { pl in lseRows.withUnsafeMutableBufferPointer { pe in rowLoss.withUnsafeMutableBufferPointer { pr in
        let l = pl.baseAddress!, e = pe.baseAddress!, rl = pr.baseAddress!
        counted.withUnsafeBufferPointer { rows in
            Parallel.forRanges(rows.count, minChunk: SoftmaxKernels.rowChunk(v)) { r in
                for k in r {
                    let i = rows[k]
                    e[i] = SoftmaxKernels.logSumExp(l + i * v, v)
                    rl[k] = e[i] - l[i * v + Int(targets[i])]
                }
            }
        }
    } } }
    let lse = lseRows
    let total = rowLoss.reduce(0.0) { $0 + Double($1) }
    let loss = counted.isEmpty ? 0 : Float(total / Double(counted.count))

    return Variable(.scalar(loss), inputs: [logits]) { [logits = logits.node] g in
        let scale = counted.isEmpty ? 0 : g.scalarValue / Float(counted.count)
        logits.accumulateInPlace { dl, beta in
            lv.withUnsafeBufferPointer { pl in
                let l = pl.baseAddress!
                // Ignored rows get zero gradient: a fresh buffer is already zero; an existing one is unchanged.
                counted.withUnsafeBufferPointer { rows in
                    Parallel.forRanges(rows.count, minChunk: SoftmaxKernels.rowChunk(v)) { r in
                        for k in r {
                            let i = rows[k], src = l + i * v, dst = dl + i * v, m = lse[i]
                            if beta == 0 {
                                for j in 0..<v { dst[j] = scale * fastExp(src[j] - m) }
                            } else {
                                for j in 0..<v { dst[j] += scale * fastExp(src[j] - m) }
                            }
                            dst[Int(targets[i])] -= scale
                        }
                    }
                }
            }
        }
    }
}
