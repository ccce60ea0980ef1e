// DoRA (Liu et al. 2024, "Weight-Decomposed Low-Rank Adaptation"; spec §1.5) as PEFT computes it for a linear layer:
//   W' = m ⊙ (W + s·B·A) / ‖W + s·B·A‖_row          m [out] trainable, norm over the input dimension of each row
// The norm is treated as a constant (detached, paper §4.3): no gradient flows through it, so the backward is
// that of y' = g ⊙ (x·Wᵀ + s·x·(BA)ᵀ) + b with g = m / ‖·‖ — gradients reach m, A, B and x only through g and
// the LoRA product. The forward adds to the base result y = x·Wᵀ + b:
//   y' = y + (g − 1) ⊙ (y − b) + g ⊙ s·B·A·dropout(x)     (with dropout in training: dropout(x)·Wᵀ for y − b)
// Merging replaces W by g ⊙ (W + s·B·A) with g from the merged weight's own norm; that g is kept, so unmerge
// (W = W'/g − s·B·A) restores W exactly as PEFT does.
import Foundation
import TensorCore
import Autograd

public final class DoRABranch: AdapterBranch {
    /// The low-rank direction update (A [r, in], B [out, r], scaling, dropout).
    public let lora: LoRABranch
    /// m [out]: PEFT's `lora_magnitude_vector` (saved without `.weight`).
    public let magnitude: Variable
    /// The layer whose base weight the norm reads; weak because the layer owns the branch.
    weak var layer: AdaptedLinear?
    /// g [out] of each merge still in the weight, last merge last (LIFO like the layer's merges).
    var mergeScales: [Tensor] = []
    /// Inference reuses ‖W + s·B·A‖ while A and B keep the same bits (training always recomputes it).
    var cachedNorm: (fingerprint: UInt64, norm: Tensor)?

    public var rank: Int { lora.rank }
    public var a: Variable { lora.a }
    public var b: Variable { lora.b }
    public var scaling: Float { lora.scaling }

    /// A DoRA branch on `layer` with magnitude m [out].
    public init(lora: LoRABranch, magnitude: Variable, layer: AdaptedLinear) throws {
        guard magnitude.shape == [layer.outFeatures] else {
            throw PEFTError.shapeMismatch(tensor: layer.path + ".lora_magnitude_vector", expected: [layer.outFeatures], got: magnitude.shape)
        }
        guard lora.a.shape == [lora.rank, layer.inFeatures], lora.b.shape == [layer.outFeatures, lora.rank] else {
            throw PEFTError.shapeMismatch(tensor: layer.path + ".lora_B.weight", expected: [layer.outFeatures, lora.rank], got: lora.b.shape)
        }
        self.lora = lora; self.magnitude = magnitude; self.layer = layer
    }

    /// A fresh DoRA branch: m = ‖W + s·B·A‖ per row, so the layer's output is unchanged at initialisation.
    public static func initialize(lora: LoRABranch, layer: AdaptedLinear) throws -> DoRABranch {
        let norm = weightNorm(base: layer.base.denseValue, lora: lora)
        return try DoRABranch(lora: lora, magnitude: Variable(norm, requiresGrad: true, name: layer.path + ".lora_magnitude_vector"), layer: layer)
    }

    public var namedParameters: [(String, Variable)] { lora.namedParameters + [("lora_magnitude_vector", magnitude)] }

    private var owner: AdaptedLinear {
        guard let layer else { preconditionFailure("DoRA branch used after its layer was released") }
        return layer
    }

    /// ‖W + s·B·A‖ over each row of `base` [out, in] → [out].
    static func weightNorm(base: Tensor, lora: LoRABranch) -> Tensor {
        var w = base  // copied on first write
        let (out, inF, r) = (base.dim(0), base.dim(1), lora.rank)
        w.withUnsafeMutableBufferPointer { pw in lora.b.value.withUnsafeBufferPointer { pb in lora.a.value.withUnsafeBufferPointer { pa in
            if r > 0 {
                BLAS.gemm(.none, .none, m: out, n: inF, k: r, alpha: lora.scaling, a: pb.baseAddress!, lda: r,
                          b: pa.baseAddress!, ldb: inF, beta: 1, c: pw.baseAddress!, ldc: inF)
            }
        } } }
        return rowNorms(w)
    }

    /// Euclidean norm of each row of w [out, in] → [out].
    static func rowNorms(_ w: Tensor) -> Tensor {
        let (out, inF) = (w.dim(0), w.dim(1))
        return Tensor(shape: [out]) { p in
            w.withUnsafeBufferPointer { pw in for i in 0..<out { p[i] = simdSumOfSquares(pw.baseAddress! + i * inF, inF).squareRoot() } }
        }
    }

    /// ‖W + s·B·A‖ [out] for the layer's current base and A, B (the detached norm of the forward).
    public func weightNorm() -> Tensor { Self.weightNorm(base: owner.base.denseValue, lora: lora) }

    /// The current ‖W + s·B·A‖ [out] (cached for inference while A and B are unchanged).
    func currentNorm(training: Bool) -> Tensor {
        if training { cachedNorm = nil; return Self.weightNorm(base: owner.base.denseValue, lora: lora) }
        let fingerprint = Self.fingerprint(a.value, b.value)
        if let cachedNorm, cachedNorm.fingerprint == fingerprint { return cachedNorm.norm }
        let norm = Self.weightNorm(base: owner.base.denseValue, lora: lora)
        cachedNorm = (fingerprint, norm)
        return norm
    }

