// Inner loops of quantized matrix-vector products. A row is a run of blocks; for the 32-element
// formats the block scale is factored out of the dot product:
//   Q4_1: Σ (d·q + m)·x = d·Σ q·x + m·Σx      Q4_0: d·(Σ q·x − 8·Σx)      Q8_0: d·Σ q·x
// so the per-element work is one int→float conversion and one multiply-add. Each row is done in
// two passes: (1) unpack the row's quants to unscaled floats in `scratch` (a plain loop LLVM
// vectorises), (2) per block, a SIMD dot of 32 floats scaled by d. Σx per block is computed once per x.

enum QuantizedKernels {
    /// Σ a[i]·b[i] for i < n, with SIMD accumulators (vectorised for any n; scalar tail).
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var i = 0
        while i + 16 <= n {
            acc0 += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            acc1 += ra.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self)
            i += 16
        }
        var total = (acc0 + acc1).sum()
        while i < n { total += a[i] * b[i]; i += 1 }
        return total
    }

    /// Σ of each 32-element block of x: xsum[b] = Σ_{j<32} x[32b + j]. x: [32·blocks]
    static func blockSums(_ x: UnsafePointer<Float>, blocks: Int, into xsum: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks { xsum[b] = dot32Ones(x + 32 * b) }
    }

    @inline(__always) private static func dot32Ones(_ x: UnsafePointer<Float>) -> Float {
        let r = UnsafeRawPointer(x)
        var s = r.loadUnaligned(as: SIMD8<Float>.self)
        for k in 1..<4 { s += r.loadUnaligned(fromByteOffset: 32 * k, as: SIMD8<Float>.self) }
        return s.sum()
    }

    /// Σ over blocks of scale[b]·(block b of q · block b of x), plus the per-block offset term.
    /// q, x: [32·blocks] floats.
    @inline(__always)
    private static func scaledBlockDot(_ q: UnsafePointer<Float>, _ x: UnsafePointer<Float>, blocks: Int,
                                       scale: (Int) -> Float) -> Float {
        var acc = SIMD8<Float>()
        let rq = UnsafeRawPointer(q), rx = UnsafeRawPointer(x)
        for b in 0..<blocks {
            let o = 128 * b
            var s = rq.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) * rx.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
            s += rq.loadUnaligned(fromByteOffset: o + 32, as: SIMD8<Float>.self) * rx.loadUnaligned(fromByteOffset: o + 32, as: SIMD8<Float>.self)
            s += rq.loadUnaligned(fromByteOffset: o + 64, as: SIMD8<Float>.self) * rx.loadUnaligned(fromByteOffset: o + 64, as: SIMD8<Float>.self)
            s += rq.loadUnaligned(fromByteOffset: o + 96, as: SIMD8<Float>.self) * rx.loadUnaligned(fromByteOffset: o + 96, as: SIMD8<Float>.self)
            acc += s * scale(b)
        }
        return acc.sum()
    }

    /// Unpacks the nibbles of `blocks` Q4_0/Q4_1 blocks (quants at byte `quantOffset` of each
    /// `blockBytes`-byte block) to unscaled floats 0…15 in ggml element order.
    @inline(__always)
    private static func unpackNibbles(_ row: UnsafeRawPointer, blocks: Int, blockBytes: Int, quantOffset: Int,
                                      into q: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            let qs = row + b * blockBytes + quantOffset, out = q + 32 * b
            for j in 0..<16 {
                let byte = qs.load(fromByteOffset: j, as: UInt8.self)
                out[j] = Float(byte & 0x0F)
                out[j + 16] = Float(byte >> 4)
            }
        }
    }

    /// One Q4_1 row · x. row: blocks × 20 B; x, xsum as from `blockSums`; scratch: [32·blocks].
    static func q4_1Row(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>,
                        blocks: Int, scratch: UnsafeMutablePointer<Float>) -> Float {
        unpackNibbles(row, blocks: blocks, blockBytes: 20, quantOffset: 4, into: scratch)
        var offsetTerm: Float = 0
        for b in 0..<blocks { offsetTerm += GGMLHalf.float(row.ggmlU16(b * 20 + 2)) * xsum[b] }
        return scaledBlockDot(scratch, x, blocks: blocks) { GGMLHalf.float(row.ggmlU16($0 * 20)) } + offsetTerm
    }

    /// One Q4_0 row · x (x = d·(q − 8)). row: blocks × 18 B.
    static func q4_0Row(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>,
                        blocks: Int, scratch: UnsafeMutablePointer<Float>) -> Float {
        unpackNibbles(row, blocks: blocks, blockBytes: 18, quantOffset: 2, into: scratch)
        var offsetTerm: Float = 0
        for b in 0..<blocks { offsetTerm += GGMLHalf.float(row.ggmlU16(b * 18)) * xsum[b] }
        return scaledBlockDot(scratch, x, blocks: blocks) { GGMLHalf.float(row.ggmlU16($0 * 18)) } - 8 * offsetTerm
    }

    /// One Q8_0 row · x. row: blocks × 34 B.
    static func q8_0Row(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, blocks: Int,
                        scratch: UnsafeMutablePointer<Float>) -> Float {
        for b in 0..<blocks {
            let qs = row + b * 34 + 2, out = scratch + 32 * b
            for j in 0..<32 { out[j] = Float(qs.load(fromByteOffset: j, as: Int8.self)) }
        }
        return scaledBlockDot(scratch, x, blocks: blocks) { GGMLHalf.float(row.ggmlU16($0 * 34)) }
    }
}
