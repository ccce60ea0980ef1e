// Each ggml block format against values computed from its formula for hand-assembled blocks.
import XCTest
import Formats

final class GGUFDequantizeTests: XCTestCase {
    /// Dequantises `blocks` with the library and compares with the formula's values.
    private func check(_ type: GGMLType, _ blocks: EncodedBlocks, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(blocks.bytes.count, type.byteCount(elements: blocks.expected.count), "encoder size", file: file, line: line)
        let got = try GGMLDequantizer.dequantize(type, bytes: blocks.bytes, count: blocks.expected.count)
        var worst = 0.0
        for (g, e) in zip(got, blocks.expected) { worst = max(worst, abs(Double(g) - e) / max(1, abs(e))) }
        XCTAssertLessThanOrEqual(worst, 1e-6, "\(type) max relative error", file: file, line: line)
    }

    // Quants chosen to hit 0, the maximum, and mixed nibble/bit patterns.
    private let q16 = [0, 15, 1, 14, 2, 13, 3, 12, 4, 11, 5, 10, 6, 9, 7, 8, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15, 0]
    private var q32: [Int] { (0..<32).map { ($0 * 7 + 3) % 32 } }

    func testQ4_0BlocksMatchFormula() throws {
        try check(.q4_0, GGMLBlockEncoder.q4_0(d: 0.5, q: q16) + GGMLBlockEncoder.q4_0(d: -0.0078125, q: q16.reversed()))
        // d·(q − 8): q = 0 → −8d, q = 15 → 7d (spot-check the formula itself).
        let v = try GGMLDequantizer.dequantize(.q4_0, bytes: GGMLBlockEncoder.q4_0(d: 0.5, q: q16).bytes, count: 32)
        XCTAssertEqual(v[0], -4); XCTAssertEqual(v[1], 3.5); XCTAssertEqual(v[16], 0)
    }

    func testQ4_1BlocksMatchFormula() throws {
        try check(.q4_1, GGMLBlockEncoder.q4_1(d: 0.25, m: -1.5, q: q16) + GGMLBlockEncoder.q4_1(d: 3, m: 0.125, q: q16.reversed()))
        let v = try GGMLDequantizer.dequantize(.q4_1, bytes: GGMLBlockEncoder.q4_1(d: 0.25, m: -1.5, q: q16).bytes, count: 32)
        XCTAssertEqual(v[0], -1.5); XCTAssertEqual(v[1], 2.25); XCTAssertEqual(v[31], -1.5)
    }

    func testQ5_0BlocksMatchFormula() throws {
        try check(.q5_0, GGMLBlockEncoder.q5_0(d: 0.5, q: q32) + GGMLBlockEncoder.q5_0(d: -2, q: q32.reversed()))
        // Element 16 uses bit 16 of qh: q = 16·7+3 mod 32 = 19 → d·3.
        let v = try GGMLDequantizer.dequantize(.q5_0, bytes: GGMLBlockEncoder.q5_0(d: 0.5, q: q32).bytes, count: 32)
        XCTAssertEqual(v[16], 1.5); XCTAssertEqual(v[0], -6.5)
    }

    func testQ5_1BlocksMatchFormula() throws {
        try check(.q5_1, GGMLBlockEncoder.q5_1(d: 0.125, m: 4, q: q32) + GGMLBlockEncoder.q5_1(d: -1, m: -0.5, q: q32.reversed()))
    }

    func testQ8_0BlocksMatchFormula() throws {
        let base: [Int] = [-128, 127, 0, -1]
        let q: [Int] = (0..<32).map { (i: Int) -> Int in
            let step: Int = i % 4 == 0 ? i / 4 : -(i / 4)
            return base[i % 4] + step
        }
        try check(.q8_0, GGMLBlockEncoder.q8_0(d: 0.0625, q: q) + GGMLBlockEncoder.q8_0(d: -3.5, q: q.reversed()))
    }

    // Scales/mins ≥ 16 exercise the top-2-bit packing of sub-blocks 4–7.
    private let kScales = [1, 63, 17, 32, 45, 7, 60, 33]
    private let kMins = [0, 5, 63, 48, 21, 62, 16, 9]

    func testQ4_KPackedScalesAndMins() throws {
        let q = (0..<256).map { ($0 * 5 + $0 / 32) % 16 }
        let block = GGMLBlockEncoder.q4_K(d: 0.015625, dmin: 0.0078125, scales: kScales, mins: kMins, q: q)
        try check(.q4_K, block + GGMLBlockEncoder.q4_K(d: -0.5, dmin: 0.25, scales: kMins.reversed(), mins: kScales, q: q.reversed()))
        // Sub-block 6 (elements 192..<224): scale 60 and min 16 come from the 6-bit packing.
        let v = try GGMLDequantizer.dequantize(.q4_K, bytes: block.bytes, count: 256)
        XCTAssertEqual(Double(v[200]), 0.015625 * 60 * Double(q[200]) - 0.0078125 * 16, accuracy: 1e-6)
    }

