// Scaled dot-product attention (causal or not, grouped-query, optional key padding) as an autograd op.
// Forward keeps q, k, v, the output and one log-sum-exp per query row; backward recomputes the probabilities.
import TensorCore

/// softmax(scale · q·kᵀ + mask) · v per head. q: [B, Hq, T, D]; k, v: [B, Hkv, S, D] with Hq a multiple of Hkv
/// (query head h reads kv head h / (Hq / Hkv)). `causal` lets query t see keys 0...S − T + t (end-aligned, so
/// T = 1 against S cached keys is a decode step). keyPaddingMask: additive [B, S] (0 keep, −inf drop).
/// `scale` defaults to 1/√D. Returns [B, Hq, T, D].
public func scaledDotProductAttention(q: Variable, k: Variable, v: Variable, causal: Bool,
                                      keyPaddingMask: Tensor? = nil, scale: Float? = nil) throws -> Variable {
    let op = "scaledDotProductAttention"
    guard q.shape.count == 4 else { throw TensorError.invalidShape(q.shape, reason: "\(op) q must be [batch, heads, tokens, headDim]") }
    guard k.shape.count == 4 else { throw TensorError.invalidShape(k.shape, reason: "\(op) k must be [batch, kvHeads, keys, headDim]") }
    guard v.shape == k.shape else { throw TensorError.shapeMismatch(operation: "\(op) v vs k", expected: k.shape, got: v.shape) }
    guard k.shape[0] == q.shape[0], k.shape[3] == q.shape[3] else {
        throw TensorError.shapeMismatch(operation: "\(op) k batch and head dim vs q", expected: [q.shape[0], k.shape[1], k.shape[2], q.shape[3]], got: k.shape)
    }
    let shape = AttentionShape(batch: q.shape[0], queryHeads: q.shape[1], kvHeads: k.shape[1], queryLength: q.shape[2],
                               keyLength: k.shape[2], headDim: q.shape[3], causal: causal, scale: scale)
    try shape.validate()
    if let mask = keyPaddingMask, mask.shape != [shape.batch, shape.keyLength] {
        throw TensorError.shapeMismatch(operation: "\(op) keyPaddingMask", expected: [shape.batch, shape.keyLength], got: mask.shape)
    }
    let qValue = q.value, kValue = k.value, vValue = v.value
    var out = Tensor(zeros: q.shape)
    var logSumExp = Tensor(zeros: [shape.batch, shape.queryHeads, shape.queryLength])
    qValue.withUnsafeBufferPointer { pq in kValue.withUnsafeBufferPointer { pk in vValue.withUnsafeBufferPointer { pv in
        KernelArguments.pointer(keyPaddingMask) { pm in
            out.withUnsafeMutableBufferPointer { po in logSumExp.withUnsafeMutableBufferPointer { pl in
                attentionForward(out: po.baseAddress!, logSumExp: pl.baseAddress!, q: pq.baseAddress!, k: pk.baseAddress!,
                                 v: pv.baseAddress!, keyPaddingMask: pm, shape: shape)
            } }
        }
    } } }
    let outValue = out
    return Variable(out, inputs: [q, k, v]) { [q = q.node, k = k.node, v = v.node] gradOut in
        var dq: Tensor? = q.requiresGrad ? Tensor(zeros: q.shape) : nil
        var dk: Tensor? = k.requiresGrad ? Tensor(zeros: k.shape) : nil
        var dv: Tensor? = v.requiresGrad ? Tensor(zeros: v.shape) : nil
        gradOut.withUnsafeBufferPointer { pg in qValue.withUnsafeBufferPointer { pq in kValue.withUnsafeBufferPointer { pk in
            vValue.withUnsafeBufferPointer { pv in outValue.withUnsafeBufferPointer { po in logSumExp.withUnsafeBufferPointer { pl in
                KernelArguments.pointer(keyPaddingMask) { pm in
                    KernelArguments.mutablePointer(&dq) { pdq in KernelArguments.mutablePointer(&dk) { pdk in
                        KernelArguments.mutablePointer(&dv) { pdv in
                            attentionBackward(dq: pdq, dk: pdk, dv: pdv, dOut: pg.baseAddress!, q: pq.baseAddress!,
                                              k: pk.baseAddress!, v: pv.baseAddress!, out: po.baseAddress!,
                                              logSumExp: pl.baseAddress!, keyPaddingMask: pm, shape: shape)
                        }
                    } }
                }
            } } }
        } } }
        if let dq = dq { q.accumulate(dq) }
        if let dk = dk { k.accumulate(dk) }
        if let dv = dv { v.accumulate(dv) }
    }
}

/// Additive key padding mask [B, S] from a 0/1 attention mask [B, S] (1 = real token → 0, 0 = padding → −inf).
public func additiveKeyPaddingMask(fromAttentionMask mask: Tensor) throws -> Tensor {
    guard mask.rank == 2 else { throw TensorError.invalidShape(mask.shape, reason: "attention mask must be [batch, keys]") }
    var out = Tensor(zeros: mask.shape)
    for i in 0..<mask.count {
        let m = mask[flat: i]
        guard m == 0 || m == 1 else {
            throw TensorError.invalidArgument(operation: "additiveKeyPaddingMask", reason: "attention mask value \(m) at flat index \(i) is not 0 or 1")
        }
        out[flat: i] = m == 1 ? 0 : -.infinity
    }
    return out
}
