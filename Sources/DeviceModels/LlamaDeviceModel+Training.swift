// The LoRA training step on the device: forward keeping what backward reads, the chunked cross-entropy and its
// gradient, backward through every layer into fp32 adapter gradients, global-norm clipping and AdamW on fp32
// masters — one stream of launches; the host reads back the loss and the gradient norm only.
//
// Dropout follows the CPU exactly: each adapter branch draws its mask from the caller's RandomGenerator at the
// stream position the CPU would use (q, k, v, o, gate, up, down; one counter per input element), so masks are
// identical and backward replays them from (seed, start). Per layer the forward keeps: its input, both norms'
// inputs' rstd, rotated q and k, v, the attention output and log-sum-exp, the MLP's gate, up and product, and each
// adapter's dropped input and down-projection [n, r].
import CUDA
import Foundation
import Models
import TensorCore

extension LlamaDeviceModel {
    struct LinearCache { let input: DeviceTensor; var dropped: [(DeviceTensor, seed: UInt64, start: UInt64)?] = []; var down: [DeviceTensor] = [] }
    struct LayerCache {
        let hIn: DeviceTensor, x: DeviceTensor, rstd1: DeviceTensor
        let q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, attended: DeviceTensor, lse: DeviceTensor
        let hMid: DeviceTensor, y: DeviceTensor, rstd2: DeviceTensor, gate: DeviceTensor, up: DeviceTensor, act: DeviceTensor
        let lq: LinearCache, lk: LinearCache, lv: LinearCache, lo: LinearCache, lgate: LinearCache, lup: LinearCache, ldown: LinearCache
    }

    func zeros(_ shape: [Int], _ type: DeviceElementType? = nil) throws -> DeviceTensor {
        try DeviceTensor(zeros: shape, type: type ?? precision, context: context)
    }

    /// Forward of one projection for training, keeping what its backward needs.
    func applyTraining(_ l: Linear, _ x: DeviceTensor, rows n: Int, rng: inout RandomGenerator) throws -> (DeviceTensor, LinearCache) {
        let y = try zeros([n, l.outFeatures])
        try context.gemm(transposeA: false, transposeB: true, m: n, n: l.outFeatures, k: l.inFeatures, a: x, lda: l.inFeatures, b: try denseWeight(l), ldb: l.inFeatures, c: y, ldc: l.outFeatures)
        var cache = LinearCache(input: x)
        for lora in l.adapters {
            var input = x
            if lora.dropout > 0 {
                let dropped = try zeros([n, l.inFeatures])
                try context.dropout(x, into: dropped, probability: lora.dropout, seed: rng.seed, start: rng.position)
                cache.dropped.append((dropped, rng.seed, rng.position))
                rng.position &+= UInt64(x.count)
                input = dropped
            } else { cache.dropped.append(nil) }
            let down = try zeros([n, lora.rank])
            try context.gemm(transposeA: false, transposeB: true, m: n, n: lora.rank, k: l.inFeatures, alpha: lora.scaling, a: input, lda: l.inFeatures, b: lora.a, ldb: l.inFeatures, c: down, ldc: lora.rank)
            try context.gemm(transposeA: false, transposeB: true, m: n, n: l.outFeatures, k: lora.rank, a: down, lda: lora.rank, b: lora.b, ldb: lora.rank, beta: 1, c: y, ldc: l.outFeatures)
            cache.down.append(down)
        }
        return (y, cache)
    }

    /// dx [n, in] (= or +=) dy · W + LoRA parts; adapter gradients (fp32) accumulate.
    func backwardLinear(_ l: Linear, _ cache: LinearCache, dy: DeviceTensor, rows n: Int, dx: DeviceTensor, accumulate: Bool) throws {
        let (inF, outF) = (l.inFeatures, l.outFeatures)
        try context.gemm(transposeA: false, transposeB: false, m: n, n: inF, k: outF, a: dy, lda: outF, b: try denseWeight(l), ldb: inF, beta: accumulate ? 1 : 0, c: dx, ldc: inF)
        for (i, lora) in l.adapters.enumerated() {
            let down = cache.down[i], dropped = cache.dropped[i]
            // dB [out, r] += dyᵀ · down
            try context.gemm(transposeA: true, transposeB: false, m: outF, n: lora.rank, k: n, a: dy, lda: outF, b: down, ldb: lora.rank, beta: 1, c: lora.gradB, ldc: lora.rank)
            // dDown [n, r] = scaling · dy · B  (down = scaling · x·Aᵀ)
            let dDown = try zeros([n, lora.rank])
            try context.gemm(transposeA: false, transposeB: false, m: n, n: lora.rank, k: outF, alpha: lora.scaling, a: dy, lda: outF, b: lora.b, ldb: lora.rank, c: dDown, ldc: lora.rank)
            // dA [r, in] += dDownᵀ · dropped(x)
            try context.gemm(transposeA: true, transposeB: false, m: lora.rank, n: inF, k: n, a: dDown, lda: lora.rank, b: dropped?.0 ?? cache.input, ldb: inF, beta: 1, c: lora.gradA, ldc: inF)
            // dx += mask ⊙ (dDown · A)
            let part = try zeros([n, inF])
            try context.gemm(transposeA: false, transposeB: false, m: n, n: inF, k: lora.rank, a: dDown, lda: lora.rank, b: lora.a, ldb: inF, c: part, ldc: inF)
            if let (_, seed, start) = dropped { try context.dropout(part, into: part, probability: lora.dropout, seed: seed, start: start) }
            try context.add(dx, part, into: dx)
        }
    }

