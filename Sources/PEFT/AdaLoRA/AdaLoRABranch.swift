// The AdaLoRA update for one linear layer in SVD form (spec §3.2):
//   h = W x + B ((A x) ⊙ E) · scaling / (ranknum + 1e-5)
// A = lora_A [r, in] (rows: right singular vectors Q), E = lora_E [r, 1] (singular values Λ),
// B = lora_B [out, r] (columns: left singular vectors P). ranknum stays init_r after pruning (never saved).
import TensorCore
import Autograd

public final class AdaLoRABranch: AdapterBranch {
    public let a: Variable
    public let e: Variable
    public let b: Variable
    /// Number of triplets physically present (init_r during training, sum(mask) after a pruned load).
    public var rank: Int { a.shape[0] }
    /// init_r, the divisor of the scaling; PEFT keeps it when triplets are masked or removed.
    public let ranknum: Float
    /// `lora_alpha` (or init_r when lora_alpha is 0).
    public let scaling: Float
    public let dropout: Float

    /// Wraps existing tensors; shapes must be A [r, in], E [r, 1], B [out, r].
    public init(a: Variable, e: Variable, b: Variable, scaling: Float, ranknum: Float, dropout: Float, module: String = "") throws {
        let r = a.value.rank == 2 ? a.shape[0] : -1
        guard a.value.rank == 2 else { throw PEFTError.shapeMismatch(tensor: "\(module).lora_A", expected: [r, -1], got: a.shape) }
        guard e.shape == [r, 1] else { throw PEFTError.shapeMismatch(tensor: "\(module).lora_E", expected: [r, 1], got: e.shape) }
        guard b.value.rank == 2, b.shape[1] == r else {
            throw PEFTError.shapeMismatch(tensor: "\(module).lora_B", expected: [b.shape.first ?? 0, r], got: b.shape)
        }
        self.a = a; self.e = e; self.b = b
        self.scaling = scaling; self.ranknum = ranknum; self.dropout = dropout
    }

    /// scaling / (ranknum + 1e-5), formed in Float32 as PyTorch does (ranknum is a float32 tensor there).
    public var factor: Float { scaling / (ranknum + 1e-5) }

    public var inFeatures: Int { a.shape[1] }
    public var outFeatures: Int { b.shape[0] }

    /// Saved names have no `.weight` suffix: PEFT keeps A, E, B in ParameterDicts.
    public var namedParameters: [(String, Variable)] { [("lora_A", a), ("lora_E", e), ("lora_B", b)] }

    public func forward(_ x: Variable, rng: inout RandomGenerator, training: Bool) -> Variable {
        if rank == 0 { return Variable(Tensor(zeros: Array(x.shape.dropLast()) + [outFeatures])) }
        let dropped = dropout > 0 ? Autograd.dropout(x, p: dropout, rng: &rng, training: training) : x
        // (A x) ⊙ E on the narrow [.., r] intermediate, scaled there too: r/out of the work of scaling the output.
        let down = linear(dropped, weight: a)                         // [.., r]
        let weighted = mul(down, reshape(e, [rank]))                  // E broadcast as a row
        return linear(scale(weighted, by: factor), weight: b)         // [.., out]
    }

    /// ΔW = B · (A ⊙ E) · factor, [out, in].
    public func deltaWeight() -> Tensor {
        let r = rank, n = inFeatures
        let scaledA = Tensor(shape: [r, n]) { out in
            a.value.withUnsafeBufferPointer { pa in e.value.withUnsafeBufferPointer { pe in
                for i in 0..<r { let s = pe[i]; for j in 0..<n { out[i * n + j] = pa[i * n + j] * s } }
            } }
        }
        return Tensor.matmul(b.value, scaledA, alpha: factor)
    }

    /// A branch holding only the triplets where `mask` is true (PEFT's resize by rank pattern). `mask` has one
    /// entry per current triplet; ranknum and scaling carry over so the output is unchanged when the dropped
    /// triplets have E = 0.
    public func keeping(_ mask: [Bool], module: String = "") throws -> AdaLoRABranch {
        guard mask.count == rank else {
            throw PEFTError.shapeMismatch(tensor: "\(module).lora_E (rank_pattern mask)", expected: [rank], got: [mask.count])
        }
        let kept = mask.indices.filter { mask[$0] }
        let k = kept.count, n = inFeatures, out = outFeatures, r = rank
        let newA = Tensor(shape: [k, n]) { dst in a.value.withUnsafeBufferPointer { src in
            for (row, i) in kept.enumerated() { for j in 0..<n { dst[row * n + j] = src[i * n + j] } }
        } }
        let newE = Tensor(shape: [k, 1]) { dst in e.value.withUnsafeBufferPointer { src in
            for (row, i) in kept.enumerated() { dst[row] = src[i] }
        } }
        let newB = Tensor(shape: [out, k]) { dst in b.value.withUnsafeBufferPointer { src in
            for o in 0..<out { for (col, i) in kept.enumerated() { dst[o * k + col] = src[o * r + i] } }
        } }
        return try AdaLoRABranch(a: Variable(newA, requiresGrad: a.requiresGrad, name: a.name),
                                 e: Variable(newE, requiresGrad: e.requiresGrad, name: e.name),
                                 b: Variable(newB, requiresGrad: b.requiresGrad, name: b.name),
                                 scaling: scaling, ranknum: ranknum, dropout: dropout, module: module)
    }

    /// A fresh branch for a base weight [out, in] (spec §3.2): `random == false` gives E = 0 and A, B ~ N(0, 0.02²),
    /// so the layer starts unchanged; `random == true` (init_lora_weights=false) draws all three from N(0, 1).
    public static func initialize(outFeatures out: Int, inFeatures n: Int, rank r: Int, scaling: Double, dropout: Float,
                                  random: Bool, rng: inout RandomGenerator, module: String) throws -> AdaLoRABranch {
        guard r >= 1 else { throw PEFTError.invalidConfig(field: "init_r", reason: "\(module): rank must be at least 1, got \(r)") }
        let std: Float = random ? 1 : 0.02
        let a = rng.normal([r, n], std: std)
        let e = random ? rng.normal([r, 1]) : Tensor(zeros: [r, 1])
        let b = rng.normal([out, r], std: std)
        return try AdaLoRABranch(a: Variable(a, requiresGrad: true, name: "\(module).lora_A"),
                                 e: Variable(e, requiresGrad: true, name: "\(module).lora_E"),
                                 b: Variable(b, requiresGrad: true, name: "\(module).lora_B"),
                                 scaling: Float(scaling), ranknum: Float(r), dropout: dropout, module: module)
    }
}
