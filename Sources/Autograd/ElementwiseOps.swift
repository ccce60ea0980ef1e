// Elementwise arithmetic. `b` may be a row vector ([n] or [1, …, n]) broadcast over the rows of `a`
// ([..., n]); its gradient is then the gradient summed over those rows.
import TensorCore

/// a + b.
public func add(_ a: Variable, _ b: Variable) -> Variable {
    let broadcast = Tensor.rowBroadcastLength(a.value, b.value, operation: "add") != nil
    let bShape = b.shape
    return Variable(Tensor.add(a.value, b.value), inputs: [a, b]) { [a = a.node, b = b.node] g in
        a.accumulate(g)
        if b.requiresGrad { b.accumulate(broadcast ? g.sumRows().reshaped(bShape) : g) }
    }
}

/// a − b.
public func sub(_ a: Variable, _ b: Variable) -> Variable {
    let broadcast = Tensor.rowBroadcastLength(a.value, b.value, operation: "sub") != nil
    let bShape = b.shape
    return Variable(Tensor.sub(a.value, b.value), inputs: [a, b]) { [a = a.node, b = b.node] g in
        a.accumulate(g)
        if b.requiresGrad { b.accumulate((broadcast ? g.sumRows().reshaped(bShape) : g).scaled(by: -1)) }
    }
}

/// a ⊙ b.
public func mul(_ a: Variable, _ b: Variable) -> Variable {
    let av = a.value, bv = b.value
    let broadcast = Tensor.rowBroadcastLength(av, bv, operation: "mul") != nil
    return Variable(Tensor.mul(av, bv), inputs: [a, b]) { [a = a.node, b = b.node] g in
        if a.requiresGrad { a.accumulate(Tensor.mul(g, bv)) }
        if b.requiresGrad {
            let gb = Tensor.mul(g, av)
            b.accumulate(broadcast ? gb.sumRows().reshaped(bv.shape) : gb)
        }
    }
}

/// c·x for a constant c.
public func scale(_ x: Variable, by c: Float) -> Variable {
    Variable(x.value.scaled(by: c), inputs: [x]) { [x = x.node] g in x.accumulate(g.scaled(by: c)) }
}
