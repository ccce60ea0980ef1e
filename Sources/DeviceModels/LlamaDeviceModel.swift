// A LlamaModel's weights on a CUDA device, uploaded once, and its forward pass through the CUDA launchers:
// embedding → N × (RMSNorm → q/k/v (+ LoRA) → RoPE → flash attention → o (+ LoRA) → residual → RMSNorm →
// gate/up (+ LoRA) → SwiGLU → down (+ LoRA) → residual) → final RMSNorm → chunked LM-head cross-entropy.
// The same computation as LlamaModel+Forward, in the same order; activations are token-major [B·T, width], so
// q/k/v are attended where the projections wrote them (no transposes).
//
// Precision: `.float32` (parity runs) or `.bfloat16` (bf16 storage, fp32 accumulation in every GEMM and kernel).
// Quantized bases (GGUF Q8_0/Q4_1) stay quantized on the device and are expanded into one reused dense tile just
// before their GEMM; LoRA A/B are uploaded in the compute precision (training keeps fp32 masters beside them).
// Not yet supported (typed error): biases (Qwen2-style q/k/v bias), Qwen3 q/k norm, AdaLoRA and DoRA branches, adapters on lm_head.
import CUDA
import Foundation
import Formats
import Models
import PEFT
import TensorCore

public enum DeviceModelError: Error, CustomStringConvertible, Equatable {
    case unsupported(String)
    public var description: String {
        switch self { case .unsupported(let what): return "CUDA model path: \(what) is not supported yet" }
    }
}

public final class LlamaDeviceModel {
    public let context: CUDAContext
    public let config: LlamaConfig
    public let precision: DeviceElementType

    /// One LoRA branch: compute copies (precision) of A [r, in] and B [out, r], fp32 masters (the same tensors
    /// in fp32 mode), fp32 gradients and AdamW moments.
    final class LoRA {
        let name: String
        let a: DeviceTensor, b: DeviceTensor, masterA: DeviceTensor, masterB: DeviceTensor
        let gradA: DeviceTensor, gradB: DeviceTensor
        let momentA: (m: DeviceTensor, v: DeviceTensor), momentB: (m: DeviceTensor, v: DeviceTensor)
        let scaling: Float, rank: Int, dropout: Float
        init(name: String, branch: LoRABranch, precision: DeviceElementType, context: CUDAContext) throws {
            self.name = name; scaling = branch.scaling; rank = branch.rank; dropout = branch.dropout
            masterA = try DeviceTensor(branch.a.value, as: .float32, context: context)
            masterB = try DeviceTensor(branch.b.value, as: .float32, context: context)
            a = precision == .float32 ? masterA : try DeviceTensor(branch.a.value, as: precision, context: context)
            b = precision == .float32 ? masterB : try DeviceTensor(branch.b.value, as: precision, context: context)
            func z(_ shape: [Int]) throws -> DeviceTensor { try DeviceTensor(zeros: shape, type: .float32, context: context) }
            gradA = try z(branch.a.shape); gradB = try z(branch.b.shape)
            momentA = (try z(branch.a.shape), try z(branch.a.shape)); momentB = (try z(branch.b.shape), try z(branch.b.shape))
        }
    }
    struct Linear { let path: String; let weight: DeviceTensor; let outFeatures: Int; let inFeatures: Int; let adapters: [LoRA] }
    struct Layer { let inputNorm: DeviceTensor, postNorm: DeviceTensor; let q: Linear, k: Linear, v: Linear, o: Linear, gate: Linear, up: Linear, down: Linear }

    let embedding: DeviceTensor
    let layers: [Layer]
    let finalNorm: DeviceTensor
    /// Dense head weight [vocab, hidden] in the compute precision (the tied embedding, dequantized once if quantized).
    let head: DeviceTensor
    /// Scratch for expanding one quantized weight (the largest) before its GEMM.
    var dequantizeTile: DeviceTensor?

