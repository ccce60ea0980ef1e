// Shape and data-movement ops: reshape, permute, transpose, slice, concat, embedding lookup.
import TensorCore

/// Same elements in a new shape (one dimension may be −1). Shares storage with `x`.
public func reshape(_ x: Variable, _ shape: [Int]) -> Variable {
    let original = x.shape
    return Variable(x.value.reshaped(shape), inputs: [x]) { [x = x.node] g in x.accumulate(g.reshaped(original)) }
}

/// Dimensions reordered like torch.permute (rank ≤ 4); backward applies the inverse permutation.
public func permute(_ x: Variable, _ permutation: [Int]) -> Variable {
    var inverse = [Int](repeating: 0, count: permutation.count)
    for (i, p) in permutation.enumerated() where p >= 0 && p < inverse.count { inverse[p] = i }
    return Variable(x.value.permuted(permutation), inputs: [x]) { [x = x.node] g in x.accumulate(g.permuted(inverse)) }
}

/// Transpose of a 2-D variable.
public func transpose(_ x: Variable) -> Variable {
    Variable(x.value.transposed(), inputs: [x]) { [x = x.node] g in x.accumulate(g.transposed()) }
}

/// `range` along `dimension`; backward writes the gradient into that range of a zero tensor.
public func slice(_ x: Variable, dimension: Int, range: Range<Int>) -> Variable {
    let shape = x.shape
    return Variable(x.value.sliced(dimension: dimension, range: range), inputs: [x]) { [x = x.node] g in
        var full = Tensor(zeros: shape)
        full.addSlice(g, dimension: dimension, range: range)
        x.accumulate(full)
    }
}

/// Variables joined along `dimension`; backward hands each input its slice of the gradient.
public func concat(_ parts: [Variable], dimension: Int) -> Variable {
    let y = Tensor.concat(parts.map(\.value), dimension: dimension)
    let d = dimension < 0 ? y.rank + dimension : dimension
    let sizes = parts.map { $0.shape[d] }
    let nodes = parts.map(\.node)
    return Variable(y, inputs: parts) { g in
        var start = 0
        for (p, n) in zip(nodes, sizes) {
            if p.requiresGrad { p.accumulate(g.sliced(dimension: d, range: start..<(start + n))) }
            start += n
        }
    }
}

/// Rows of `table` [V, D] for `ids` → [ids.count, D]. Throws when an id is outside 0..<V.
/// Backward scatter-adds into a dense [V, D] gradient; a frozen table records nothing.
public func embedding(ids: [Int32], table: Variable) throws -> Variable {
    guard table.value.rank == 2 else {
        throw TensorError.invalidShape(table.shape, reason: "embedding table must be 2-D [vocab, dim]")
    }
    let y = try table.value.gatherRows(ids)
    return Variable(y, inputs: [table]) { [table = table.node] g in
        let d = table.shape[1]
        // A fresh gradient buffer starts zeroed (beta 0) and an existing one is added to (beta 1):
        // scatter-add is correct for both.
        table.accumulateInPlace { dst, _ in
            g.withUnsafeBufferPointer { pg in
                for (i, id) in ids.enumerated() {
                    let to = dst + Int(id) * d, from = pg.baseAddress! + i * d
                    for j in 0..<d { to[j] += from[j] }
                }
            }
        }
    }
}

/// Embedding lookup with `Int` ids → [ids.count, D]; throws when an id is outside 0..<V.
public func embedding(ids: [Int], table: Variable) throws -> Variable {
    let rows = table.shape.first ?? 0
    if let (i, id) = ids.enumerated().first(where: { $0.element < 0 || $0.element >= rows }) {
        throw TensorError.invalidArgument(operation: "embedding lookup", reason: "id \(id) at position \(i) is outside the table's \(rows) rows")
    }
    return try embedding(ids: ids.map { Int32($0) }, table: table)
}

/// Embedding lookup with ids held in a tensor of integral values: ids [...] → [..., D].
public func embedding(ids: Tensor, table: Variable) throws -> Variable {
    var list = [Int32](repeating: 0, count: ids.count)
    for i in 0..<ids.count {
        let v = ids[flat: i]
        guard v == v.rounded(), abs(v) < 2_147_483_648 else {
            throw TensorError.invalidArgument(operation: "embedding lookup", reason: "id tensor holds non-integral value \(v) at \(i)")
        }
        list[i] = Int32(v)
    }
    let rows = try embedding(ids: list, table: table)
    return reshape(rows, ids.shape + [table.shape[1]])
}