    func testQ5_KPackedScalesAndHighBits() throws {
        let q = (0..<256).map { ($0 * 11 + $0 / 64) % 32 }
        try check(.q5_K, GGMLBlockEncoder.q5_K(d: 0.03125, dmin: 0.5, scales: kScales, mins: kMins, q: q)
                  + GGMLBlockEncoder.q5_K(d: 1, dmin: -0.125, scales: kMins, mins: kScales.reversed(), q: q.reversed()))
    }

    func testQ6_KBlocksMatchFormula() throws {
        let q = (0..<256).map { ($0 * 13 + $0 / 16) % 64 }
        let scales = [-128, 127, -1, 1, 64, -64, 33, -33, 0, 5, -7, 100, -100, 12, 2, -2]
        try check(.q6_K, GGMLBlockEncoder.q6_K(d: 0.0078125, scales: scales, q: q)
                  + GGMLBlockEncoder.q6_K(d: -0.25, scales: scales.reversed(), q: q.reversed()))
    }

    func testF32F16BF16Scalars() throws {
        var w = GGUFBytes()
        let f32: [Float] = [1.5, -0.0, .infinity, 3.4028235e38, 1e-45]
        for v in f32 { w.u32(v.bitPattern) }
        let got32 = try GGMLDequantizer.dequantize(.f32, bytes: w.bytes, count: f32.count)
        XCTAssertEqual(got32.map(\.bitPattern), f32.map(\.bitPattern))

        // Half specials: 1, −2, smallest subnormal 2^-24, largest subnormal, 65504, ±inf, −0.
        let halves: [UInt16] = [0x3C00, 0xC000, 0x0001, 0x03FF, 0x7BFF, 0x7C00, 0xFC00, 0x8000, 0x0400]
        let want: [Float] = [1, -2, 0x1p-24, 1023 * 0x1p-24, 65504, .infinity, -.infinity, -0.0, 0x1p-14]
        w = GGUFBytes(); for h in halves { w.u16(h) }
        let got16 = try GGMLDequantizer.dequantize(.f16, bytes: w.bytes, count: halves.count)
        XCTAssertEqual(got16.map(\.bitPattern), want.map(\.bitPattern))
        w = GGUFBytes(); w.u16(0x7E00)
        XCTAssertTrue(try GGMLDequantizer.dequantize(.f16, bytes: w.bytes, count: 1)[0].isNaN)

        // BF16 is the top half of an f32.
        let bf: [Float] = [1, -3.140625, 0x1p-126, -.infinity]
        w = GGUFBytes(); for v in bf { w.u16(UInt16(v.bitPattern >> 16)) }
        XCTAssertEqual(try GGMLDequantizer.dequantize(.bf16, bytes: w.bytes, count: bf.count), bf)
    }

    #if !(os(macOS) && arch(x86_64))
    /// Every one of the 65 536 half bit patterns against the standard library's Float16.
    func testF16AllBitPatternsMatchFloat16() throws {
        var w = GGUFBytes()
        for h in 0...UInt16.max { w.u16(h) }
        let got = try GGMLDequantizer.dequantize(.f16, bytes: w.bytes, count: 65_536)
        var mismatches = 0
        for h in 0...Int(UInt16.max) {
            let ref = Float(Float16(bitPattern: UInt16(h)))
            if ref.isNaN ? !got[h].isNaN : ref.bitPattern != got[h].bitPattern { mismatches += 1 }
        }
        XCTAssertEqual(mismatches, 0)
    }
    #endif

    func testRejectsWrongSizesAndTypes() {
        XCTAssertThrowsError(try GGMLDequantizer.dequantize(.q4_1, bytes: [UInt8](repeating: 0, count: 19), count: 32)) {
            XCTAssertTrue("\($0)".contains("need 20 bytes, got 19"), "\($0)")
        }
        XCTAssertThrowsError(try GGMLDequantizer.dequantize(.q8_0, bytes: [], count: 31))
        XCTAssertThrowsError(try GGMLDequantizer.dequantize(.q2_K, bytes: [UInt8](repeating: 0, count: 84), count: 256)) {
            XCTAssertTrue("\($0)".contains("Q2_K"), "\($0)")
        }
    }
}
