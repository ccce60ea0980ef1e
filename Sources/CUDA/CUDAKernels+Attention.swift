// Typed launchers for attention (forward, backward, KV-cache append), the chunked cross-entropy, gradient
// clipping, AdamW and GEMM (cuBLAS when loaded, else the fallback kernel).
import Foundation

/// Where q, k, v (and out) live: element strides between batch items and tokens. Packed [B, T, H, D] tensors
/// have tokenStride H·D and batchStride T·H·D; views into a fused q|k|v projection have larger ones.
public struct AttentionLayout: Equatable, Sendable {
    public var queryBatchStride: Int, queryTokenStride: Int
    public var keyBatchStride: Int, keyTokenStride: Int
    public var outBatchStride: Int, outTokenStride: Int

    public init(queryBatchStride: Int, queryTokenStride: Int, keyBatchStride: Int, keyTokenStride: Int, outBatchStride: Int, outTokenStride: Int) {
        self.queryBatchStride = queryBatchStride; self.queryTokenStride = queryTokenStride
        self.keyBatchStride = keyBatchStride; self.keyTokenStride = keyTokenStride
        self.outBatchStride = outBatchStride; self.outTokenStride = outTokenStride
    }

    /// Packed tensors: q, out [B, T, Hq, D]; k, v [B, S, Hkv, D] (or a cache of `keyCapacity` ≥ S rows).
    public static func packed(_ s: DeviceAttentionShape, keyCapacity: Int? = nil) -> AttentionLayout {
        let q = s.queryHeads * s.headDim, k = s.kvHeads * s.headDim
        return AttentionLayout(queryBatchStride: s.queryLength * q, queryTokenStride: q,
                               keyBatchStride: (keyCapacity ?? s.keyLength) * k, keyTokenStride: k,
                               outBatchStride: s.queryLength * q, outTokenStride: q)
    }

    var arguments: [KernelArgument] {
        [.long(queryBatchStride), .long(queryTokenStride), .long(keyBatchStride), .long(keyTokenStride), .long(outBatchStride), .long(outTokenStride)]
    }
}

extension CUDAContext {
    private func shapeArguments(_ s: DeviceAttentionShape, scale: Float) -> [KernelArgument] {
        [.int(s.batch), .int(s.queryHeads), .int(s.kvHeads), .int(s.queryLength), .int(s.keyLength), .int(s.headDim), .float32(scale), .int(s.causal ? 1 : 0)]
    }

    /// Flash attention forward. lse fp32 [B, Hq, T] (optional; backward needs it); keyMask fp32 additive [B, S].
    public func attentionForward(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, keyMask: DeviceTensor?, shape s: DeviceAttentionShape,
                                 layout: AttentionLayout, scale: Float? = nil, into out: DeviceTensor, lse: DeviceTensor?) throws {
        try s.validate(maxSharedBytes: device.maxSharedBytesPerBlock)
        guard q.type == k.type, k.type == v.type, v.type == out.type, q.type == .float32 || q.type == .bfloat16 else {
            throw CUDAError.invalidLaunch(kernel: "attention_fwd", reason: "q/k/v/out types differ or are not float32/bfloat16")
        }
        guard lse.map({ $0.count >= s.batch * s.queryHeads * s.queryLength }) ?? true else {
            throw CUDAError.invalidLaunch(kernel: "attention_fwd", reason: "lse \(lse?.shape ?? []) too small for \(s)")
        }
        let sc = scale ?? 1 / Float(s.headDim).squareRoot()
        try launch(K.t(.attention, "attention_fwd", q.type), s.forward,
                   [out.argument, lse?.argument ?? .null, q.argument, k.argument, v.argument, keyMask?.argument ?? .null]
                   + shapeArguments(s, scale: sc) + layout.arguments)
    }