    /// FNV-1a over the bits of the given tensors.
    static func fingerprint(_ tensors: Tensor...) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for t in tensors {
            t.withUnsafeBufferPointer { p in for v in p { h = (h ^ UInt64(v.bitPattern)) &* 0x100_0000_01b3 } }
            h = (h ^ UInt64(t.count)) &* 0x100_0000_01b3
        }
        return h
    }

    /// The standalone branch output (recomputes the base product x·Wᵀ it needs).
    public func forward(_ x: Variable, rng: inout RandomGenerator, training: Bool) -> Variable {
        let layer = owner
        return forward(x, baseOutput: layer.baseForward(x, bias: nil), bias: nil, layer: layer, rng: &rng, training: training)
    }

    /// What DoRA adds to `baseOutput` (= x·Wᵀ + b, as the layer computed it): (g − 1) ⊙ (y − b) + g ⊙ s·B·A·x.
    func forward(_ x: Variable, baseOutput: Variable, bias: Variable?, layer: AdaptedLinear, rng: inout RandomGenerator,
                 training: Bool) -> Variable {
        let g = dividedByConstant(magnitude, currentNorm(training: training))  // [out]; the norm is detached
        let dropping = lora.dropout > 0 && training
        let dropped = dropping ? dropout(x, p: lora.dropout, rng: &rng, training: true) : x
        // PEFT: with dropout active the base term is recomputed on the dropped input (without bias).
        let baseTerm = dropping ? layer.baseForward(dropped, bias: nil) : (bias.map { sub(baseOutput, $0) } ?? baseOutput)
        let loraTerm = linear(scale(linear(dropped, weight: a), by: scaling), weight: b)
        let gMinusOne = sub(g, Variable(Tensor(repeating: 1, shape: g.shape)))
        return add(mul(baseTerm, gMinusOne), mul(loraTerm, g))
    }

    /// m / d for a constant d; the gradient goes to m only.
    private func dividedByConstant(_ m: Variable, _ d: Tensor) -> Variable {
        Variable(Tensor.div(m.value, d), inputs: [m]) { [m = m.node] g in m.accumulate(Tensor.div(g, d)) }
    }

    /// Adds DoRA to an inference product: out [rows, out] holds x·Wᵀ + b (+ earlier adapters), x [rows, in].
    func addInference(x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>, bias: Tensor?) {
        let layer = owner
        let (inF, outF, r) = (layer.inFeatures, layer.outFeatures, rank)
        let norm = currentNorm(training: false)
        let g = Tensor.div(magnitude.value, norm)
        let down = UnsafeMutablePointer<Float>.allocate(capacity: max(1, rows * r))
        let up = UnsafeMutablePointer<Float>.allocate(capacity: rows * outF)
        defer { down.deallocate(); up.deallocate() }
        up.update(repeating: 0, count: rows * outF)
        if r > 0 {
            a.value.withUnsafeBufferPointer { pa in b.value.withUnsafeBufferPointer { pb in
                BLAS.gemm(.none, .transposed, m: rows, n: r, k: inF, alpha: scaling, a: x, lda: inF, b: pa.baseAddress!, ldb: inF, c: down, ldc: r)
                BLAS.gemm(.none, .transposed, m: rows, n: outF, k: r, a: down, lda: r, b: pb.baseAddress!, ldb: r, c: up, ldc: outF)
            } }
        }
        g.withUnsafeBufferPointer { pg in
            let bias = bias.map { $0.array } ?? [Float](repeating: 0, count: outF)
            for i in 0..<rows {
                let o = out + i * outF, u = up + i * outF
                for j in 0..<outF { o[j] += (pg[j] - 1) * (o[j] - bias[j]) + pg[j] * u[j] }
            }
        }
    }

    /// W' − W for the layer's current base W.
    public func deltaWeight() -> Tensor {
        let original = owner.base.denseValue
        var merged = original
        mergedWeight(&merged)
        merged.addScaled(original, alpha: -1)
        return merged
    }

    /// W ← g ⊙ (W + s·B·A) with g = m / ‖W + s·B·A‖; returns g.
    @discardableResult
    private func mergedWeight(_ w: inout Tensor) -> Tensor {
        w.addScaled(lora.deltaWeight())
        let g = Tensor.div(magnitude.value, Self.rowNorms(w))
        let inF = w.dim(1)
        w.withUnsafeMutableBufferPointer { pw in g.withUnsafeBufferPointer { pg in
            for i in 0..<pg.count { for j in 0..<inF { pw[i * inF + j] *= pg[i] } }
        } }
        return g
    }

    public func merge(into weight: inout Tensor) {
        mergeScales.append(mergedWeight(&weight))
    }

    public func unmerge(from weight: inout Tensor) {
        // The scale of the matching merge; without one (never merged) use the norm of W + ΔW as it stands.
        let g = mergeScales.popLast() ?? Tensor.div(magnitude.value, Self.weightNorm(base: weight, lora: lora))
        let inF = weight.dim(1)
        weight.withUnsafeMutableBufferPointer { pw in g.withUnsafeBufferPointer { pg in
            for i in 0..<pg.count { for j in 0..<inF { pw[i * inF + j] /= pg[i] } }
        } }
        weight.addScaled(lora.deltaWeight(), alpha: -1)
    }
}
