// Block formats of ggml (see ggml-common.h) turned into Float32. One function per type; each takes
// `count` elements (a whole number of blocks) starting at `src` and writes `count` floats to `dst`.
// Arithmetic follows ggml's reference order (e.g. (d·sc)·q − dmin·m), so results are bit-identical
// to llama.cpp / gguf-py dequantisation.

/// Conversions from ggml block bytes to Float32.
public enum GGMLDequantizer {
    /// Dequantises `count` elements of `type` from `src` into `dst`. `count` must be a multiple of
    /// `type.blockSize` and `src` must hold `type.byteCount(elements: count)` bytes (callers validate).
    public static func dequantize(_ type: GGMLType, from src: UnsafeRawPointer, count: Int,
                                  into dst: UnsafeMutablePointer<Float>) {
        let blocks = count / type.blockSize
        switch type {
        case .f32: for i in 0..<count { dst[i] = Float(bitPattern: src.ggmlU32(i * 4)) }
        case .f16: for i in 0..<count { dst[i] = GGMLHalf.float(src.ggmlU16(i * 2)) }
        case .bf16: for i in 0..<count { dst[i] = Float(bitPattern: UInt32(src.ggmlU16(i * 2)) << 16) }
        case .q4_0: for b in 0..<blocks { q4_0(src + b * 18, dst + b * 32) }
        case .q4_1: for b in 0..<blocks { q4_1(src + b * 20, dst + b * 32) }
        case .q5_0: for b in 0..<blocks { q5_0(src + b * 22, dst + b * 32) }
        case .q5_1: for b in 0..<blocks { q5_1(src + b * 24, dst + b * 32) }
        case .q8_0: for b in 0..<blocks { q8_0(src + b * 34, dst + b * 32) }
        case .q4_K: for b in 0..<blocks { q4_K(src + b * 144, dst + b * 256) }
        case .q5_K: for b in 0..<blocks { q5_K(src + b * 176, dst + b * 256) }
        case .q6_K: for b in 0..<blocks { q6_K(src + b * 210, dst + b * 256) }
        default: preconditionFailure("GGMLDequantizer: \(type.name) is not dequantizable; check isDequantizable first")
        }
    }