    /// Flash attention backward: dq, dk, dv (layouts of q, k, v) from dOut (layout of out). `dsum` is fp32
    /// scratch [B, Hq, T]. dk/dv sum over the query heads of their group; any output may be nil.
    public func attentionBackward(dOut: DeviceTensor, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, out: DeviceTensor, lse: DeviceTensor,
                                  keyMask: DeviceTensor?, shape s: DeviceAttentionShape, layout: AttentionLayout, scale: Float? = nil,
                                  dsum: DeviceTensor, dq: DeviceTensor?, dk: DeviceTensor?, dv: DeviceTensor?) throws {
        try s.validate(maxSharedBytes: device.maxSharedBytesPerBlock)
        let rows = s.batch * s.queryHeads * s.queryLength
        guard lse.count >= rows, dsum.count >= rows, dsum.type == .float32 else {
            throw CUDAError.invalidLaunch(kernel: "attention_bwd", reason: "lse \(lse.shape) / dsum \(dsum.shape) need \(rows) rows")
        }
        let sc = scale ?? 1 / Float(s.headDim).squareRoot()
        let t = q.type
        try launch(K.t(.attention, "attention_bwd_dsum", t), .warpPerRow(rows),
                   [dsum.argument, out.argument, dOut.argument, .int(s.batch), .int(s.queryHeads), .int(s.queryLength), .int(s.headDim),
                    .long(layout.outBatchStride), .long(layout.outTokenStride)])
        let common = shapeArguments(s, scale: sc) + layout.arguments
        if let dq {
            try launch(K.t(.attention, "attention_bwd_dq", t), s.backwardQuery,
                       [dq.argument, q.argument, k.argument, v.argument, dOut.argument, lse.argument, dsum.argument, keyMask?.argument ?? .null] + common)
        }
        if dk != nil || dv != nil {
            try launch(K.t(.attention, "attention_bwd_dkdv", t), s.backwardKeyValue,
                       [dk?.argument ?? .null, dv?.argument ?? .null, q.argument, k.argument, v.argument, dOut.argument, lse.argument, dsum.argument,
                        keyMask?.argument ?? .null] + common)
        }
    }

    /// Copies rows [B, T, width] (token stride `rowsTokenStride`, batch stride `rowsBatchStride`) into the cache
    /// [B, capacity, width] at positions start..<start+T.
    public func kvAppend(_ rows: DeviceTensor, into cache: DeviceTensor, batch: Int, length: Int, width: Int, capacity: Int, start: Int,
                         rowsTokenStride: Int, rowsBatchStride: Int) throws {
        guard rows.type == cache.type, start >= 0, start + length <= capacity, cache.count >= batch * capacity * width else {
            throw CUDAError.invalidLaunch(kernel: "kv_append", reason: "positions \(start)..<\(start + length) in a cache of \(capacity) (\(cache.shape))")
        }
        try launch(K.t(.attention, "kv_append", rows.type), ew(batch * length * width),
                   [cache.argument, rows.argument, .int(batch), .int(length), .int(width), .int(capacity), .int(start),
                    .long(rowsTokenStride), .long(rowsBatchStride)])
    }

    /// Cross-entropy rows of fp32 logits [rows, V]: lse and per-row loss (fp32 [rows]); ignoreIndex rows give 0.
    public func crossEntropyForward(logits: DeviceTensor, targets: DeviceTensor, lse: DeviceTensor, rowLoss: DeviceTensor, ignoreIndex: Int32 = -100) throws {
        try logits.require([.float32], "cross_entropy_fwd", "logits")
        let rows = targets.count, vocab = logits.count / max(rows, 1)
        guard rows > 0, rows * vocab == logits.count, lse.count >= rows, rowLoss.count >= rows, targets.type == .int32 else {
            throw CUDAError.invalidLaunch(kernel: "cross_entropy_fwd", reason: "logits \(logits.shape), targets \(targets.shape)")
        }
        try launch(.init(.lossOptimizer, "cross_entropy_fwd"), try .rows(rows, dim: vocab),
                   [lse.argument, rowLoss.argument, logits.argument, targets.argument, .int(vocab), .int32(ignoreIndex)])
    }