    /// Uploads every weight of `model` (and its active LoRA adapters) once. `keepQuantized`: Q8_0/Q4_1 bases stay
    /// in their blocks (QLoRA); otherwise they are expanded to the compute precision on upload.
    public init(_ model: LlamaModel, context: CUDAContext, precision: DeviceElementType, keepQuantized: Bool = true) throws {
        guard precision == .float32 || precision == .bfloat16 else { throw DeviceModelError.unsupported("precision \(precision.rawValue)") }
        self.context = context; config = model.config; self.precision = precision
        // Qwen3's per-head q/k RMSNorm has no device kernel path yet: refuse rather than silently skip it.
        guard !model.config.queryKeyNorm else { throw DeviceModelError.unsupported("per-head q/k RMSNorm (qwen3)") }
        func dense(_ t: Tensor) throws -> DeviceTensor { try DeviceTensor(t, as: precision, context: context) }
        func fp32(_ t: Tensor) throws -> DeviceTensor { try DeviceTensor(t, as: .float32, context: context) }
        func base(_ b: LinearBase, _ name: String) throws -> DeviceTensor {
            switch b {
            case .dense(let w): return try dense(w.value)
            case .quantized(let q):
                if !keepQuantized { return try dense(q.dequantized()) }
                let type: DeviceElementType
                switch q.type {
                case .q8_0: type = .q8_0
                case .q4_1: type = .q4_1
                default: return try dense(q.dequantized())  // other ggml types: dense on the device
                }
                let bytes = q.withUnsafeBlockBytes { Array($0) }
                return try DeviceTensor(quantizedBlocks: bytes, type: type, shape: q.shape, context: context)
            }
        }
        func linear(_ l: AdaptedLinear) throws -> Linear {
            guard l.bias == nil else { throw DeviceModelError.unsupported("bias on \(l.path)") }
            guard l.mergedAdapterNames.isEmpty else { throw DeviceModelError.unsupported("merged adapters on \(l.path)") }
            var adapters: [LoRA] = []
            if !l.adaptersDisabled {
                for name in l.activeAdapterNames {
                    guard let branch = l.adapter(named: name) else { continue }
                    guard let lora = branch as? LoRABranch else { throw DeviceModelError.unsupported("\(type(of: branch)) adapter on \(l.path)") }
                    adapters.append(try LoRA(name: l.path, branch: lora, precision: precision, context: context))
                }
            }
            return Linear(path: l.path, weight: try base(l.base, l.path), outFeatures: l.outFeatures, inFeatures: l.inFeatures, adapters: adapters)
        }
        if let head = model.lmHead, !head.activeAdapterNames.isEmpty, !head.adaptersDisabled {
            throw DeviceModelError.unsupported("adapters on lm_head")
        }
        embedding = try base(model.embedding, "model.embed_tokens")
        layers = try model.layers.map { l in
            Layer(inputNorm: try fp32(l.inputNorm.value), postNorm: try fp32(l.postAttentionNorm.value),
                  q: try linear(l.attention.qProj), k: try linear(l.attention.kProj), v: try linear(l.attention.vProj), o: try linear(l.attention.oProj),
                  gate: try linear(l.mlp.gateProj), up: try linear(l.mlp.upProj), down: try linear(l.mlp.downProj))
        }
        finalNorm = try fp32(model.norm.value)
        head = try dense(model.denseHeadWeight().value)
    }

    /// Device bytes held by the weights and the adapters' training state.
    public var weightBytes: Int {
        var total = embedding.buffer.byteCount + finalNorm.buffer.byteCount + head.buffer.byteCount
        for l in layers {
            total += l.inputNorm.buffer.byteCount + l.postNorm.buffer.byteCount
            for lin in [l.q, l.k, l.v, l.o, l.gate, l.up, l.down] {
                total += lin.weight.buffer.byteCount
                for lora in lin.adapters {  // master, gradient, two moments (fp32) and a bf16 compute copy
                    let fp32 = lora.masterA.buffer.byteCount + lora.masterB.buffer.byteCount
                    total += 4 * fp32 + (precision == .float32 ? 0 : fp32 / 2)
                }
            }
        }
        return total
    }

    // MARK: forward

