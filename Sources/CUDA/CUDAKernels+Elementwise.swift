// Typed launchers for the element-wise, embedding, quantized, norm and rotary kernels. Each checks dtypes and
// sizes, then queues one launch on the context's stream (nothing waits). Shapes in the comments.
import Foundation

extension CUDAContext {
    private func dense(_ t: DeviceTensor, _ k: String, _ name: String) throws { try t.require([.float32, .bfloat16], k, name) }
    private func same(_ a: DeviceTensor, _ b: DeviceTensor, _ k: String) throws {
        guard a.type == b.type, a.count == b.count else {
            throw CUDAError.invalidLaunch(kernel: k, reason: "operands differ: \(a.type.rawValue) \(a.shape) vs \(b.type.rawValue) \(b.shape)")
        }
    }
    func ew(_ n: Int) -> LaunchGeometry { .elementwise(count: n, multiprocessors: device.multiprocessors) }

    /// fp32 ↔ bf16 copy of x into out (same count).
    public func cast(_ x: DeviceTensor, into out: DeviceTensor) throws {
        guard x.count == out.count else { throw CUDAError.invalidLaunch(kernel: "cast", reason: "\(x.shape) → \(out.shape)") }
        switch (x.type, out.type) {
        case (.float32, .bfloat16): try launch(.init(.elementwise, "cast_f32_to_bf16"), ew(x.count), [out.argument, x.argument, .long(x.count)])
        case (.bfloat16, .float32): try launch(.init(.elementwise, "cast_bf16_to_f32"), ew(x.count), [out.argument, x.argument, .long(x.count)])
        case (.float32, .float32), (.bfloat16, .bfloat16): try copy(from: x.address, to: out.address, bytes: x.type.byteCount(x.count))
        default: throw CUDAError.invalidLaunch(kernel: "cast", reason: "\(x.type.rawValue) → \(out.type.rawValue)")
        }
    }

    /// out = a + b (out may alias a or b).
    public func add(_ a: DeviceTensor, _ b: DeviceTensor, into out: DeviceTensor) throws {
        try dense(a, "add", "a"); try same(a, b, "add"); try same(a, out, "add")
        try launch(K.t(.elementwise, "add", a.type), ew(a.count), [out.argument, a.argument, b.argument, .long(a.count)])
    }

    /// y += alpha · x. y fp32 with x bf16 is the mixed accumulate (bf16 gradients into fp32 master gradients).
    public func axpy(_ alpha: Float, _ x: DeviceTensor, into y: DeviceTensor) throws {
        guard x.count == y.count else { throw CUDAError.invalidLaunch(kernel: "axpy", reason: "\(x.shape) vs \(y.shape)") }
        let f: KernelFunction
        switch (y.type, x.type) {
        case (.float32, .float32): f = K.t(.elementwise, "axpy", .float32)
        case (.bfloat16, .bfloat16): f = K.t(.elementwise, "axpy", .bfloat16)
        case (.float32, .bfloat16): f = .init(.elementwise, "axpy_bf16_into_f32")
        default: throw CUDAError.invalidLaunch(kernel: "axpy", reason: "\(x.type.rawValue) into \(y.type.rawValue)")
        }
        try launch(f, ew(x.count), [y.argument, x.argument, .float32(alpha), .long(x.count)])
    }

    /// x ← alpha · x.
    public func scale(_ x: DeviceTensor, by alpha: Float) throws {
        try dense(x, "scale", "x")
        try launch(K.t(.elementwise, "scale", x.type), ew(x.count), [x.argument, .float32(alpha), .long(x.count)])
    }

    /// out = silu(gate) ⊙ up.
    public func swigluForward(gate: DeviceTensor, up: DeviceTensor, into out: DeviceTensor) throws {
        try dense(gate, "swiglu_fwd", "gate"); try same(gate, up, "swiglu_fwd"); try same(gate, out, "swiglu_fwd")
        try launch(K.t(.elementwise, "swiglu_fwd", gate.type), ew(gate.count), [out.argument, gate.argument, up.argument, .long(gate.count)])
    }