    /// dLogits (fp32 or bf16, may alias fp32 logits) = (softmax − onehot) · gradScale[0] · invCount.
    public func crossEntropyBackward(logits: DeviceTensor, targets: DeviceTensor, lse: DeviceTensor, gradScale: DeviceTensor?, invCount: Float,
                                     into dLogits: DeviceTensor, ignoreIndex: Int32 = -100) throws {
        let rows = targets.count, vocab = logits.count / max(rows, 1)
        guard dLogits.count == logits.count else { throw CUDAError.invalidLaunch(kernel: "cross_entropy_bwd", reason: "dLogits \(dLogits.shape) vs \(logits.shape)") }
        try launch(K.t(.lossOptimizer, "cross_entropy_bwd", dLogits.type), try .rows(rows, dim: vocab),
                   [dLogits.argument, logits.argument, targets.argument, lse.argument, gradScale?.argument ?? .null, .float32(invCount), .int(vocab), .int32(ignoreIndex)])
    }

    /// out[0] = Σ x · multiplier (double accumulation).
    public func sum(_ x: DeviceTensor, multiplier: Float, into out: DeviceTensor) throws {
        try x.require([.float32], "sum_to_scalar", "x")
        try launch(.init(.lossOptimizer, "sum_to_scalar"), LaunchGeometry(grid: (1, 1, 1), block: 1024, sharedBytes: 0),
                   [out.argument, x.argument, .long(x.count), .float32(multiplier)])
    }

    /// Global gradient norm and clip coefficient, on the device: `accumulator` (8 bytes, a 2-float tensor holds a
    /// double) is zeroed, every gradient's Σg² added, then norm[0] and coef[0] written.
    public func clipCoefficient(gradients: [DeviceTensor], maxNorm: Float, accumulator: DeviceTensor, norm: DeviceTensor, coefficient: DeviceTensor) throws {
        guard accumulator.buffer.byteCount - accumulator.offset >= 8 else { throw CUDAError.invalidLaunch(kernel: "grad_sumsq", reason: "accumulator needs 8 bytes") }
        try zero(accumulator.address, bytes: 8)
        for g in gradients {
            try g.require([.float32], "grad_sumsq", "gradient")
            try launch(.init(.lossOptimizer, "grad_sumsq"), ew(g.count), [accumulator.argument, g.argument, .long(g.count)])
        }
        try launch(.init(.lossOptimizer, "clip_coefficient"), LaunchGeometry(grid: (1, 1, 1), block: 32, sharedBytes: 0),
                   [coefficient.argument, norm.argument, accumulator.argument, .float32(maxNorm)])
    }

    /// One AdamW update of fp32 `parameter` with moments m, v from gradient g (scaled by coefficient[0] when given).
    /// `step` is the 1-based step count; constants are formed in Double as NN.AdamW does.
    public func adamW(parameter p: DeviceTensor, gradient g: DeviceTensor, m: DeviceTensor, v: DeviceTensor, coefficient: DeviceTensor?,
                      learningRate lr: Double, beta1: Double, beta2: Double, epsilon: Double, weightDecay wd: Double, step: Int) throws {
        for (t, name) in [(p, "parameter"), (g, "gradient"), (m, "exp_avg"), (v, "exp_avg_sq")] {
            try t.require([.float32], "adamw_step", name)
            guard t.count == p.count else { throw CUDAError.invalidLaunch(kernel: "adamw_step", reason: "\(name) \(t.shape) vs parameter \(p.shape)") }
        }
        let t = Double(step)
        let decay = Float(1 - lr * wd), stepSize = Float(lr / (1 - Foundation.pow(beta1, t)))
        let bc2Sqrt = Float((1 - Foundation.pow(beta2, t)).squareRoot())
        try launch(.init(.lossOptimizer, "adamw_step"), ew(p.count),
                   [p.argument, m.argument, v.argument, g.argument, coefficient?.argument ?? .null, .float32(decay), .float32(stepSize),
                    .float32(bc2Sqrt), .float32(Float(1 - beta1)), .float32(Float(beta2)), .float32(Float(1 - beta2)), .float32(Float(epsilon)), .long(p.count)])
    }

