// Assembles ggml blocks byte by byte from chosen scales and quants (the inverse of the layouts in
// ggml-common.h), and returns the values the format's formula defines for them.
import Formats

struct EncodedBlocks {
    var bytes: [UInt8] = []
    var expected: [Double] = []
    static func + (a: EncodedBlocks, b: EncodedBlocks) -> EncodedBlocks {
        EncodedBlocks(bytes: a.bytes + b.bytes, expected: a.expected + b.expected)
    }
}

enum GGMLBlockEncoder {
    /// Nibble pairs: byte j holds element j (low) and j + 16 (high) of a 32-element block.
    static func nibbles32(_ q: [Int]) -> [UInt8] {
        (0..<16).map { UInt8(q[$0] & 0x0F) | UInt8(q[$0 + 16] & 0x0F) << 4 }
    }

    /// 5th bits of a 32-element block as a little-endian u32: bit i belongs to element i.
    static func highBits32(_ q: [Int]) -> [UInt8] {
        var qh: UInt32 = 0
        for i in 0..<32 where q[i] & 0x10 != 0 { qh |= 1 << UInt32(i) }
        var w = GGUFBytes(); w.u32(qh); return w.bytes
    }

    static func q4_0(d: Float, q: [Int]) -> EncodedBlocks {
        var w = GGUFBytes(); w.u16(halfBits(d))
        return EncodedBlocks(bytes: w.bytes + nibbles32(q), expected: q.map { Double(d) * Double($0 - 8) })
    }

    static func q4_1(d: Float, m: Float, q: [Int]) -> EncodedBlocks {
        var w = GGUFBytes(); w.u16(halfBits(d)); w.u16(halfBits(m))
        return EncodedBlocks(bytes: w.bytes + nibbles32(q), expected: q.map { Double(d) * Double($0) + Double(m) })
    }

    static func q5_0(d: Float, q: [Int]) -> EncodedBlocks {
        var w = GGUFBytes(); w.u16(halfBits(d))
        return EncodedBlocks(bytes: w.bytes + highBits32(q) + nibbles32(q), expected: q.map { Double(d) * Double($0 - 16) })
    }

    static func q5_1(d: Float, m: Float, q: [Int]) -> EncodedBlocks {
        var w = GGUFBytes(); w.u16(halfBits(d)); w.u16(halfBits(m))
        return EncodedBlocks(bytes: w.bytes + highBits32(q) + nibbles32(q), expected: q.map { Double(d) * Double($0) + Double(m) })
    }

    static func q8_0(d: Float, q: [Int]) -> EncodedBlocks {
        var w = GGUFBytes(); w.u16(halfBits(d))
        for v in q { w.u8(UInt8(bitPattern: Int8(v))) }
        return EncodedBlocks(bytes: w.bytes, expected: q.map { Double(d) * Double($0) })
    }