    /// dGate, dUp (either may be nil) from dOut.
    public func swigluBackward(dOut: DeviceTensor, gate: DeviceTensor, up: DeviceTensor, dGate: DeviceTensor?, dUp: DeviceTensor?) throws {
        try same(gate, up, "swiglu_bwd"); try same(gate, dOut, "swiglu_bwd")
        for d in [dGate, dUp].compactMap({ $0 }) { try same(gate, d, "swiglu_bwd") }
        try launch(K.t(.elementwise, "swiglu_bwd", gate.type), ew(gate.count),
                   [dGate?.argument ?? .null, dUp?.argument ?? .null, dOut.argument, gate.argument, up.argument, .long(gate.count)])
    }

    /// Inverted dropout with the CPU's stream: the element at i uses counter `start + i` of `seed`
    /// (RandomGenerator(seed:, position: start).bernoulli). Backward: the same call on dOut.
    public func dropout(_ x: DeviceTensor, into out: DeviceTensor, probability p: Float, seed: UInt64, start: UInt64) throws {
        try dense(x, "dropout", "x"); try same(x, out, "dropout")
        guard p >= 0, p <= 1 else { throw CUDAError.invalidLaunch(kernel: "dropout", reason: "probability \(p) outside [0, 1]") }
        let keep: Float = 1 - p, scale: Float = p < 1 ? 1 / (1 - p) : 0
        try launch(K.t(.elementwise, "dropout", x.type), ew(x.count),
                   [out.argument, x.argument, .uint64(seed), .uint64(start), .float32(keep), .float32(scale), .long(x.count)])
    }

    /// AdaLoRA: out [rows, r] = down ⊙ E · factor (E fp32 [r]).
    public func adaLoRAScaleForward(down: DeviceTensor, e: DeviceTensor, factor: Float, into out: DeviceTensor) throws {
        let r = down.shape.last ?? 0
        try e.require([.float32], "adalora_scale_fwd", "E"); try same(down, out, "adalora_scale_fwd")
        guard r > 0, e.count == r else { throw CUDAError.invalidLaunch(kernel: "adalora_scale_fwd", reason: "E \(e.shape) for down \(down.shape)") }
        try launch(K.t(.elementwise, "adalora_scale_fwd", down.type), ew(down.count),
                   [out.argument, down.argument, e.argument, .float32(factor), .long(down.count / r), .int(r)])
    }

    /// AdaLoRA backward: dDown (optional), dE += Σ_rows dOut ⊙ down · factor (fp32, accumulated: zero it first).
    public func adaLoRAScaleBackward(dOut: DeviceTensor, down: DeviceTensor, e: DeviceTensor, factor: Float, dDown: DeviceTensor?, dE: DeviceTensor?) throws {
        let r = down.shape.last ?? 0
        try same(down, dOut, "adalora_scale_bwd")
        guard r > 0, e.count == r, dE.map({ $0.count == r && $0.type == .float32 }) ?? true else {
            throw CUDAError.invalidLaunch(kernel: "adalora_scale_bwd", reason: "E \(e.shape), dE \(dE?.shape ?? []) for down \(down.shape)")
        }
        try launch(K.t(.elementwise, "adalora_scale_bwd", down.type), ew(down.count),
                   [dDown?.argument ?? .null, dE?.argument ?? .null, dOut.argument, down.argument, e.argument, .float32(factor), .long(down.count / r), .int(r)])
    }

    /// RankAllocator's mask: E_i ← 0 where scores_i ≤ threshold.
    public func adaLoRAMask(e: DeviceTensor, scores: DeviceTensor, threshold: Float) throws {
        try e.require([.float32], "adalora_mask_e", "E"); try same(e, scores, "adalora_mask_e")
        try launch(.init(.elementwise, "adalora_mask_e"), ew(e.count), [e.argument, scores.argument, .float32(threshold), .long(e.count)])
    }

