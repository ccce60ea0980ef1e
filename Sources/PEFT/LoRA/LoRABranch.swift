// The LoRA update for one linear layer (spec §1.3–1.4, §2.1–2.2): h = W x + s · B A dropout(x).
import TensorCore
import Autograd
import LinearAlgebra

public final class LoRABranch: AdapterBranch {
    /// A [r, in] and B [out, r], PyTorch layouts, as in PEFT's `lora_A.weight` / `lora_B.weight`.
    public let a: Variable
    public let b: Variable
    public let rank: Int
    public let alpha: Double
    /// α/r, or α/√r with rsLoRA.
    public let scaling: Float
    public let dropout: Float

    public init(a: Variable, b: Variable, alpha: Double, useRSLoRA: Bool, dropout: Float) throws {
        let r = a.shape[0]
        guard a.value.rank == 2, b.value.rank == 2, b.shape[1] == r else {
            throw PEFTError.shapeMismatch(tensor: "lora_B", expected: [b.shape.first ?? 0, r], got: b.shape)
        }
        self.a = a; self.b = b; rank = r; self.alpha = alpha; self.dropout = dropout
        scaling = r == 0 ? 0 : Float(useRSLoRA ? alpha / Double(r).squareRoot() : alpha / Double(r))
    }

    public var namedParameters: [(String, Variable)] { [("lora_A.weight", a), ("lora_B.weight", b)] }

    public func forward(_ x: Variable, rng: inout RandomGenerator, training: Bool) -> Variable {
        let dropped = dropout > 0 ? Autograd.dropout(x, p: dropout, rng: &rng, training: training) : x
        // Scale the narrow [.., r] intermediate rather than the [.., out] result: same math, r/out of the work.
        let down = scale(linear(dropped, weight: a), by: scaling)
        return linear(down, weight: b)
    }

    public func deltaWeight() -> Tensor { Tensor.matmul(b.value, a.value, alpha: scaling) }

    /// Creates the branch for a base weight W [out, in] with the chosen initialisation. PiSSA and OLoRA return
    /// the residual base weight that must replace W (the layer output is unchanged at init).
    public static func initialize(weight w: Tensor, rank r: Int, alpha: Double, useRSLoRA: Bool, dropout: Float,
                                  method: LoRAInitialization, rng: inout RandomGenerator, module: String)
        throws -> (branch: LoRABranch, residualWeight: Tensor?)
    {
        let (out, inFeatures) = (w.shape[0], w.shape[1])
        guard r > 0 else { throw PEFTError.invalidConfig(field: "r", reason: "\(module): rank must be positive, got \(r)") }
        let s = Float(useRSLoRA ? alpha / Double(r).squareRoot() : alpha / Double(r))
        var a: Tensor, b: Tensor, residual: Tensor? = nil
        switch method {
        case .standard:
            let bound = 1 / Float(inFeatures).squareRoot()  // kaiming_uniform(a=√5) == U(−1/√in, 1/√in)
            a = rng.uniform([r, inFeatures], low: -bound, high: bound)
            b = Tensor(zeros: [out, r])
        case .gaussian:
            a = rng.normal([r, inFeatures], std: 1 / Float(r))
            b = Tensor(zeros: [out, r])
        case .random:
            let boundA = 1 / Float(inFeatures).squareRoot(), boundB = 1 / Float(r).squareRoot()
            a = rng.uniform([r, inFeatures], low: -boundA, high: boundA)
            b = rng.uniform([out, r], low: -boundB, high: boundB)
        case .pissa(let iterations):
            guard r <= min(out, inFeatures) else {
                throw PEFTError.invalidConfig(field: "r", reason: "\(module): PiSSA rank \(r) exceeds min(out, in) = \(min(out, inFeatures))")
            }
            let decomposition = try iterations.map { try randomizedSVD(w, rank: r, powerIterations: $0, rng: &rng) } ?? svd(w)
            let top = try decomposition.truncated(to: r)
            // S' = S/s, A = √S'·Vᵀ, B = U·√S', so s·B·A is exactly the principal rank-r part of W.
            let root = top.s.array.map { ($0 / s).squareRoot() }
            a = Tensor(shape: [r, inFeatures]) { p in
                top.vt.withUnsafeBufferPointer { v in for i in 0..<r { for j in 0..<inFeatures { p[i * inFeatures + j] = root[i] * v[i * inFeatures + j] } } }
            }
            b = Tensor(shape: [out, r]) { p in
                top.u.withUnsafeBufferPointer { u in for i in 0..<out { for j in 0..<r { p[i * r + j] = u[i * r + j] * root[j] } } }
            }
            residual = w
        case .olora:
            guard r <= min(out, inFeatures) else {
                throw PEFTError.invalidConfig(field: "r", reason: "\(module): OLoRA rank \(r) exceeds min(out, in) = \(min(out, inFeatures))")
            }
            let (q, rr) = try qr(w)  // q [out, k], rr [k, in]
            let k = q.shape[1]
            a = Tensor(shape: [r, inFeatures]) { p in rr.withUnsafeBufferPointer { src in for i in 0..<(r * inFeatures) { p[i] = src[i] } } }
            b = Tensor(shape: [out, r]) { p in q.withUnsafeBufferPointer { src in for i in 0..<out { for j in 0..<r { p[i * r + j] = src[i * k + j] } } } }
            residual = w
        }
        let branch = try LoRABranch(a: Variable(a, requiresGrad: true, name: "\(module).lora_A.weight"),
                                    b: Variable(b, requiresGrad: true, name: "\(module).lora_B.weight"),
                                    alpha: alpha, useRSLoRA: useRSLoRA, dropout: dropout)
        if var res = residual {
            let delta = branch.deltaWeight()
            res.withUnsafeMutableBufferPointer { p in delta.withUnsafeBufferPointer { d in for i in 0..<p.count { p[i] -= d[i] } } }
            residual = res
        }
        return (branch, residual)
    }
}