    /// The 12-byte 6-bit packing of 8 scales and 8 mins (each 0...63) used by Q4_K and Q5_K:
    /// bytes 0–3: scale j (low 6 bits) | top 2 bits of scale j+4 in bits 6–7;
    /// bytes 4–7: min j | top 2 bits of min j+4; bytes 8–11: low 4 bits of scale j+4 | low 4 of min j+4 << 4.
    static func packScalesMins(_ sc: [Int], _ mn: [Int]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 12)
        for j in 0..<4 {
            out[j] = UInt8(sc[j] & 63) | UInt8(sc[j + 4] >> 4) << 6
            out[j + 4] = UInt8(mn[j] & 63) | UInt8(mn[j + 4] >> 4) << 6
            out[j + 8] = UInt8(sc[j + 4] & 15) | UInt8(mn[j + 4] & 15) << 4
        }
        return out
    }

    /// Q4_K: 256 quants 0...15 in 8 sub-blocks of 32; x = d·sc[s]·q − dmin·min[s].
    static func q4_K(d: Float, dmin: Float, scales: [Int], mins: [Int], q: [Int]) -> EncodedBlocks {
        var w = GGUFBytes(); w.u16(halfBits(d)); w.u16(halfBits(dmin))
        w.bytes += packScalesMins(scales, mins)
        for c in 0..<4 { for l in 0..<32 { w.u8(UInt8(q[64 * c + l]) | UInt8(q[64 * c + 32 + l]) << 4) } }
        let expected = (0..<256).map { i in Double(d) * Double(scales[i / 32]) * Double(q[i]) - Double(dmin) * Double(mins[i / 32]) }
        return EncodedBlocks(bytes: w.bytes, expected: expected)
    }

    /// Q5_K: 256 quants 0...31; the 5th bit of element 64c + l (+32) is bit 2c (2c+1) of qh[l].
    static func q5_K(d: Float, dmin: Float, scales: [Int], mins: [Int], q: [Int]) -> EncodedBlocks {
        var w = GGUFBytes(); w.u16(halfBits(d)); w.u16(halfBits(dmin))
        w.bytes += packScalesMins(scales, mins)
        var qh = [UInt8](repeating: 0, count: 32)
        for i in 0..<256 where q[i] & 16 != 0 {
            let c = i / 64, r = i % 64
            qh[r % 32] |= 1 << UInt8(2 * c + r / 32)
        }
        w.bytes += qh
        for c in 0..<4 { for l in 0..<32 { w.u8(UInt8(q[64 * c + l] & 15) | UInt8(q[64 * c + 32 + l] & 15) << 4) } }
        let expected = (0..<256).map { i in Double(d) * Double(scales[i / 32]) * Double(q[i]) - Double(dmin) * Double(mins[i / 32]) }
        return EncodedBlocks(bytes: w.bytes, expected: expected)
    }

    /// Q6_K: 256 quants 0...63 in 16 sub-blocks of 16 with int8 scales; x = d·sc[s]·(q − 32).
    /// Element 128h + 32g + l (g = 0...3): low 4 bits in ql[64h + l + 32·(g & 1)] (low nibble for
    /// g < 2, high for g ≥ 2), top 2 bits in qh[32h + l] at bit 2g.
    static func q6_K(d: Float, scales: [Int], q: [Int]) -> EncodedBlocks {
        var ql = [UInt8](repeating: 0, count: 128), qh = [UInt8](repeating: 0, count: 64)
        for i in 0..<256 {
            let h = i / 128, g = (i % 128) / 32, l = i % 32
            let low = UInt8(q[i] & 15), top = UInt8(q[i] >> 4)
            ql[64 * h + l + 32 * (g & 1)] |= g < 2 ? low : low << 4
            qh[32 * h + l] |= top << UInt8(2 * g)
        }
        var w = GGUFBytes()
        w.bytes = ql + qh + scales.map { UInt8(bitPattern: Int8($0)) }
        w.u16(halfBits(d))
        let expected = (0..<256).map { i in Double(d) * Double(scales[i / 16]) * Double(q[i] - 32) }
        return EncodedBlocks(bytes: w.bytes, expected: expected)
    }

    /// Random well-formed blocks of `type` for `elements` values (for kernel tests).
    static func random(_ type: GGMLType, elements: Int, rng: inout TestRandom) -> EncodedBlocks {
        var out = EncodedBlocks()
        let blocks = elements / type.blockSize
        func quants(_ n: Int, _ range: ClosedRange<Int>) -> [Int] { (0..<n).map { _ in rng.int(range) } }
        for _ in 0..<blocks {
            switch type {
            case .q4_0: out = out + q4_0(d: rng.halfScale(), q: quants(32, 0...15))
            case .q4_1: out = out + q4_1(d: rng.halfScale(), m: rng.halfScale(), q: quants(32, 0...15))
            case .q5_0: out = out + q5_0(d: rng.halfScale(), q: quants(32, 0...31))
            case .q5_1: out = out + q5_1(d: rng.halfScale(), m: rng.halfScale(), q: quants(32, 0...31))
            case .q8_0: out = out + q8_0(d: rng.halfScale(), q: quants(32, -128...127))
            case .q4_K: out = out + q4_K(d: rng.halfScale(), dmin: rng.halfScale(), scales: quants(8, 0...63), mins: quants(8, 0...63), q: quants(256, 0...15))
            case .q5_K: out = out + q5_K(d: rng.halfScale(), dmin: rng.halfScale(), scales: quants(8, 0...63), mins: quants(8, 0...63), q: quants(256, 0...31))
            case .q6_K: out = out + q6_K(d: rng.halfScale(), scales: quants(16, -128...127), q: quants(256, 0...63))
            case .f32:
                let v = rng.float(-1, 1); var w = GGUFBytes(); w.u32(v.bitPattern)
                out = out + EncodedBlocks(bytes: w.bytes, expected: [Double(v)])
            case .f16:
                let v = rng.halfScale(); var w = GGUFBytes(); w.u16(halfBits(v))
                out = out + EncodedBlocks(bytes: w.bytes, expected: [Double(v)])
            case .bf16:
                let v = Float(bitPattern: UInt32(rng.int(0...0xFFFF) & 0x807F | 0x3C00) << 16)
                var w = GGUFBytes(); w.u16(UInt16(v.bitPattern >> 16))
                out = out + EncodedBlocks(bytes: w.bytes, expected: [Double(v)])
            default: preconditionFailure("no encoder for \(type)")
            }
        }
        return out
    }
}