    /// y [n, out] = x [n, in] · Wᵀ + Σ scaling · (x · Aᵀ) · Bᵀ.
    func apply(_ l: Linear, _ x: DeviceTensor, rows n: Int) throws -> DeviceTensor {
        let y = try DeviceTensor(zeros: [n, l.outFeatures], type: precision, context: context)
        let w = try denseWeight(l)
        try context.gemm(transposeA: false, transposeB: true, m: n, n: l.outFeatures, k: l.inFeatures, a: x, lda: l.inFeatures, b: w, ldb: l.inFeatures, c: y, ldc: l.outFeatures)
        for lora in l.adapters {
            let down = try DeviceTensor(zeros: [n, lora.rank], type: precision, context: context)
            try context.gemm(transposeA: false, transposeB: true, m: n, n: lora.rank, k: l.inFeatures, alpha: lora.scaling, a: x, lda: l.inFeatures, b: lora.a, ldb: l.inFeatures, c: down, ldc: lora.rank)
            try context.gemm(transposeA: false, transposeB: true, m: n, n: l.outFeatures, k: lora.rank, a: down, lda: lora.rank, b: lora.b, ldb: lora.rank, beta: 1, c: y, ldc: l.outFeatures)
        }
        return y
    }

    /// The base weight [out, in] in the compute precision: itself, or a quantized one expanded into the shared tile.
    func denseWeight(_ l: Linear) throws -> DeviceTensor {
        guard l.weight.type == .q8_0 || l.weight.type == .q4_1 else { return l.weight }
        let needed = l.outFeatures * l.inFeatures
        if (dequantizeTile?.count ?? 0) < needed { dequantizeTile = try DeviceTensor(zeros: [needed], type: precision, context: context) }
        let w = try dequantizeTile!.view([l.outFeatures, l.inFeatures])
        try context.dequantize(l.weight, into: w)
        return w
    }

    /// Hidden states after the final norm, [B·T, hidden], for equal-length rows of ids (no dropout: evaluation).
    public func forward(ids: [[Int32]]) throws -> DeviceTensor {
        let c = config, batch = ids.count, length = ids.first?.count ?? 0, n = batch * length
        guard batch > 0, length > 0, ids.allSatisfy({ $0.count == length }) else { throw DeviceModelError.unsupported("ragged or empty batch") }
        let flat = ids.flatMap { $0 }
        if let bad = flat.first(where: { $0 < 0 || Int($0) >= c.vocabSize }) { throw ModelError.invalidArgument(name: "token id", reason: "\(bad) is outside the vocabulary 0..<\(c.vocabSize)") }
        let table = try RotaryTable(start: 0, count: length, dim: c.headDim, theta: c.ropeTheta)
        let cos = try DeviceTensor(Tensor(table.cos, shape: [length, c.headDim / 2]), context: context)
        let sin = try DeviceTensor(Tensor(table.sin, shape: [length, c.headDim / 2]), context: context)
        var h = try DeviceTensor(zeros: [n, c.hiddenSize], type: precision, context: context)
        try context.embeddingGather(table: embedding, ids: try DeviceTensor(int32: flat, shape: [n], context: context), into: h)
        let shape = DeviceAttentionShape(batch: batch, queryHeads: c.headCount, kvHeads: c.kvHeadCount, queryLength: length, keyLength: length, headDim: c.headDim, causal: true)
        let layout = AttentionLayout.packed(shape)
        for layer in layers {
            let x = try DeviceTensor(zeros: [n, c.hiddenSize], type: precision, context: context)
            try context.rmsNormForward(h, weight: layer.inputNorm, eps: c.rmsNormEps, into: x, rstd: nil)
            let q = try apply(layer.q, x, rows: n), k = try apply(layer.k, x, rows: n), v = try apply(layer.v, x, rows: n)
            try context.rotary(q, into: q, cos: cos, sin: sin, batch: batch, length: length, heads: c.headCount, dim: c.headDim, tokenStride: c.queryWidth, perBatchPositions: false, inverse: false)
            try context.rotary(k, into: k, cos: cos, sin: sin, batch: batch, length: length, heads: c.kvHeadCount, dim: c.headDim, tokenStride: c.kvWidth, perBatchPositions: false, inverse: false)
            let attended = try DeviceTensor(zeros: [n, c.queryWidth], type: precision, context: context)
            try context.attentionForward(q: q, k: k, v: v, keyMask: nil, shape: shape, layout: layout, into: attended, lse: nil)
            let o = try apply(layer.o, attended, rows: n)
            try context.add(h, o, into: h)
            let y = try DeviceTensor(zeros: [n, c.hiddenSize], type: precision, context: context)
            try context.rmsNormForward(h, weight: layer.postNorm, eps: c.rmsNormEps, into: y, rstd: nil)
            let gate = try apply(layer.gate, y, rows: n), up = try apply(layer.up, y, rows: n)
            try context.swigluForward(gate: gate, up: up, into: gate)
            let down = try apply(layer.down, gate, rows: n)
            try context.add(h, down, into: h)
        }
        let out = try DeviceTensor(zeros: [n, c.hiddenSize], type: precision, context: context)
        try context.rmsNormForward(h, weight: finalNorm, eps: c.rmsNormEps, into: out, rstd: nil)
        h = out
        return h
    }