    /// Every adapter's (name, master A, master B, dA, dB), in model order.
    public var adapterTensors: [(name: String, a: DeviceTensor, b: DeviceTensor, gradA: DeviceTensor, gradB: DeviceTensor)] {
        layers.flatMap { [$0.q, $0.k, $0.v, $0.o, $0.gate, $0.up, $0.down] }.flatMap { $0.adapters }.map { ($0.name, $0.masterA, $0.masterB, $0.gradA, $0.gradB) }
    }

    /// Forward + backward of the mean causal-LM loss: adapter gradients are *set* (zeroed first). Returns the loss.
    /// `rng` drives adapter dropout when `training`, consumed as LlamaModel.loss consumes it.
    public func lossAndGradients(ids: [[Int32]], labels: [[Int32]]? = nil, ignoreIndex: Int32 = -100, training: Bool = true,
                                 rng: inout RandomGenerator, chunkRows: Int = 256) throws -> Float {
        let c = config, batch = ids.count, length = ids.first?.count ?? 0, n = batch * length, H = c.hiddenSize
        guard batch > 0, length > 0, ids.allSatisfy({ $0.count == length }) else { throw DeviceModelError.unsupported("ragged or empty batch") }
        let flat = ids.flatMap { $0 }
        if let bad = flat.first(where: { $0 < 0 || Int($0) >= c.vocabSize }) { throw ModelError.invalidArgument(name: "token id", reason: "\(bad) is outside the vocabulary 0..<\(c.vocabSize)") }
        let labels = labels ?? ids
        var targets: [Int32] = []
        for row in labels { targets += row.dropFirst(); if !row.isEmpty { targets.append(ignoreIndex) } }
        let counted = targets.filter { $0 != ignoreIndex }.count
        for t in adapterTensors { try t.gradA.zeroFill(); try t.gradB.zeroFill() }
        guard counted > 0 else { return 0 }
        var drop = training ? rng : RandomGenerator(seed: 0)
        let table = try RotaryTable(start: 0, count: length, dim: c.headDim, theta: c.ropeTheta)
        let cos = try DeviceTensor(Tensor(table.cos, shape: [length, c.headDim / 2]), context: context)
        let sin = try DeviceTensor(Tensor(table.sin, shape: [length, c.headDim / 2]), context: context)
        var h = try zeros([n, H])
        try context.embeddingGather(table: embedding, ids: try DeviceTensor(int32: flat, shape: [n], context: context), into: h)
        let shape = DeviceAttentionShape(batch: batch, queryHeads: c.headCount, kvHeads: c.kvHeadCount, queryLength: length, keyLength: length, headDim: c.headDim, causal: true)
        let layout = AttentionLayout.packed(shape)
        var caches: [LayerCache] = []
        for layer in layers {
            func project(_ l: Linear, _ x: DeviceTensor) throws -> (DeviceTensor, LinearCache) {
                if training { return try applyTraining(l, x, rows: n, rng: &drop) }
                var none = RandomGenerator(seed: 0)
                return try applyTrainingNoDropout(l, x, rows: n, rng: &none)
            }
            let hIn = h
            let x = try zeros([n, H]), rstd1 = try zeros([n], .float32)
            try context.rmsNormForward(hIn, weight: layer.inputNorm, eps: c.rmsNormEps, into: x, rstd: rstd1)
            let (q, lq) = try project(layer.q, x), (k, lk) = try project(layer.k, x), (v, lv) = try project(layer.v, x)
            try context.rotary(q, into: q, cos: cos, sin: sin, batch: batch, length: length, heads: c.headCount, dim: c.headDim, tokenStride: c.queryWidth, perBatchPositions: false, inverse: false)
            try context.rotary(k, into: k, cos: cos, sin: sin, batch: batch, length: length, heads: c.kvHeadCount, dim: c.headDim, tokenStride: c.kvWidth, perBatchPositions: false, inverse: false)
            let attended = try zeros([n, c.queryWidth]), lse = try zeros([batch, c.headCount, length], .float32)
            try context.attentionForward(q: q, k: k, v: v, keyMask: nil, shape: shape, layout: layout, into: attended, lse: lse)
            let (o, lo) = try project(layer.o, attended)
            let hMid = try zeros([n, H])
            try context.add(hIn, o, into: hMid)
            let y = try zeros([n, H]), rstd2 = try zeros([n], .float32)
            try context.rmsNormForward(hMid, weight: layer.postNorm, eps: c.rmsNormEps, into: y, rstd: rstd2)
            let (gate, lgate) = try project(layer.gate, y), (up, lup) = try project(layer.up, y)
            let act = try zeros(gate.shape)
            try context.swigluForward(gate: gate, up: up, into: act)
            let (down, ldown) = try project(layer.down, act)
            h = try zeros([n, H])
            try context.add(hMid, down, into: h)
            caches.append(LayerCache(hIn: hIn, x: x, rstd1: rstd1, q: q, k: k, v: v, attended: attended, lse: lse, hMid: hMid, y: y, rstd2: rstd2,
                                     gate: gate, up: up, act: act, lq: lq, lk: lk, lv: lv, lo: lo, lgate: lgate, lup: lup, ldown: ldown))
        }
        if training { rng = drop }
        let hidden = try zeros([n, H]), rstdF = try zeros([n], .float32)
        try context.rmsNormForward(h, weight: finalNorm, eps: c.rmsNormEps, into: hidden, rstd: rstdF)

        // Loss and dHidden, a chunk of rows at a time (logits recomputed per chunk, never all at once).
        let V = c.vocabSize, chunk = min(chunkRows, n)
        let logits = try zeros([chunk, V], .float32), dLogits = precision == .float32 ? logits : try zeros([chunk, V])
        let lse = try zeros([n], .float32), rowLoss = try zeros([n], .float32), dHidden = try zeros([n, H])
        let deviceTargets = try DeviceTensor(int32: targets, shape: [n], context: context)
        var start = 0
        while start < n {
            let rows = min(chunk, n - start)
            let hv = try hidden.view([rows, H], elementOffset: start * H), lv = try logits.view([rows, V]), dv = try dLogits.view([rows, V])
            let tv = try deviceTargets.view([rows], elementOffset: start), sv = try lse.view([rows], elementOffset: start)
            try context.gemm(transposeA: false, transposeB: true, m: rows, n: V, k: H, a: hv, lda: H, b: head, ldb: H, c: lv, ldc: V)
            try context.crossEntropyForward(logits: lv, targets: tv, lse: sv, rowLoss: try rowLoss.view([rows], elementOffset: start), ignoreIndex: ignoreIndex)
            try context.crossEntropyBackward(logits: lv, targets: tv, lse: sv, gradScale: nil, invCount: 1 / Float(counted), into: dv, ignoreIndex: ignoreIndex)
            try context.gemm(transposeA: false, transposeB: false, m: rows, n: H, k: V, a: dv, lda: V, b: head, ldb: H, c: try dHidden.view([rows, H], elementOffset: start * H), ldc: H)
            start += rows
        }
        let total = try zeros([1], .float32)
        try context.sum(rowLoss, multiplier: 1 / Float(counted), into: total)

        // Backward through the layers.
        var dh = try zeros([n, H])
        try context.rmsNormBackward(dOut: dHidden, x: h, weight: finalNorm, rstd: rstdF, dx: dh, dWeight: nil)
        let dsum = try zeros([batch, c.headCount, length], .float32)
        for (layer, s) in zip(layers, caches).reversed() {
            let dAct = try zeros(s.act.shape)
            try backwardLinear(layer.down, s.ldown, dy: dh, rows: n, dx: dAct, accumulate: false)
            let dGate = try zeros(s.gate.shape), dUp = try zeros(s.up.shape)
            try context.swigluBackward(dOut: dAct, gate: s.gate, up: s.up, dGate: dGate, dUp: dUp)
            let dY = try zeros([n, H])
            try backwardLinear(layer.gate, s.lgate, dy: dGate, rows: n, dx: dY, accumulate: false)
            try backwardLinear(layer.up, s.lup, dy: dUp, rows: n, dx: dY, accumulate: true)
            let dHMid = try zeros([n, H])
            try context.rmsNormBackward(dOut: dY, x: s.hMid, weight: layer.postNorm, rstd: s.rstd2, dx: dHMid, dWeight: nil)
            try context.add(dHMid, dh, into: dHMid)
            let dAtt = try zeros(s.attended.shape)
            try backwardLinear(layer.o, s.lo, dy: dHMid, rows: n, dx: dAtt, accumulate: false)
            let dq = try zeros(s.q.shape), dk = try zeros(s.k.shape), dvv = try zeros(s.v.shape)
            try context.attentionBackward(dOut: dAtt, q: s.q, k: s.k, v: s.v, out: s.attended, lse: s.lse, keyMask: nil, shape: shape, layout: layout,
                                          dsum: dsum, dq: dq, dk: dk, dv: dvv)
            try context.rotary(dq, into: dq, cos: cos, sin: sin, batch: batch, length: length, heads: c.headCount, dim: c.headDim, tokenStride: c.queryWidth, perBatchPositions: false, inverse: true)
            try context.rotary(dk, into: dk, cos: cos, sin: sin, batch: batch, length: length, heads: c.kvHeadCount, dim: c.headDim, tokenStride: c.kvWidth, perBatchPositions: false, inverse: true)
            let dX = try zeros([n, H])
            try backwardLinear(layer.q, s.lq, dy: dq, rows: n, dx: dX, accumulate: false)
            try backwardLinear(layer.k, s.lk, dy: dk, rows: n, dx: dX, accumulate: true)
            try backwardLinear(layer.v, s.lv, dy: dvv, rows: n, dx: dX, accumulate: true)
            let dHIn = try zeros([n, H])
            try context.rmsNormBackward(dOut: dX, x: s.hIn, weight: layer.inputNorm, rstd: s.rstd1, dx: dHIn, dWeight: nil)
            try context.add(dHIn, dHMid, into: dHIn)
            dh = dHIn
        }
        return try total.toTensor().scalarValue
    }