    /// Row-major C [batch, M, N] = alpha · op(A) · op(B) + beta · C with strides between batch items (elements).
    /// A, B fp32 → C fp32, or A, B bf16 → C fp32 or bf16; fp32 accumulation always.
    public func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1, a: DeviceTensor, lda: Int, b: DeviceTensor, ldb: Int,
                     beta: Float = 0, c: DeviceTensor, ldc: Int, batch: Int = 1, strideA: Int = 0, strideB: Int = 0, strideC: Int = 0) throws {
        guard a.type == b.type, a.type == .float32 || a.type == .bfloat16, c.type == .float32 || (c.type == .bfloat16 && a.type == .bfloat16) else {
            throw CUDAError.invalidLaunch(kernel: "gemm", reason: "\(a.type.rawValue) × \(b.type.rawValue) → \(c.type.rawValue)")
        }
        let aRows = transposeA ? k : m, aCols = transposeA ? m : k, bRows = transposeB ? n : k, bCols = transposeB ? k : n
        guard m > 0, n > 0, k > 0, lda >= aCols, ldb >= bCols, ldc >= n,
              a.count >= (batch - 1) * strideA + (aRows - 1) * lda + aCols,
              b.count >= (batch - 1) * strideB + (bRows - 1) * ldb + bCols,
              c.count >= (batch - 1) * strideC + (m - 1) * ldc + n else {
            throw CUDAError.invalidLaunch(kernel: "gemm", reason: "M \(m) N \(n) K \(k) lda \(lda) ldb \(ldb) ldc \(ldc) batch \(batch) for A \(a.shape), B \(b.shape), C \(c.shape)")
        }
        if let (lib, handle) = blas {
            let g = ColumnMajorGEMM(rowMajorM: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB, lda: lda, ldb: ldb, ldc: ldc)
            let inType: CUDADataType = a.type == .float32 ? .float32 : .bfloat16, outType: CUDADataType = c.type == .float32 ? .float32 : .bfloat16
            var al = alpha, be = beta
            let status = withUnsafeBytes(of: &al) { pa in withUnsafeBytes(of: &be) { pb in
                lib.gemmStridedBatchedEx(handle, g.transA, g.transB, g.m, g.n, g.k, pa.baseAddress!,
                                         UnsafeRawPointer(bitPattern: UInt(b.address)), inType.rawValue, g.lda, Int64(strideB),
                                         UnsafeRawPointer(bitPattern: UInt(a.address)), inType.rawValue, g.ldb, Int64(strideA),
                                         pb.baseAddress!, UnsafeMutableRawPointer(bitPattern: UInt(c.address)), outType.rawValue, g.ldc, Int64(strideC),
                                         Int32(batch), 68 /* CUBLAS_COMPUTE_32F */, -1 /* CUBLAS_GEMM_DEFAULT */)
            } }
            guard status == 0 else { throw CUDAError.blas(call: "cublasGemmStridedBatchedEx(M \(m), N \(n), K \(k), batch \(batch))", status: status) }
            return
        }
        let name = a.type == .float32 ? "gemm_f32" : (c.type == .float32 ? "gemm_bf16_f32out" : "gemm_bf16")
        try launch(.init(.matmul, name), try .gemm(m: m, n: n, batch: batch),
                   [c.argument, a.argument, b.argument, .int(m), .int(n), .int(k), .int(lda), .int(ldb), .int(ldc),
                    .int(transposeA ? 1 : 0), .int(transposeB ? 1 : 0), .float32(alpha), .float32(beta), .long(strideA), .long(strideB), .long(strideC)])
    }
}
