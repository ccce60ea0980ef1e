// RMSNorm and LayerNorm over the last dimension, as autograd ops over the fused TensorCore kernels.
// Forward keeps x and the per-row statistics; backward computes only the gradients some input needs.
import TensorCore

/// RMSNorm (Llama): `weight ⊙ x / sqrt(mean(x²) + eps)` over the last dimension. x: [..., dim]; weight: [dim].
public func rmsNorm(_ x: Variable, weight: Variable, eps: Float) throws -> Variable {
    let (rows, dim) = try normRowsAndDim(x, weight: weight, bias: nil, eps: eps, operation: "rmsNorm")
    var out = Tensor(zeros: x.shape), rstd = Tensor(zeros: [rows])
    let xValue = x.value, wValue = weight.value
    xValue.withUnsafeBufferPointer { px in wValue.withUnsafeBufferPointer { pw in
        out.withUnsafeMutableBufferPointer { po in rstd.withUnsafeMutableBufferPointer { pr in
            rmsNormForward(out: po.baseAddress!, rstdOut: pr.baseAddress!, x: px.baseAddress!, weight: pw.baseAddress!,
                           rows: rows, dim: dim, eps: eps)
        } }
    } }
    return Variable(out, inputs: [x, weight]) { [x = x.node, weight = weight.node] gradOut in
        var dx: Tensor? = x.requiresGrad ? Tensor(zeros: x.shape) : nil
        var dw: Tensor? = weight.requiresGrad ? Tensor(zeros: [dim]) : nil
        gradOut.withUnsafeBufferPointer { pg in xValue.withUnsafeBufferPointer { px in
            wValue.withUnsafeBufferPointer { pw in rstd.withUnsafeBufferPointer { pr in
                KernelArguments.mutablePointer(&dx) { pdx in KernelArguments.mutablePointer(&dw) { pdw in
                    rmsNormBackward(dx: pdx, dWeight: pdw, dOut: pg.baseAddress!, x: px.baseAddress!,
                                    weight: pw.baseAddress!, rstd: pr.baseAddress!, rows: rows, dim: dim)
                } }
            } }
        } }
        if let dx = dx { x.accumulate(dx) }
        if let dw = dw { weight.accumulate(dw) }
    }
}

/// LayerNorm (PyTorch, biased variance): `(x − mean) / sqrt(var + eps) ⊙ weight + bias` over the last dimension.
/// x: [..., dim]; weight, bias: [dim] or nil (no scale / no shift).
public func layerNorm(_ x: Variable, weight: Variable?, bias: Variable?, eps: Float) throws -> Variable {
    let (rows, dim) = try normRowsAndDim(x, weight: weight, bias: bias, eps: eps, operation: "layerNorm")
    var out = Tensor(zeros: x.shape), mean = Tensor(zeros: [rows]), rstd = Tensor(zeros: [rows])
    let xValue = x.value, wValue = weight?.value, bValue = bias?.value
    xValue.withUnsafeBufferPointer { px in
        KernelArguments.pointer(wValue) { pw in KernelArguments.pointer(bValue) { pb in
            out.withUnsafeMutableBufferPointer { po in mean.withUnsafeMutableBufferPointer { pm in
                rstd.withUnsafeMutableBufferPointer { pr in
                    layerNormForward(out: po.baseAddress!, meanOut: pm.baseAddress!, rstdOut: pr.baseAddress!,
                                     x: px.baseAddress!, weight: pw, bias: pb, rows: rows, dim: dim, eps: eps)
                }
            } }
        } }
    }
    return Variable(out, inputs: [x] + [weight, bias].compactMap { $0 }) { [x = x.node, weight = weight?.node, bias = bias?.node] gradOut in
        var dx: Tensor? = x.requiresGrad ? Tensor(zeros: x.shape) : nil
        var dw: Tensor? = weight?.requiresGrad == true ? Tensor(zeros: [dim]) : nil
        var db: Tensor? = bias?.requiresGrad == true ? Tensor(zeros: [dim]) : nil
        gradOut.withUnsafeBufferPointer { pg in xValue.withUnsafeBufferPointer { px in
            mean.withUnsafeBufferPointer { pm in rstd.withUnsafeBufferPointer { pr in KernelArguments.pointer(wValue) { pw in
                KernelArguments.mutablePointer(&dx) { pdx in KernelArguments.mutablePointer(&dw) { pdw in
                    KernelArguments.mutablePointer(&db) { pdb in
                        layerNormBackward(dx: pdx, dWeight: pdw, dBias: pdb, dOut: pg.baseAddress!, x: px.baseAddress!,
                                          weight: pw, mean: pm.baseAddress!, rstd: pr.baseAddress!, rows: rows, dim: dim)
                    }
                } }
            } } }
        } }
        if let dx = dx { x.accumulate(dx) }
        if let dw = dw { weight?.accumulate(dw) }
        if let db = db { bias?.accumulate(db) }
    }
}

/// Rows and the normalised dimension of x, after checking weight/bias are [dim] and eps is usable.
private func normRowsAndDim(_ x: Variable, weight: Variable?, bias: Variable?, eps: Float,
                            operation: String) throws -> (rows: Int, dim: Int) {
    guard let dim = x.shape.last else {
        throw TensorError.invalidShape(x.shape, reason: "\(operation) input needs at least one dimension")
    }
    for (name, p) in [("weight", weight), ("bias", bias)] {
        if let p = p, p.shape != [dim] {
            throw TensorError.shapeMismatch(operation: "\(operation) \(p.name ?? name)", expected: [dim], got: p.shape)
        }
    }
    guard eps >= 0, eps.isFinite else {
        throw TensorError.invalidArgument(operation: operation, reason: "eps must be finite and ≥ 0, got \(eps)")
    }
    return (dim == 0 ? 0 : x.value.count / dim, dim)
}

/// Optional kernel arguments: a nil tensor becomes a nil pointer (an input not given, an output not needed).
enum KernelArguments {
    /// Calls `body` with the base address of `t`, or nil when there is no tensor.
    static func pointer<R>(_ t: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let t = t else { return body(nil) }
        return t.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    /// Calls `body` with the mutable base address of `t`, or nil when there is no tensor.
    static func mutablePointer<R>(_ t: inout Tensor?, _ body: (UnsafeMutablePointer<Float>?) -> R) -> R {
        guard var tensor = t else { return body(nil) }
        t = nil  // hand the storage over so the write below does not copy it
        let result = tensor.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
        t = tensor
        return result
    }
}