    /// Mean causal-LM cross-entropy with LlamaModel.loss's semantics (labels shifted here, −100 ignored), the head
    /// applied `chunkRows` rows at a time into one fp32 logits buffer. Reads back one float.
    public func loss(ids: [[Int32]], labels: [[Int32]]? = nil, ignoreIndex: Int32 = -100, chunkRows: Int = 256) throws -> Float {
        let labels = labels ?? ids
        var targets: [Int32] = []
        for row in labels { targets += row.dropFirst(); if !row.isEmpty { targets.append(ignoreIndex) } }
        let counted = targets.filter { $0 != ignoreIndex }.count
        guard counted > 0 else { return 0 }
        let hidden = try forward(ids: ids)
        let n = targets.count, v = config.vocabSize, d = config.hiddenSize, chunk = min(chunkRows, n)
        let logits = try DeviceTensor(zeros: [chunk, v], type: .float32, context: context)
        let lse = try DeviceTensor(zeros: [n], type: .float32, context: context), rowLoss = try DeviceTensor(zeros: [n], type: .float32, context: context)
        let deviceTargets = try DeviceTensor(int32: targets, shape: [n], context: context)
        var start = 0
        while start < n {
            let rows = min(chunk, n - start)
            let hv = try hidden.view([rows, d], elementOffset: start * d), lv = try logits.view([rows, v])
            try context.gemm(transposeA: false, transposeB: true, m: rows, n: v, k: d, a: hv, lda: d, b: head, ldb: d, c: lv, ldc: v)
            try context.crossEntropyForward(logits: lv, targets: try deviceTargets.view([rows], elementOffset: start),
                                            lse: try lse.view([rows], elementOffset: start), rowLoss: try rowLoss.view([rows], elementOffset: start), ignoreIndex: ignoreIndex)
            start += rows
        }
        let total = try DeviceTensor(zeros: [1], type: .float32, context: context)
        try context.sum(rowLoss, multiplier: 1 / Float(counted), into: total)
        return try total.toTensor().scalarValue
    }
}

extension LlamaDeviceModel {
    /// Logits [vocab] of the last position of each row, [B, vocab] (fp32), by a full forward (no KV cache).
    public func lastLogits(ids: [[Int32]]) throws -> Tensor {
        let hidden = try forward(ids: ids)
        let length = ids[0].count, d = config.hiddenSize, v = config.vocabSize
        let logits = try DeviceTensor(zeros: [ids.count, v], type: .float32, context: context)
        for b in 0..<ids.count {
            try context.gemm(transposeA: false, transposeB: true, m: 1, n: v, k: d, a: try hidden.view([1, d], elementOffset: (b * length + length - 1) * d),
                             lda: d, b: head, ldb: d, c: try logits.view([1, v], elementOffset: b * v), ldc: v)
        }
        return try logits.toTensor()
    }

    /// Greedy continuation of `prompt` by `count` tokens (full forward per token; parity checks, not speed).
    public func greedyTokens(prompt: [Int32], count: Int) throws -> [Int32] {
        var ids = prompt, out: [Int32] = []
        for _ in 0..<count {
            let logits = try lastLogits(ids: [ids])
            var best = 0
            logits.withUnsafeBufferPointer { p in for j in 1..<p.count where p[j] > p[best] { best = j } }
            out.append(Int32(best)); ids.append(Int32(best))
        }
        return out
    }
}