    /// Checked form for bytes from outside: validates type and sizes, returns `count` floats.
    public static func dequantize(_ type: GGMLType, bytes: [UInt8], count: Int, name: String = "<bytes>") throws -> [Float] {
        guard type.isDequantizable else {
            throw GGUFError.invalidQuantizedData(tensor: name, reason: "type \(type.name) cannot be dequantized")
        }
        guard let needed = type.byteCount(elements: count) else {
            throw GGUFError.invalidQuantizedData(tensor: name, reason: "\(count) elements is not a whole number of \(type.name) blocks of \(type.blockSize)")
        }
        guard bytes.count == needed else {
            throw GGUFError.invalidQuantizedData(tensor: name, reason: "\(count) \(type.name) elements need \(needed) bytes, got \(bytes.count)")
        }
        var out = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            out.withUnsafeMutableBufferPointer { dst in
                if let s = raw.baseAddress, let d = dst.baseAddress { dequantize(type, from: s, count: count, into: d) }
            }
        }
        return out
    }

    // Q4_0: f16 d, 16 B; byte j holds element j (low nibble) and j+16 (high). x = d·(q − 8).
    @inline(__always) static func q4_0(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLHalf.float(b.ggmlU16(0))
        let qs = b + 2
        for j in 0..<16 {
            let q = qs.load(fromByteOffset: j, as: UInt8.self)
            y[j] = Float(Int32(q & 0x0F) - 8) * d
            y[j + 16] = Float(Int32(q >> 4) - 8) * d
        }
    }

    // Q4_1: f16 d, f16 m, 16 B nibbles (as Q4_0). x = d·q + m.
    @inline(__always) static func q4_1(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLHalf.float(b.ggmlU16(0)), m = GGMLHalf.float(b.ggmlU16(2))
        let qs = b + 4
        for j in 0..<16 {
            let q = qs.load(fromByteOffset: j, as: UInt8.self)
            y[j] = Float(q & 0x0F) * d + m
            y[j + 16] = Float(q >> 4) * d + m
        }
    }

    // Q5_0: f16 d, u32 qh (bit i = 5th bit of element i), 16 B nibbles. x = d·(q − 16).
    @inline(__always) static func q5_0(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLHalf.float(b.ggmlU16(0))
        let qh = b.ggmlU32(2)
        let qs = b + 6
        for j in 0..<16 {
            let q = UInt32(qs.load(fromByteOffset: j, as: UInt8.self))
            let lo = (q & 0x0F) | ((qh >> UInt32(j)) & 1) << 4
            let hi = (q >> 4) | ((qh >> UInt32(j + 16)) & 1) << 4
            y[j] = Float(Int32(lo) - 16) * d
            y[j + 16] = Float(Int32(hi) - 16) * d
        }
    }

    // Q5_1: f16 d, f16 m, u32 qh, 16 B nibbles. x = d·q + m.
    @inline(__always) static func q5_1(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLHalf.float(b.ggmlU16(0)), m = GGMLHalf.float(b.ggmlU16(2))
        let qh = b.ggmlU32(4)
        let qs = b + 8
        for j in 0..<16 {
            let q = UInt32(qs.load(fromByteOffset: j, as: UInt8.self))
            let lo = (q & 0x0F) | ((qh >> UInt32(j)) & 1) << 4
            let hi = (q >> 4) | ((qh >> UInt32(j + 16)) & 1) << 4
            y[j] = Float(lo) * d + m
            y[j + 16] = Float(hi) * d + m
        }
    }

    // Q8_0: f16 d, 32 int8. x = d·q.
    @inline(__always) static func q8_0(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLHalf.float(b.ggmlU16(0))
        for j in 0..<32 { y[j] = Float(b.load(fromByteOffset: 2 + j, as: Int8.self)) * d }
    }

    /// Scale and min of sub-block `j` (0..<8) from the 12-byte 6-bit packing of Q4_K/Q5_K:
    /// bytes 0–3 hold scales 0–3 (low 6 bits), 4–7 mins 0–3; bytes 8–11 hold the low 4 bits of
    /// scales/mins 4–7, whose top 2 bits sit in the high bits of bytes 0–3 / 4–7.
    @inline(__always) static func kScaleMin(_ s: UnsafeRawPointer, _ j: Int) -> (scale: UInt8, min: UInt8) {
        let at = { (i: Int) in s.load(fromByteOffset: i, as: UInt8.self) }
        if j < 4 { return (at(j) & 63, at(j + 4) & 63) }
        return ((at(j + 4) & 0x0F) | ((at(j - 4) >> 6) << 4), (at(j + 4) >> 4) | ((at(j) >> 6) << 4))
    }

    // Q4_K: f16 d, f16 dmin, 12 B scales, 128 B nibbles. 8 sub-blocks of 32; chunk c of 64 elements
    // uses bytes 32c..<32c+32: low nibbles → sub-block 2c, high nibbles → 2c+1. x = d·sc·q − dmin·m.
    @inline(__always) static func q4_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLHalf.float(b.ggmlU16(0)), dmin = GGMLHalf.float(b.ggmlU16(2))
        let scales = b + 4, qs = b + 16
        for c in 0..<4 {
            let (s0, m0) = kScaleMin(scales, 2 * c), (s1, m1) = kScaleMin(scales, 2 * c + 1)
            let d0 = d * Float(s0), min0 = dmin * Float(m0), d1 = d * Float(s1), min1 = dmin * Float(m1)
            let q = qs + 32 * c, out = y + 64 * c
            for l in 0..<32 {
                let byte = q.load(fromByteOffset: l, as: UInt8.self)
                out[l] = d0 * Float(byte & 0x0F) - min0
                out[l + 32] = d1 * Float(byte >> 4) - min1
            }
        }
    }

    // Q5_K: f16 d, f16 dmin, 12 B scales, 32 B qh, 128 B nibbles. As Q4_K, plus a 5th bit: element
    // 64c+l takes bit 2c of qh[l], element 64c+32+l bit 2c+1.
    @inline(__always) static func q5_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLHalf.float(b.ggmlU16(0)), dmin = GGMLHalf.float(b.ggmlU16(2))
        let scales = b + 4, qh = b + 16, qs = b + 48
        for c in 0..<4 {
            let (s0, m0) = kScaleMin(scales, 2 * c), (s1, m1) = kScaleMin(scales, 2 * c + 1)
            let d0 = d * Float(s0), min0 = dmin * Float(m0), d1 = d * Float(s1), min1 = dmin * Float(m1)
            let q = qs + 32 * c, out = y + 64 * c
            for l in 0..<32 {
                let byte = q.load(fromByteOffset: l, as: UInt8.self)
                let high = qh.load(fromByteOffset: l, as: UInt8.self) >> UInt8(2 * c)
                out[l] = d0 * Float((byte & 0x0F) | (high & 1) << 4) - min0
                out[l + 32] = d1 * Float((byte >> 4) | ((high >> 1) & 1) << 4) - min1
            }
        }
    }

    // Q6_K: 128 B ql (low 4 bits), 64 B qh (high 2 bits), 16 int8 scales, f16 d. 16 sub-blocks of 16.
    // Element 128h + 32g + l (h < 2, g < 4, l < 32): low 4 bits = nibble (g < 2 ? low : high) of
    // ql[64h + 32(g & 1) + l], top 2 bits = bits 2g…2g+1 of qh[32h + l], scale sc[8h + 2g + l/16].
    // x = (d·sc)·(q − 32). One plain loop per 16-element run so LLVM vectorises it.
    @inline(__always) static func q6_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = GGMLHalf.float(b.ggmlU16(208))
        for h in 0..<2 {
            let qh = b + 128 + 32 * h
            for g in 0..<4 {
                let ql = b + 64 * h + 32 * (g & 1)
                let lowShift: UInt8 = g < 2 ? 0 : 4, highShift = UInt8(2 * g)
                let out = y + 128 * h + 32 * g
                for run in 0..<2 {
                    let scale = d * Float(b.load(fromByteOffset: 192 + 8 * h + 2 * g + run, as: Int8.self))
                    for l in (16 * run)..<(16 * run + 16) {
                        let low = (ql.load(fromByteOffset: l, as: UInt8.self) >> lowShift) & 0x0F
                        let high = (qh.load(fromByteOffset: l, as: UInt8.self) >> highShift) & 3
                        out[l] = scale * Float(Int32(low | high << 4) - 32)
                    }
                }
            }
        }
    }
}

/// IEEE half → single conversion by bit manipulation (no F16C dependence; exact for all 65 536 inputs).
enum GGMLHalf {
    @inline(__always) static func float(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let magnitude = UInt32(h & 0x7FFF)
        if magnitude >= 0x7C00 {                        // inf / NaN: keep the payload
            return Float(bitPattern: sign | 0x7F80_0000 | (magnitude & 0x3FF) << 13)
        }
        if magnitude < 0x0400 {                         // zero / subnormal: m · 2^-24
            return Float(bitPattern: sign | (Float(magnitude) * 0x1p-24).bitPattern)
        }
        // Normal: rebias the exponent from 15 to 127 ((127 − 15) << 23 = 0x3800_0000).
        return Float(bitPattern: sign | ((magnitude << 13) &+ 0x3800_0000))
    }
}

extension UnsafeRawPointer {
    @inline(__always) func ggmlU16(_ offset: Int) -> UInt16 {
        UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    @inline(__always) func ggmlU32(_ offset: Int) -> UInt32 {
        UInt32(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
}
