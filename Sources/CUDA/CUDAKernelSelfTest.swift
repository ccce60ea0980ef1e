// `lorakit cuda selftest`: every CUDA kernel against the CPU kernels on random data, on the GPU in hand.
// Inputs for bf16 cases are rounded to bf16 first and the CPU computes in fp32 on those rounded values, so the
// only difference allowed is the GPU's own rounding (output to bf16, fp32 summation order).
// Error = max |gpu − cpu| / max(max |cpu|, 1e-6) (relative to the output's scale).
import Foundation
import Formats
import TensorCore

public struct KernelParityResult: Codable, Sendable {
    public var kernel: String
    public var precision: String
    public var maxRelativeError: Double
    public var tolerance: Double
    public var passed: Bool
}

public struct CUDAKernelSelfTest {
    let ctx: CUDAContext
    var rng: RandomGenerator
    var results: [KernelParityResult] = []

    public init(context: CUDAContext, seed: UInt64 = 20_261_204) { ctx = context; rng = RandomGenerator(seed: seed) }

    /// Runs every case; a case that throws is recorded as failed with error 1e30 (and the error printed).
    public static func run(context: CUDAContext, seed: UInt64 = 20_261_204, log: (String) -> Void = { _ in }) -> [KernelParityResult] {
        var test = CUDAKernelSelfTest(context: context, seed: seed)
        let cases: [(String, (inout CUDAKernelSelfTest) throws -> Void)] = [
            ("casts", { try $0.casts() }), ("elementwise", { try $0.elementwise() }), ("swiglu", { try $0.swiglu() }),
            ("dropout", { try $0.dropout() }), ("adalora", { try $0.adaLoRA() }), ("quantized", { try $0.quantized() }),
            ("embedding", { try $0.embedding() }), ("rmsnorm", { try $0.rmsNorm() }), ("rope", { try $0.rope() }),
            ("attention", { try $0.attention() }), ("cross_entropy", { try $0.crossEntropy() }),
            ("clip_adamw", { try $0.clipAndAdamW() }), ("gemm", { try $0.gemm() }),
        ]
        for (name, body) in cases {
            do { try body(&test) } catch {
                log("\(name): \(error)")
                test.results.append(KernelParityResult(kernel: name, precision: "-", maxRelativeError: 1e30, tolerance: 0, passed: false))
            }
        }
        return test.results
    }

    // MARK: helpers

    mutating func normal(_ shape: [Int], std: Float = 1) -> Tensor { rng.normal(shape, std: std) }
    func bf16Rounded(_ t: Tensor) -> Tensor { (try? Tensor(bfloat16Bits: t.bfloat16Bits(), shape: t.shape)) ?? t }
    func up(_ t: Tensor, _ type: DeviceElementType) throws -> DeviceTensor { try DeviceTensor(t, as: type, context: ctx) }
    func zeros(_ shape: [Int], _ type: DeviceElementType) throws -> DeviceTensor { try DeviceTensor(zeros: shape, type: type, context: ctx) }

    mutating func record(_ kernel: String, _ type: DeviceElementType, gpu: DeviceTensor, cpu: Tensor, tolerance: Double? = nil) throws {
        try record(kernel, type == .bfloat16 ? "bf16" : "fp32", gpu: try gpu.toTensor(), cpu: cpu,
                   tolerance: tolerance ?? (type == .bfloat16 ? 1e-2 : 1e-5))
    }
    mutating func record(_ kernel: String, _ precision: String, gpu: Tensor, cpu: Tensor, tolerance: Double) throws {
        guard gpu.count == cpu.count else { throw CUDAError.invalidLaunch(kernel: kernel, reason: "self-test shapes \(gpu.shape) vs \(cpu.shape)") }
        var maxDiff: Double = 0, scale: Double = 1e-6
        gpu.withUnsafeBufferPointer { g in cpu.withUnsafeBufferPointer { c in
            for i in 0..<c.count {
                let d = abs(Double(g[i]) - Double(c[i]))
                maxDiff = d.isNaN ? .infinity : max(maxDiff, d)
                scale = max(scale, abs(Double(c[i])))
            }
        } }
        let err = maxDiff / scale
        results.append(KernelParityResult(kernel: kernel, precision: precision, maxRelativeError: err, tolerance: tolerance, passed: err <= tolerance))
    }

