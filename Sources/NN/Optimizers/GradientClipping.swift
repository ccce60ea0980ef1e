// Global gradient-norm clipping, torch.nn.utils.clip_grad_norm_ semantics (L2 norm).
import Autograd
import TensorCore

/// L2 norm of all gradients taken together (parameters without a gradient count as zero): the norm of the
/// per-tensor norms, as torch computes it, with the outer sum in Double.
public func gradientNorm(_ parameters: [Variable]) -> Float {
    var total: Double = 0
    for p in parameters { if let g = p.grad { let n = Double(g.l2Norm()); total += n * n } }
    return Float(total.squareRoot())
}

/// Scales all gradients by maxNorm / (total + 1e-6) when that factor is below 1, and returns the total
/// norm measured BEFORE clipping (what trainers log as grad_norm). A non-finite total leaves the gradients
/// untouched (torch would turn them all into NaN) so the caller can detect it and skip the step.
@discardableResult
public func clipGradNorm(_ parameters: [Variable], maxNorm: Float) -> Float {
    precondition(maxNorm >= 0, "clipGradNorm: maxNorm \(maxNorm) is negative")
    let total = gradientNorm(parameters)
    let coefficient = maxNorm / (total + 1e-6)
    guard total.isFinite, coefficient < 1 else { return total }
    for p in parameters where p.grad != nil {
        var g = p.grad!
        p.grad = nil  // unique ownership: scaled in place
        g.scale(by: coefficient)
        p.grad = g
    }
    return total
}