    /// out [rows, dim] = table[ids] for a dense (fp32/bf16, same as out) or quantized (Q8_0/Q4_1) table [vocab, dim].
    public func embeddingGather(table: DeviceTensor, ids: DeviceTensor, into out: DeviceTensor) throws {
        guard table.shape.count == 2, ids.type == .int32 else { throw CUDAError.invalidLaunch(kernel: "embedding_gather", reason: "table \(table.shape), ids \(ids.type.rawValue)") }
        let (vocab, dim) = (table.shape[0], table.shape[1])
        guard out.count == ids.count * dim else { throw CUDAError.invalidLaunch(kernel: "embedding_gather", reason: "out \(out.shape) for \(ids.count) ids × \(dim)") }
        try dense(out, "embedding_gather", "out")
        let base: String
        switch table.type {
        case .q8_0: base = "embedding_gather_q8_0"
        case .q4_1: base = "embedding_gather_q4_1"
        default:
            guard table.type == out.type else { throw CUDAError.invalidLaunch(kernel: "embedding_gather", reason: "table \(table.type.rawValue) into \(out.type.rawValue)") }
            base = "embedding_gather"
        }
        guard ids.count > 0 else { return }
        try launch(K.t(.embeddingQuantized, base, out.type), try .rows(ids.count, dim: dim, maxThreads: 256),
                   [out.argument, table.argument, ids.argument, .int(dim), .int(vocab)])
    }

    /// dTable [vocab, dim] (fp32) += scatter of dOut [rows, dim] by ids.
    public func embeddingBackward(dOut: DeviceTensor, ids: DeviceTensor, into dTable: DeviceTensor) throws {
        try dTable.require([.float32], "embedding_backward", "dTable")
        guard dTable.shape.count == 2, dOut.count == ids.count * dTable.shape[1] else {
            throw CUDAError.invalidLaunch(kernel: "embedding_backward", reason: "dOut \(dOut.shape), ids \(ids.count), dTable \(dTable.shape)")
        }
        guard ids.count > 0 else { return }
        try launch(K.t(.embeddingQuantized, "embedding_backward", dOut.type), try .rows(ids.count, dim: dTable.shape[1], maxThreads: 256),
                   [dTable.argument, dOut.argument, ids.argument, .int(dTable.shape[1]), .int(dTable.shape[0])])
    }

    /// Dense copy (fp32 or bf16) of a quantized matrix.
    public func dequantize(_ q: DeviceTensor, into out: DeviceTensor) throws {
        try dense(out, "dequantize", "out")
        guard q.count == out.count else { throw CUDAError.invalidLaunch(kernel: "dequantize", reason: "\(q.shape) → \(out.shape)") }
        let base: String
        switch q.type { case .q8_0: base = "dequantize_q8_0"; case .q4_1: base = "dequantize_q4_1"
        default: throw CUDAError.invalidLaunch(kernel: "dequantize", reason: "\(q.type.rawValue) is not quantized") }
        try launch(K.t(.embeddingQuantized, base, out.type), ew(q.count), [out.argument, q.argument, .long(q.count)])
    }

    /// y [m, out] = x [m, in] · Wᵀ for a quantized W [out, in] and m ≤ 8 rows (decode steps).
    public func quantizedMatvec(weight w: DeviceTensor, x: DeviceTensor, into y: DeviceTensor) throws {
        guard w.shape.count == 2 else { throw CUDAError.invalidLaunch(kernel: "quantized_matvec", reason: "weight \(w.shape)") }
        let (outRows, inCols) = (w.shape[0], w.shape[1]), m = x.count / max(inCols, 1)
        guard m >= 1, m <= 8, x.count == m * inCols, y.count == m * outRows, x.type == y.type else {
            throw CUDAError.invalidLaunch(kernel: "quantized_matvec", reason: "x \(x.shape), y \(y.shape) for weight \(w.shape) (1–8 rows)")
        }
        let base: String
        switch w.type { case .q8_0: base = "q8_0_matvec"; case .q4_1: base = "q4_1_matvec"
        default: throw CUDAError.invalidLaunch(kernel: "quantized_matvec", reason: "\(w.type.rawValue) is not quantized") }
        try launch(K.t(.embeddingQuantized, base, x.type), .warpPerRow(outRows),
                   [y.argument, w.argument, x.argument, .int(m), .int(outRows), .int(inCols)])
    }

