// Sums and means with their (broadcasting) backwards.
import TensorCore

/// Σ over all elements → scalar (shape []).
public func sum(_ x: Variable) -> Variable {
    let shape = x.shape
    return Variable(.scalar(x.value.sum()), inputs: [x]) { [x = x.node] g in
        x.accumulate(Tensor(repeating: g.scalarValue, shape: shape))
    }
}

/// Mean over all elements → scalar (shape []).
public func mean(_ x: Variable) -> Variable {
    let shape = x.shape, n = Float(x.value.count)
    return Variable(.scalar(x.value.mean()), inputs: [x]) { [x = x.node] g in
        x.accumulate(Tensor(repeating: g.scalarValue / n, shape: shape))
    }
}

/// Σ over the last dimension: [..., n] → [...].
public func sumLastDim(_ x: Variable) -> Variable {
    let shape = x.shape
    return Variable(x.value.sumLastDim(), inputs: [x]) { [x = x.node] g in x.accumulate(broadcastLastDim(g, to: shape, scale: 1)) }
}

/// Mean over the last dimension: [..., n] → [...].
public func meanLastDim(_ x: Variable) -> Variable {
    let shape = x.shape, n = Float(max(x.shape.last ?? 1, 1))
    return Variable(x.value.meanLastDim(), inputs: [x]) { [x = x.node] g in x.accumulate(broadcastLastDim(g, to: shape, scale: 1 / n)) }
}

/// scale·g[..., None] repeated along a new last dimension of `shape`.
func broadcastLastDim(_ g: Tensor, to shape: [Int], scale: Float) -> Tensor {
    let n = shape.last ?? 1
    return g.withUnsafeBufferPointer { pg in
        Tensor(shape: shape) { out in
            let o = out.baseAddress!
            for r in 0..<pg.count {
                let v = scale * pg[r], row = o + r * n
                for j in 0..<n { row[j] = v }
            }
        }
    }
}
