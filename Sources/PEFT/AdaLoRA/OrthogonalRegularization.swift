// AdaLoRA's orthogonal regulariser, keeping P = lora_B and Q = lora_A near orthonormal so that P Λ Q stays an SVD
// and zeroing λ_i removes exactly one direction (spec §3.3):
//   PEFT / original repo:  γ · (1/N) Σ_{M ∈ {A_k, B_k}} ‖G(M) − I‖_F        (N = number of A and B matrices)
//   paper eq. (4):          γ · Σ_k (‖A_k A_kᵀ − I‖²_F + ‖B_kᵀ B_k − I‖²_F)
// with G(A) = A Aᵀ [r, r], G(B) = Bᵀ B [r, r]. One fused op: the r×r Gram matrices are tiny, so the backward is
// written out instead of building a graph of matmuls.
//   ∂‖G − I‖²_F/∂A = 4 (A Aᵀ − I) A,   ∂‖G − I‖²_F/∂B = 4 B (Bᵀ B − I),   ∂‖·‖_F = ∂‖·‖²_F / (2‖·‖_F)
// ‖·‖_F is not differentiable at 0; like torch.norm, the gradient there is taken as 0.
import TensorCore
import Autograd

/// Which form of the orthogonal regulariser to use.
public enum OrthogonalRegularizationForm: String, Sendable {
    /// Mean over all A and B matrices of the (non-squared) Frobenius norm: what PEFT and the original code compute.
    case peft
    /// Sum over modules of squared Frobenius norms, as written in the AdaLoRA paper (eq. 4).
    case paperSquared
}

/// γ · R(A, B) over the given branches as a scalar Variable whose gradient reaches every A and B. Branches of
/// rank 0 count in PEFT's mean (their term is 0). No branches → constant 0.
public func orthogonalRegularization(_ branches: [AdaLoRABranch], weight: Float,
                                     form: OrthogonalRegularizationForm = .peft) -> Variable {
    let matrices = branches.flatMap { [($0.a, true), ($0.b, false)] }  // (matrix, isA)
    guard !matrices.isEmpty else { return Variable(.scalar(0)) }
    // Per matrix: D = G − I and its norm.
    let residuals: [(d: Tensor, norm: Float)] = matrices.map { m, isA in
        var d = isA ? Tensor.matmul(m.value, m.value, transposeB: true) : Tensor.matmul(m.value, m.value, transposeA: true)
        let r = d.shape[0]
        d.withUnsafeMutableBufferPointer { p in for i in 0..<r { p[i * r + i] -= 1 } }
        return (d, d.l2Norm())
    }
    let count = Float(matrices.count)
    var total: Float = 0
    for (_, norm) in residuals { total += form == .peft ? norm : norm * norm }
    let value = weight * (form == .peft ? total / count : total)
    return Variable(.scalar(value), inputs: matrices.map(\.0)) { g in  // the matrices are parameters: holding them costs nothing
        let upstream = g.scalarValue * weight
        for (index, (m, isA)) in matrices.enumerated() where m.requiresGrad {
            let (d, norm) = residuals[index]
            // coefficient c with ∂term/∂M = c · (D A) or c · (B D): squared: 4; PEFT: 4/(2‖D‖)/N = 2/(‖D‖ N).
            let c: Float
            switch form {
            case .peft: c = norm > 0 ? 2 / (norm * count) : 0
            case .paperSquared: c = 4
            }
            guard c != 0, m.value.count > 0 else { continue }
            let grad = isA ? Tensor.matmul(d, m.value, alpha: upstream * c) : Tensor.matmul(m.value, d, alpha: upstream * c)
            m.accumulate(grad)
        }
    }
}