    /// RMSNorm forward over rows of x [rows, dim]; weight fp32 [dim]; rstd fp32 [rows] (optional, backward needs it).
    public func rmsNormForward(_ x: DeviceTensor, weight: DeviceTensor, eps: Float, into out: DeviceTensor, rstd: DeviceTensor?) throws {
        let dim = weight.count, rows = x.count / max(dim, 1)
        try weight.require([.float32], "rmsnorm_fwd", "weight"); try same(x, out, "rmsnorm_fwd")
        guard dim > 0, rows * dim == x.count, rstd.map({ $0.count >= rows && $0.type == .float32 }) ?? true else {
            throw CUDAError.invalidLaunch(kernel: "rmsnorm_fwd", reason: "x \(x.shape), weight \(weight.shape), rstd \(rstd?.shape ?? [])")
        }
        try launch(K.t(.normRotary, "rmsnorm_fwd", x.type), try .rows(rows, dim: dim),
                   [out.argument, rstd?.argument ?? .null, x.argument, weight.argument, .int(dim), .float32(eps)])
    }

    /// RMSNorm backward: dx [rows, dim]; dWeight fp32 [dim] accumulated (zero it first) when given.
    public func rmsNormBackward(dOut: DeviceTensor, x: DeviceTensor, weight: DeviceTensor, rstd: DeviceTensor, dx: DeviceTensor?, dWeight: DeviceTensor?) throws {
        let dim = weight.count, rows = x.count / max(dim, 1)
        try same(x, dOut, "rmsnorm_bwd")
        guard rstd.count >= rows, rstd.type == .float32 else { throw CUDAError.invalidLaunch(kernel: "rmsnorm_bwd", reason: "rstd \(rstd.shape) for \(rows) rows") }
        if let dx {
            try same(x, dx, "rmsnorm_bwd")
            try launch(K.t(.normRotary, "rmsnorm_bwd", x.type), try .rows(rows, dim: dim),
                       [dx.argument, dOut.argument, x.argument, weight.argument, rstd.argument, .int(dim)])
        }
        if let dWeight {
            try dWeight.require([.float32], "rmsnorm_bwd_weight", "dWeight")
            let g = LaunchGeometry.rmsNormWeightGradient(rows: rows, dim: dim)
            let rowsPerBlock = (rows + g.grid.y - 1) / g.grid.y
            try launch(K.t(.normRotary, "rmsnorm_bwd_weight", x.type), g,
                       [dWeight.argument, dOut.argument, x.argument, rstd.argument, .long(rows), .int(dim), .int(rowsPerBlock)])
        }
    }

    /// RoPE on x viewed as [batch, length, heads, dim] with `tokenStride` elements between tokens (heads·dim when
    /// packed). cos/sin fp32 [length, dim/2] or [batch, length, dim/2] (`perBatchPositions`). `inverse`: backward.
    public func rotary(_ x: DeviceTensor, into out: DeviceTensor, cos: DeviceTensor, sin: DeviceTensor, batch: Int, length: Int, heads: Int, dim: Int,
                       tokenStride: Int, perBatchPositions: Bool, inverse: Bool) throws {
        try same(x, out, "rope")
        let rows = perBatchPositions ? batch * length : length
        guard dim > 0, dim % 2 == 0, tokenStride >= heads * dim, x.count >= (batch * length - 1) * tokenStride + heads * dim,
              cos.count >= rows * dim / 2, sin.count == cos.count else {
            throw CUDAError.invalidLaunch(kernel: "rope", reason: "x \(x.shape) as [\(batch), \(length), \(heads), \(dim)] stride \(tokenStride), table \(cos.shape)")
        }
        try launch(K.t(.normRotary, "rope", x.type), ew(batch * length * heads * dim / 2),
                   [out.argument, x.argument, cos.argument, sin.argument, .int(batch), .int(length), .int(heads), .int(dim),
                    .long(tokenStride), .int(perBatchPositions ? 1 : 0), .float32(inverse ? -1 : 1)])
    }
}