    /// The evaluation-mode projection (no dropout) with the same cache layout.
    func applyTrainingNoDropout(_ l: Linear, _ x: DeviceTensor, rows n: Int, rng: inout RandomGenerator) throws -> (DeviceTensor, LinearCache) {
        let y = try zeros([n, l.outFeatures])
        try context.gemm(transposeA: false, transposeB: true, m: n, n: l.outFeatures, k: l.inFeatures, a: x, lda: l.inFeatures, b: try denseWeight(l), ldb: l.inFeatures, c: y, ldc: l.outFeatures)
        var cache = LinearCache(input: x)
        for lora in l.adapters {
            let down = try zeros([n, lora.rank])
            try context.gemm(transposeA: false, transposeB: true, m: n, n: lora.rank, k: l.inFeatures, alpha: lora.scaling, a: x, lda: l.inFeatures, b: lora.a, ldb: l.inFeatures, c: down, ldc: lora.rank)
            try context.gemm(transposeA: false, transposeB: true, m: n, n: l.outFeatures, k: lora.rank, a: down, lda: lora.rank, b: lora.b, ldb: lora.rank, beta: 1, c: y, ldc: l.outFeatures)
            cache.dropped.append(nil); cache.down.append(down)
        }
        return (y, cache)
    }

    /// Global-norm clipping (maxNorm ≤ 0: off) and one AdamW step on every adapter's fp32 master; bf16 compute
    /// copies are refreshed. Returns the gradient norm before clipping (one float read back).
    @discardableResult
    public func optimizerStep(learningRate: Double, weightDecay: Double = 0, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8,
                              maxGradNorm: Float = 1, step: Int) throws -> Float {
        let tensors = adapterTensors
        let acc = try zeros([2], .float32), norm = try zeros([1], .float32), coef = try zeros([1], .float32)
        try context.clipCoefficient(gradients: tensors.flatMap { [$0.gradA, $0.gradB] }, maxNorm: maxGradNorm, accumulator: acc, norm: norm, coefficient: coef)
        for layer in layers {
            for l in [layer.q, layer.k, layer.v, layer.o, layer.gate, layer.up, layer.down] {
                for lora in l.adapters {
                    try context.adamW(parameter: lora.masterA, gradient: lora.gradA, m: lora.momentA.m, v: lora.momentA.v, coefficient: coef,
                                      learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay, step: step)
                    try context.adamW(parameter: lora.masterB, gradient: lora.gradB, m: lora.momentB.m, v: lora.momentB.v, coefficient: coef,
                                      learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay, step: step)
                    if precision != .float32 { try context.cast(lora.masterA, into: lora.a); try context.cast(lora.masterB, into: lora.b) }
                }
            }
        }
        return try norm.toTensor().scalarValue
    }
}