    static func map(_ t: Tensor, _ f: (Float) -> Float) -> Tensor { Tensor(shape: t.shape) { o in t.withUnsafeBufferPointer { s in for i in 0..<s.count { o[i] = f(s[i]) } } } }
    static func zip(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        Tensor(shape: a.shape) { o in a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in for i in 0..<x.count { o[i] = f(x[i], y[i]) } } } }
    }

    /// [B, H, T, D] ↔ [B, T, H, D].
    static func swapHeadsAndTokens(_ t: Tensor, _ b: Int, _ h: Int, _ n: Int, _ d: Int, toTokenMajor: Bool) -> Tensor {
        Tensor(shape: toTokenMajor ? [b, n, h, d] : [b, h, n, d]) { o in t.withUnsafeBufferPointer { s in
            for bi in 0..<b { for hi in 0..<h { for ti in 0..<n { for di in 0..<d {
                let headMajor = ((bi * h + hi) * n + ti) * d + di, tokenMajor = ((bi * n + ti) * h + hi) * d + di
                if toTokenMajor { o[tokenMajor] = s[headMajor] } else { o[headMajor] = s[tokenMajor] }
            } } } }
        } }
    }

    // MARK: cases

    mutating func casts() throws {
        let x = normal([3, 1000], std: 10)
        let d = try up(x, .float32), h = try zeros(x.shape, .bfloat16), back = try zeros(x.shape, .float32)
        try ctx.cast(d, into: h); try ctx.cast(h, into: back)
        try record("cast_f32_bf16_f32", "bf16", gpu: try back.toTensor(), cpu: bf16Rounded(x), tolerance: 0)
    }

    mutating func elementwise() throws {
        for type in [DeviceElementType.float32, .bfloat16] {
            let a = bf16Rounded(normal([777])), b = bf16Rounded(normal([777]))
            let da = try up(a, type), db = try up(b, type), out = try zeros([777], type)
            try ctx.add(da, db, into: out)
            try record("add", type, gpu: out, cpu: Self.zip(a, b, +))
            try ctx.axpy(0.5, db, into: da)
            try record("axpy", type, gpu: da, cpu: Self.zip(a, b) { $0 + 0.5 * $1 })
            try ctx.scale(db, by: -2)
            try record("scale", type, gpu: db, cpu: Self.map(b) { -2 * $0 })
        }
        let g = bf16Rounded(normal([300])), acc = normal([300])
        let dacc = try up(acc, .float32)
        try ctx.axpy(0.25, try up(g, .bfloat16), into: dacc)
        try record("axpy_bf16_into_f32", "mixed", gpu: try dacc.toTensor(), cpu: Self.zip(acc, g) { $0 + 0.25 * $1 }, tolerance: 1e-6)
    }

    mutating func swiglu() throws {
        for type in [DeviceElementType.float32, .bfloat16] {
            let gate = bf16Rounded(normal([4, 513], std: 3)), upv = bf16Rounded(normal([4, 513])), dOut = bf16Rounded(normal([4, 513]))
            let dg = try up(gate, type), du = try up(upv, type), out = try zeros(gate.shape, type)
            try ctx.swigluForward(gate: dg, up: du, into: out)
            let sig = Self.map(gate) { 1 / (1 + Foundation.exp(-$0)) }
            try record("swiglu_fwd", type, gpu: out, cpu: Tensor(shape: gate.shape) { o in for i in 0..<o.count { o[i] = gate[flat: i] * sig[flat: i] * upv[flat: i] } }, tolerance: type == .bfloat16 ? 1e-2 : 1e-5)
            let dGate = try zeros(gate.shape, type), dUp = try zeros(gate.shape, type)
            try ctx.swigluBackward(dOut: try up(dOut, type), gate: dg, up: du, dGate: dGate, dUp: dUp)
            let refGate = Tensor(shape: gate.shape) { o in for i in 0..<o.count { let v = gate[flat: i], s = sig[flat: i]; o[i] = dOut[flat: i] * upv[flat: i] * s * (1 + v * (1 - s)) } }
            let refUp = Tensor(shape: gate.shape) { o in for i in 0..<o.count { o[i] = dOut[flat: i] * gate[flat: i] * sig[flat: i] } }
            try record("swiglu_bwd_gate", type, gpu: dGate, cpu: refGate, tolerance: type == .bfloat16 ? 1e-2 : 1e-5)
            try record("swiglu_bwd_up", type, gpu: dUp, cpu: refUp, tolerance: type == .bfloat16 ? 1e-2 : 1e-5)
        }
    }

    mutating func dropout() throws {
        // The mask must be the CPU's bit for bit: same seed and stream position.
        let x = normal([8, 1031]), p: Float = 0.1, seed: UInt64 = 0xDEAD_BEEF, start: UInt64 = 12_345
        var cpuRNG = RandomGenerator(seed: seed, position: start)
        var mask = cpuRNG.bernoulli(x.shape, probability: 1 - p)
        mask.scale(by: 1 / (1 - p))
        let out = try zeros(x.shape, .float32)
        try ctx.dropout(try up(x, .float32), into: out, probability: p, seed: seed, start: start)
        try record("dropout_mask_identical", "fp32", gpu: try out.toTensor(), cpu: Tensor.mul(x, mask), tolerance: 0)
    }

    mutating func adaLoRA() throws {
        let rows = 37, r = 12, factor: Float = 0.7
        let down = normal([rows, r]), e = normal([r]), dOut = normal([rows, r])
        let dd = try up(down, .float32), de = try up(e, .float32), out = try zeros([rows, r], .float32)
        try ctx.adaLoRAScaleForward(down: dd, e: de, factor: factor, into: out)
        try record("adalora_scale_fwd", .float32, gpu: out, cpu: Tensor(shape: [rows, r]) { o in for i in 0..<o.count { o[i] = down[flat: i] * e[flat: i % r] * factor } })
        let dDown = try zeros([rows, r], .float32), dE = try zeros([r], .float32)
        try ctx.adaLoRAScaleBackward(dOut: try up(dOut, .float32), down: dd, e: de, factor: factor, dDown: dDown, dE: dE)
        try record("adalora_scale_bwd_down", .float32, gpu: dDown, cpu: Tensor(shape: [rows, r]) { o in for i in 0..<o.count { o[i] = dOut[flat: i] * e[flat: i % r] * factor } })
        try record("adalora_scale_bwd_e", .float32, gpu: dE, cpu: Tensor(shape: [r]) { o in for j in 0..<r { var s: Float = 0; for i in 0..<rows { s += dOut[i, j] * down[i, j] * factor }; o[j] = s } }, tolerance: 1e-5)
        let scores = normal([r])
        try ctx.adaLoRAMask(e: de, scores: try up(scores, .float32), threshold: 0)
        try record("adalora_mask_e", .float32, gpu: de, cpu: Self.zip(e, scores) { $1 <= 0 ? 0 : $0 }, tolerance: 0)
    }

    /// Random GGUF blocks with finite f16 scales, and their CPU dequantisation.
    mutating func randomBlocks(_ type: GGMLType, rows: Int, cols: Int) throws -> ([UInt8], Tensor) {
        let blocks = rows * cols / 32, size = type.blockBytes
        var bytes = [UInt8](repeating: 0, count: blocks * size)
        for b in 0..<blocks {
            let d = HalfPrecision.narrowToFloat16(Float(rng.nextUInt64() % 1000 + 1) / 20_000)
            let m = HalfPrecision.narrowToFloat16(-Float(rng.nextUInt64() % 1000) / 2_000)
            bytes[b * size] = UInt8(d & 0xff); bytes[b * size + 1] = UInt8(d >> 8)
            var from = 2
            if type == .q4_1 { bytes[b * size + 2] = UInt8(m & 0xff); bytes[b * size + 3] = UInt8(m >> 8); from = 4 }
            for i in from..<size { bytes[b * size + i] = UInt8(truncatingIfNeeded: rng.nextUInt64()) }
        }
        let dense = try GGMLDequantizer.dequantize(type, bytes: bytes, count: rows * cols, name: "selftest")
        return (bytes, Tensor(dense, shape: [rows, cols]))
    }

    mutating func quantized() throws {
        for (ggml, type) in [(GGMLType.q8_0, DeviceElementType.q8_0), (.q4_1, .q4_1)] {
            let (rows, cols) = (96, 256)
            let (bytes, dense) = try randomBlocks(ggml, rows: rows, cols: cols)
            let q = try DeviceTensor(quantizedBlocks: bytes, type: type, shape: [rows, cols], context: ctx)
            let out = try zeros([rows, cols], .float32)
            try ctx.dequantize(q, into: out)
            try record("dequantize_\(type.rawValue)", "fp32", gpu: try out.toTensor(), cpu: dense, tolerance: 0)
            let outB = try zeros([rows, cols], .bfloat16)
            try ctx.dequantize(q, into: outB)
            try record("dequantize_\(type.rawValue)", "bf16", gpu: try outB.toTensor(), cpu: bf16Rounded(dense), tolerance: 0)
            for m in [1, 3] {
                let x = normal([m, cols]), y = try zeros([m, rows], .float32)
                try ctx.quantizedMatvec(weight: q, x: try up(x, .float32), into: y)
                try record("\(type.rawValue)_matvec_m\(m)", "fp32", gpu: try y.toTensor(), cpu: Tensor.matmul(x, dense, transposeB: true), tolerance: 1e-5)
            }
        }
    }

    mutating func embedding() throws {
        let (vocab, dim) = (50, 64)
        let ids: [Int32] = [3, 0, 49, 3, 17, 3, 8]
        let table = normal([vocab, dim])
        for type in [DeviceElementType.float32, .bfloat16] {
            let t = bf16Rounded(table)
            let out = try zeros([ids.count, dim], type)
            let dIds = try DeviceTensor(int32: ids, shape: [ids.count], context: ctx)
            try ctx.embeddingGather(table: try up(t, type), ids: dIds, into: out)
            try record("embedding_gather", type, gpu: out, cpu: Tensor(shape: [ids.count, dim]) { o in for (r, id) in ids.enumerated() { for i in 0..<dim { o[r * dim + i] = t[Int(id), i] } } }, tolerance: 0)
            let dOut = bf16Rounded(normal([ids.count, dim])), dTable = try zeros([vocab, dim], .float32)
            try ctx.embeddingBackward(dOut: try up(dOut, type), ids: dIds, into: dTable)
            try record("embedding_backward", type, gpu: dTable, cpu: Tensor(shape: [vocab, dim]) { o in for (r, id) in ids.enumerated() { for i in 0..<dim { o[Int(id) * dim + i] += dOut[r, i] } } }, tolerance: 1e-6)
        }
        for (ggml, type) in [(GGMLType.q8_0, DeviceElementType.q8_0), (.q4_1, .q4_1)] {
            let (bytes, dense) = try randomBlocks(ggml, rows: vocab, cols: dim)
            let out = try zeros([ids.count, dim], .float32)
            try ctx.embeddingGather(table: try DeviceTensor(quantizedBlocks: bytes, type: type, shape: [vocab, dim], context: ctx),
                                    ids: try DeviceTensor(int32: ids, shape: [ids.count], context: ctx), into: out)
            try record("embedding_gather_\(type.rawValue)", "fp32", gpu: try out.toTensor(), cpu: Tensor(shape: [ids.count, dim]) { o in for (r, id) in ids.enumerated() { for i in 0..<dim { o[r * dim + i] = dense[Int(id), i] } } }, tolerance: 0)
        }
    }

    mutating func rmsNorm() throws {
        let (rows, dim) = (33, 576)
        for type in [DeviceElementType.float32, .bfloat16] {
            let x = bf16Rounded(normal([rows, dim], std: 2)), w = normal([dim]), dOut = bf16Rounded(normal([rows, dim]))
            var out = Tensor(zeros: [rows, dim]), rstd = Tensor(zeros: [rows]), dx = Tensor(zeros: [rows, dim]), dw = Tensor(zeros: [dim])
            x.withUnsafeBufferPointer { px in w.withUnsafeBufferPointer { pw in out.withUnsafeMutableBufferPointer { po in rstd.withUnsafeMutableBufferPointer { pr in
                rmsNormForward(out: po.baseAddress!, rstdOut: pr.baseAddress!, x: px.baseAddress!, weight: pw.baseAddress!, rows: rows, dim: dim, eps: 1e-5)
            } } } }
            dOut.withUnsafeBufferPointer { pg in x.withUnsafeBufferPointer { px in w.withUnsafeBufferPointer { pw in rstd.withUnsafeBufferPointer { pr in
                dx.withUnsafeMutableBufferPointer { pdx in dw.withUnsafeMutableBufferPointer { pdw in
                    rmsNormBackward(dx: pdx.baseAddress!, dWeight: pdw.baseAddress!, dOut: pg.baseAddress!, x: px.baseAddress!, weight: pw.baseAddress!, rstd: pr.baseAddress!, rows: rows, dim: dim)
                } }
            } } } }
            let dxG = try up(x, type), dw32 = try up(w, .float32), o = try zeros([rows, dim], type), r = try zeros([rows], .float32)
            try ctx.rmsNormForward(dxG, weight: dw32, eps: 1e-5, into: o, rstd: r)
            try record("rmsnorm_fwd", type, gpu: o, cpu: out)
            try record("rmsnorm_rstd", "fp32", gpu: try r.toTensor(), cpu: rstd, tolerance: 1e-5)
            let gdx = try zeros([rows, dim], type), gdw = try zeros([dim], .float32)
            try ctx.rmsNormBackward(dOut: try up(dOut, type), x: dxG, weight: dw32, rstd: r, dx: gdx, dWeight: gdw)
            try record("rmsnorm_bwd", type, gpu: gdx, cpu: dx, tolerance: type == .bfloat16 ? 1e-2 : 1e-4)
            try record("rmsnorm_bwd_weight", "fp32", gpu: try gdw.toTensor(), cpu: dw, tolerance: 1e-4)
        }
    }

    mutating func rope() throws {
        let (b, h, n, d) = (2, 3, 19, 64)
        let table = try RotaryTable(start: 0, count: n, dim: d, theta: 100_000)
        let cos = Tensor(table.cos, shape: [n, d / 2]), sin = Tensor(table.sin, shape: [n, d / 2])
        for inverse in [false, true] {
            let x = normal([b, h, n, d])
            var ref = Tensor(zeros: x.shape)
            x.withUnsafeBufferPointer { px in ref.withUnsafeMutableBufferPointer { po in table.cos.withUnsafeBufferPointer { pc in table.sin.withUnsafeBufferPointer { ps in
                rotaryApply(out: po.baseAddress!, x: px.baseAddress!, cos: pc.baseAddress!, sin: ps.baseAddress!, batch: b, heads: h, length: n, dim: d,
                            perBatchPositions: false, layout: .halfSplit, inverse: inverse)
            } } } }
            let gx = try up(Self.swapHeadsAndTokens(x, b, h, n, d, toTokenMajor: true), .float32)
            try ctx.rotary(gx, into: gx, cos: try up(cos, .float32), sin: try up(sin, .float32), batch: b, length: n, heads: h, dim: d,
                           tokenStride: h * d, perBatchPositions: false, inverse: inverse)
            try record(inverse ? "rope_bwd" : "rope_fwd", "fp32", gpu: Self.swapHeadsAndTokens(try gx.toTensor(), b, h, n, d, toTokenMajor: false), cpu: ref, tolerance: 1e-6)
        }
    }

    mutating func attention() throws {
        // GQA prefill (T = S, causal), a KV-cache decode step (T = 1 against S keys) and head dim 128.
        let cases: [(String, Int, Int, Int, Int, Int, Int)] = [("prefill", 2, 6, 2, 77, 77, 64), ("decode", 2, 6, 2, 1, 50, 64), ("d128", 1, 4, 4, 40, 40, 128)]
        for (label, b, hq, hkv, t, s, d) in cases {
            for type in [DeviceElementType.float32, .bfloat16] {
                let q = bf16Rounded(normal([b, hq, t, d])), k = bf16Rounded(normal([b, hkv, s, d])), v = bf16Rounded(normal([b, hkv, s, d]))
                let dOut = bf16Rounded(normal([b, hq, t, d]))
                let shape = AttentionShape(batch: b, queryHeads: hq, kvHeads: hkv, queryLength: t, keyLength: s, headDim: d, causal: true)
                var out = Tensor(zeros: q.shape), lse = Tensor(zeros: [b, hq, t])
                var dq = Tensor(zeros: q.shape), dk = Tensor(zeros: k.shape), dv = Tensor(zeros: v.shape)
                q.withUnsafeBufferPointer { pq in k.withUnsafeBufferPointer { pk in v.withUnsafeBufferPointer { pv in
                    out.withUnsafeMutableBufferPointer { po in lse.withUnsafeMutableBufferPointer { pl in
                        attentionForward(out: po.baseAddress!, logSumExp: pl.baseAddress!, q: pq.baseAddress!, k: pk.baseAddress!, v: pv.baseAddress!, keyPaddingMask: nil, shape: shape)
                    } }
                } } }
                q.withUnsafeBufferPointer { pq in k.withUnsafeBufferPointer { pk in v.withUnsafeBufferPointer { pv in
                out.withUnsafeBufferPointer { po in lse.withUnsafeBufferPointer { pl in dOut.withUnsafeBufferPointer { pg in
                dq.withUnsafeMutableBufferPointer { pdq in dk.withUnsafeMutableBufferPointer { pdk in dv.withUnsafeMutableBufferPointer { pdv in
                    attentionBackward(dq: pdq.baseAddress!, dk: pdk.baseAddress!, dv: pdv.baseAddress!, dOut: pg.baseAddress!, q: pq.baseAddress!, k: pk.baseAddress!,
                                      v: pv.baseAddress!, out: po.baseAddress!, logSumExp: pl.baseAddress!, keyPaddingMask: nil, shape: shape)
                } } } } } } } } }
                let ds = DeviceAttentionShape(batch: b, queryHeads: hq, kvHeads: hkv, queryLength: t, keyLength: s, headDim: d, causal: true)
                let layout = AttentionLayout.packed(ds)
                func tm(_ x: Tensor, _ heads: Int, _ len: Int) -> Tensor { Self.swapHeadsAndTokens(x, b, heads, len, d, toTokenMajor: true) }
                func hm(_ x: Tensor, _ heads: Int, _ len: Int) -> Tensor { Self.swapHeadsAndTokens(x, b, heads, len, d, toTokenMajor: false) }
                let gq = try up(tm(q, hq, t), type), gk = try up(tm(k, hkv, s), type), gv = try up(tm(v, hkv, s), type)
                let gout = try zeros([b, t, hq, d], type), glse = try zeros([b, hq, t], .float32)
                try ctx.attentionForward(q: gq, k: gk, v: gv, keyMask: nil, shape: ds, layout: layout, into: gout, lse: glse)
                let tol = type == .bfloat16 ? 2e-2 : 1e-4
                try record("attention_fwd_\(label)", type == .bfloat16 ? "bf16" : "fp32", gpu: hm(try gout.toTensor(), hq, t), cpu: out, tolerance: tol)
                try record("attention_lse_\(label)", type == .bfloat16 ? "bf16" : "fp32", gpu: try glse.toTensor(), cpu: lse, tolerance: type == .bfloat16 ? 1e-2 : 1e-5)
                let gdq = try zeros([b, t, hq, d], type), gdk = try zeros([b, s, hkv, d], type), gdv = try zeros([b, s, hkv, d], type)
                let dsum = try zeros([b, hq, t], .float32)
                // Backward from the CPU's forward output (rounded like the GPU's), so only backward is compared.
                try ctx.attentionBackward(dOut: try up(tm(dOut, hq, t), type), q: gq, k: gk, v: gv, out: try up(tm(out, hq, t), type), lse: glse, keyMask: nil,
                                          shape: ds, layout: layout, dsum: dsum, dq: gdq, dk: gdk, dv: gdv)
                try record("attention_bwd_dq_\(label)", type == .bfloat16 ? "bf16" : "fp32", gpu: hm(try gdq.toTensor(), hq, t), cpu: dq, tolerance: tol)
                try record("attention_bwd_dk_\(label)", type == .bfloat16 ? "bf16" : "fp32", gpu: hm(try gdk.toTensor(), hkv, s), cpu: dk, tolerance: tol)
                try record("attention_bwd_dv_\(label)", type == .bfloat16 ? "bf16" : "fp32", gpu: hm(try gdv.toTensor(), hkv, s), cpu: dv, tolerance: tol)
            }
        }
        // KV-cache append: rows land at their positions.
        let (b, n, width, capacity, start) = (2, 3, 16, 10, 4)
        let rows = normal([b, n, width]), cache = try zeros([b, capacity, width], .float32)
        try ctx.kvAppend(try up(rows, .float32), into: cache, batch: b, length: n, width: width, capacity: capacity, start: start, rowsTokenStride: width, rowsBatchStride: n * width)
        let ref = Tensor(shape: [b, capacity, width]) { o in for bi in 0..<b { for t in 0..<n { for c in 0..<width { o[(bi * capacity + start + t) * width + c] = rows[bi, t, c] } } } }
        try record("kv_append", .float32, gpu: cache, cpu: ref, tolerance: 0)
    }

    mutating func crossEntropy() throws {
        let (rows, vocab) = (9, 1000)
        let logits = normal([rows, vocab], std: 3)
        let targets: [Int32] = [5, -100, 999, 0, 17, -100, 400, 3, 3]
        var lse = [Float](repeating: 0, count: rows), rowLoss = [Float](repeating: 0, count: rows), counted = 0
        var dLogits = Tensor(zeros: [rows, vocab])
        for r in 0..<rows where targets[r] != -100 {
            counted += 1
            var m = -Float.infinity; for j in 0..<vocab { m = max(m, logits[r, j]) }
            var s: Double = 0; for j in 0..<vocab { s += Foundation.exp(Double(logits[r, j] - m)) }
            lse[r] = m + Float(Foundation.log(s)); rowLoss[r] = lse[r] - logits[r, Int(targets[r])]
        }
        let loss = rowLoss.reduce(0, +) / Float(counted)
        dLogits.withUnsafeMutableBufferPointer { o in
            for r in 0..<rows where targets[r] != -100 { for j in 0..<vocab { o[r * vocab + j] = (Foundation.exp(logits[r, j] - lse[r]) - (j == Int(targets[r]) ? 1 : 0)) / Float(counted) } }
        }
        let gl = try up(logits, .float32), gt = try DeviceTensor(int32: targets, shape: [rows], context: ctx)
        let glse = try zeros([rows], .float32), grow = try zeros([rows], .float32), gloss = try zeros([1], .float32)
        try ctx.crossEntropyForward(logits: gl, targets: gt, lse: glse, rowLoss: grow)
        try ctx.sum(grow, multiplier: 1 / Float(counted), into: gloss)
        try record("cross_entropy_fwd_loss", "fp32", gpu: try gloss.toTensor(), cpu: Tensor([loss], shape: [1]), tolerance: 1e-5)
        try record("cross_entropy_fwd_lse", "fp32", gpu: try glse.toTensor(), cpu: Tensor(lse, shape: [rows]), tolerance: 1e-5)
        for type in [DeviceElementType.float32, .bfloat16] {
            let gd = try zeros([rows, vocab], type)
            try ctx.crossEntropyBackward(logits: gl, targets: gt, lse: glse, gradScale: nil, invCount: 1 / Float(counted), into: gd)
            try record("cross_entropy_bwd", type, gpu: gd, cpu: dLogits, tolerance: type == .bfloat16 ? 1e-2 : 1e-5)
        }
    }

    mutating func clipAndAdamW() throws {
        let grads = [normal([100, 7]), normal([333])], maxNorm: Float = 1
        var total: Double = 0
        for g in grads { g.withUnsafeBufferPointer { p in var s: Double = 0; for x in p { s += Double(x) * Double(x) }; total += s } }
        let norm = Float(total.squareRoot()), coef = maxNorm / (norm + 1e-6)
        let dg = try grads.map { try up($0, .float32) }
        let acc = try zeros([2], .float32), gn = try zeros([1], .float32), gc = try zeros([1], .float32)
        try ctx.clipCoefficient(gradients: dg, maxNorm: maxNorm, accumulator: acc, norm: gn, coefficient: gc)
        try record("grad_norm", "fp32", gpu: try gn.toTensor(), cpu: Tensor([norm], shape: [1]), tolerance: 1e-5)
        try record("clip_coefficient", "fp32", gpu: try gc.toTensor(), cpu: Tensor([coef < 1 ? coef : 1], shape: [1]), tolerance: 1e-5)
        // AdamW, three steps, against NN.AdamW's arithmetic on the clipped gradient.
        var p = normal([100, 7]), m = Tensor(zeros: p.shape), v = Tensor(zeros: p.shape)
        let (lr, b1, b2, eps, wd) = (1e-3, 0.9, 0.999, 1e-8, 0.01)
        let gp = try up(p, .float32), gm = try zeros(p.shape, .float32), gv = try zeros(p.shape, .float32)
        let g = grads[0]
        let c = coef < 1 ? coef : 1
        for step in 1...3 {
            try ctx.adamW(parameter: gp, gradient: dg[0], m: gm, v: gv, coefficient: gc, learningRate: lr, beta1: b1, beta2: b2, epsilon: eps, weightDecay: wd, step: step)
            let t = Double(step)
            let decay = Float(1 - lr * wd), stepSize = Float(lr / (1 - Foundation.pow(b1, t))), bc2 = Float((1 - Foundation.pow(b2, t)).squareRoot())
            let (b1c, b2f, b2c, e) = (Float(1 - b1), Float(b2), Float(1 - b2), Float(eps))
            p.withUnsafeMutableBufferPointer { pp in m.withUnsafeMutableBufferPointer { pm in v.withUnsafeMutableBufferPointer { pv in g.withUnsafeBufferPointer { pg in
                for i in 0..<pp.count {
                    let gi = pg[i] * c
                    pp[i] *= decay
                    pm[i] += b1c * (gi - pm[i])
                    pv[i] = pv[i] * b2f + b2c * gi * gi
                    let denom = pv[i].squareRoot() / bc2 + e
                    pp[i] += -stepSize * pm[i] / denom
                }
            } } } }
        }
        try record("adamw_step", "fp32", gpu: try gp.toTensor(), cpu: p, tolerance: 1e-6)
    }

    mutating func gemm() throws {
        let (m, n, k) = (70, 130, 96)
        let a = bf16Rounded(normal([m, k])), w = bf16Rounded(normal([n, k])), bt = bf16Rounded(normal([k, n]))
        let refT = Tensor.matmul(a, w, transposeB: true), refN = Tensor.matmul(a, bt)
        let fallbackBefore = ctx.forceFallbackGEMM
        defer { ctx.forceFallbackGEMM = fallbackBefore }
        for fallback in [false, true] {
            ctx.forceFallbackGEMM = fallback
            let path = fallback ? "kernel" : (ctx.usesCuBLAS ? "cublas" : "kernel")
            for type in [DeviceElementType.float32, .bfloat16] {
                let ga = try up(a, type), gw = try up(w, type), gb = try up(bt, type)
                let c1 = try zeros([m, n], .float32), c2 = try zeros([m, n], .float32)
                try ctx.gemm(transposeA: false, transposeB: true, m: m, n: n, k: k, a: ga, lda: k, b: gw, ldb: k, c: c1, ldc: n)
                try ctx.gemm(transposeA: false, transposeB: false, m: m, n: n, k: k, a: ga, lda: k, b: gb, ldb: n, c: c2, ldc: n)
                // fp32 on cuBLAS may use TF32 tensor cores only if asked; the default compute type is full fp32.
                try record("gemm_\(path)_NT", type == .bfloat16 ? "bf16" : "fp32", gpu: try c1.toTensor(), cpu: refT, tolerance: 1e-5)
                try record("gemm_\(path)_NN", type == .bfloat16 ? "bf16" : "fp32", gpu: try c2.toTensor(), cpu: refN, tolerance: 1e-5)
            }
            // Transposed A (the weight gradient dW = dYᵀ·X) and a batched product.
            let ga = try up(a, .float32), gb = try up(bt, .float32)
            let c3 = try zeros([k, n], .float32)
            // c3 [k, n] = aᵀ [k, m] · (a·bt) [m, n] — use refN as the right operand.
            let gr = try up(refN, .float32)
            try ctx.gemm(transposeA: true, transposeB: false, m: k, n: n, k: m, a: ga, lda: k, b: gr, ldb: n, c: c3, ldc: n)
            try record("gemm_\(path)_TN", "fp32", gpu: try c3.toTensor(), cpu: Tensor.matmul(a, refN, transposeA: true), tolerance: 1e-5)
            let c4 = try zeros([2, m, n], .float32)
            try ctx.gemm(transposeA: false, transposeB: false, m: m, n: n, k: k, a: ga, lda: k, b: gb, ldb: n, c: c4, ldc: n, batch: 2, strideA: 0, strideB: 0, strideC: m * n)
            let twice = Tensor(shape: [2, m, n]) { o in for i in 0..<(m * n) { o[i] = refN[flat: i]; o[m * n + i] = refN[flat: i] } }
            try record("gemm_\(path)_batched", "fp32", gpu: try c4.toTensor(), cpu: twice, tolerance: 1e-5)
        }
    }
}
