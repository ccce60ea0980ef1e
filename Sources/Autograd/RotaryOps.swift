// Rotary position embedding as an autograd op: a fixed rotation per (position, pair), so the backward pass
// is the same kernel rotating the gradient by −angle. Nothing but the table is kept for backward.
import TensorCore

/// Rotates the pairs of every head vector by its position's angles. x: [B, H, T, D] with D == table.dim; the
/// table holds T positions shared by the batch, or B·T (one run of T per batch item, e.g. left padding).
public func rotaryEmbedding(_ x: Variable, table: RotaryTable, layout: RotaryLayout) throws -> Variable {
    guard x.shape.count == 4 else {
        throw TensorError.invalidShape(x.shape, reason: "rotaryEmbedding input must be [batch, heads, tokens, headDim]")
    }
    let (batch, heads, length, dim) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    guard dim == table.dim else {
        throw TensorError.shapeMismatch(operation: "rotaryEmbedding head dim vs RotaryTable.dim", expected: [table.dim], got: [dim])
    }
    let perBatch: Bool
    if table.positions.count == length { perBatch = false }
    else if table.positions.count == batch * length { perBatch = true }
    else {
        throw TensorError.shapeMismatch(operation: "rotaryEmbedding positions (tokens or batch·tokens)",
                                        expected: [length, batch * length], got: [table.positions.count])
    }
    func rotate(_ input: Tensor, inverse: Bool) -> Tensor {
        var out = Tensor(zeros: input.shape)
        input.withUnsafeBufferPointer { pi in out.withUnsafeMutableBufferPointer { po in
            table.cos.withUnsafeBufferPointer { pc in table.sin.withUnsafeBufferPointer { ps in
                rotaryApply(out: po.baseAddress!, x: pi.baseAddress!, cos: pc.baseAddress!, sin: ps.baseAddress!,
                            batch: batch, heads: heads, length: length, dim: dim, perBatchPositions: perBatch,
                            layout: layout, inverse: inverse)
            } }
        } }
        return out
    }
    return Variable(rotate(x.value, inverse: false), inputs: [x]) { [x = x.node] gradOut in
        x.accumulate(rotate(gradOut, inverse: true))
    }
}
