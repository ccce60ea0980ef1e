import XCTest
import TensorCore
import TestSupport

final class HalfPrecisionTests: XCTestCase {
    /// Every one of the 65,536 half bit patterns widens to the value the IEEE definition gives and narrows back
    /// to the same bits; NaNs stay NaN (quiet ones keep their payload bit for bit).
    func testAllFloat16PatternsRoundTrip() throws {
        let bits = (0...0xffff).map { UInt16($0) }
        let t = try Tensor(float16Bits: bits, shape: [256, 256])
        let back = t.float16Bits()
        var nanCount = 0
        for (i, h) in bits.enumerated() {
            let f = t[flat: i]
            XCTAssertEqual(f.bitPattern, referenceFloat16ToFloat32(h).bitPattern, "widening 0x\(String(h, radix: 16))")
            let isNaN = h & 0x7c00 == 0x7c00 && h & 0x03ff != 0
            if isNaN {
                nanCount += 1
                XCTAssertTrue(f.isNaN)
                XCTAssertEqual(back[i] & 0x7c00, 0x7c00); XCTAssertNotEqual(back[i] & 0x03ff, 0, "NaN 0x\(String(h, radix: 16)) stays NaN")
                XCTAssertEqual(back[i] & 0x8000, h & 0x8000)
                if h & 0x0200 != 0 { XCTAssertEqual(back[i], h, "quiet NaN keeps its payload") }
            } else {
                XCTAssertEqual(back[i], h, "round trip 0x\(String(h, radix: 16))")
            }
        }
        XCTAssertEqual(nanCount, 2046)
    }

    func testFloat16KnownValues() throws {
        let cases: [(UInt16, Float)] = [
            (0x0000, 0), (0x8000, -0.0), (0x3c00, 1), (0xc000, -2), (0x3555, 0.333251953125),
            (0x7bff, 65504), (0x0400, 6.103515625e-05), (0x0001, 5.960464477539063e-08), (0x03ff, 6.097555160522461e-05),
            (0x7c00, .infinity), (0xfc00, -.infinity),
        ]
        let t = try Tensor(float16Bits: cases.map { $0.0 }, shape: [cases.count])
        for (i, (h, f)) in cases.enumerated() {
            XCTAssertEqual(t[flat: i].bitPattern, f.bitPattern, "0x\(String(h, radix: 16))")
        }
        XCTAssertEqual(t.float16Bits(), cases.map { $0.0 })
    }

    /// Narrowing rounds to nearest, ties to even, in the normal and subnormal ranges and at overflow.
    func testFloat16Rounding() throws {
        let cases: [(Float, UInt16)] = [
            (1 + 1.0 / 2048, 0x3c00),            // tie between 1 and 1+2⁻¹⁰ → even (1)
            (1 + 3.0 / 2048, 0x3c02),            // tie between 1+2⁻¹⁰ and 1+2⁻⁹ → even (1+2⁻⁹)
            (1 + 1.0 / 2048 + 1.0 / 65536, 0x3c01),
            (65519.996, 0x7bff), (65520, 0x7c00), (-65520, 0xfc00), (1e10, 0x7c00), (.infinity, 0x7c00),
            (0.5 * 5.960464477539063e-08, 0x0000),   // half the smallest subnormal: tie → even (0)
            (1.5 * 5.960464477539063e-08, 0x0002),   // tie between 1 and 2 subnormal steps → 2
            (0.50001 * 5.960464477539063e-08, 0x0001),
            (-1e-30, 0x8000), (6.1e-05, 0x03ff),  // 1023.4 subnormal steps
        ]
        let t = Tensor(cases.map { $0.0 }, shape: [cases.count])
        XCTAssertEqual(t.float16Bits(), cases.map { $0.1 })
        let nan = Tensor([Float.nan, -Float.nan, Float(bitPattern: 0x7f80_0001)], shape: [3]).float16Bits()
        for h in nan { XCTAssertEqual(h & 0x7c00, 0x7c00); XCTAssertNotEqual(h & 0x03ff, 0) }
    }

    /// Random Float32 values narrow to the half nearest in exact (Double) arithmetic, ties to even.
    func testFloat16NarrowingMatchesExactRounding() {
        var rng = RandomGenerator(seed: 7)
        var values: [Float] = []
        for _ in 0..<20_000 {  // magnitudes spread over the half range, including subnormals and overflow
            let bits = UInt32(truncatingIfNeeded: rng.nextUInt64())
            let exponent = 100 + bits % 45  // 2^-27 … 2^17
            values.append(Float(bitPattern: (bits & 0x807f_ffff) | (exponent << 23)))
            // and an exact tie between two normal halves (low 13 mantissa bits = 1000000000000b)
            let tieExponent = 113 + bits % 30
            values.append(Float(bitPattern: (bits & 0x807f_e000) | 0x1000 | (tieExponent << 23)))
        }
        let got = Tensor(values, shape: [values.count]).float16Bits()
        for (f, h) in zip(values, got) {
            XCTAssertEqual(h, referenceNarrowToFloat16(f), "\(f) (0x\(String(f.bitPattern, radix: 16)))")
        }
    }

    func testBFloat16WideningIsExactAndRoundingTiesToEven() throws {
        let bits: [UInt16] = [0x3f80, 0xbf80, 0x7f80, 0xff80, 0x0001, 0x7f7f, 0x0000, 0x8000]
        let t = try Tensor(bfloat16Bits: bits, shape: [2, 4])
        for (i, b) in bits.enumerated() { XCTAssertEqual(t[flat: i].bitPattern, UInt32(b) << 16) }
        XCTAssertEqual(t.bfloat16Bits(), bits)
        let ties: [(UInt32, UInt16)] = [
            (0x3f80_8000, 0x3f80), (0x3f81_8000, 0x3f82), (0x3f80_8001, 0x3f81), (0x3f80_7fff, 0x3f80),
            (0x7f7f_ffff, 0x7f80), (0xbf80_8000, 0xbf80), (0x0000_8000, 0x0000), (0x0001_8000, 0x0002),
        ]
        let r = Tensor(ties.map { Float(bitPattern: $0.0) }, shape: [ties.count]).bfloat16Bits()
        XCTAssertEqual(r, ties.map { $0.1 })
        let nan = Tensor([Float(bitPattern: 0x7f80_0001), Float(bitPattern: 0xffff_ffff)], shape: [2]).bfloat16Bits()
        for h in nan { XCTAssertTrue(Float(bitPattern: UInt32(h) << 16).isNaN) }
    }

    /// Random Float32 values narrow to the bfloat16 nearest in Double arithmetic, ties to even.
    func testBFloat16NarrowingMatchesExactRounding() {
        var rng = RandomGenerator(seed: 11)
        var values: [Float] = (0..<20_000).map { _ in
            Float(bitPattern: UInt32(truncatingIfNeeded: rng.nextUInt64()) & 0xff7f_ffff)  // finite
        }
        values += (0..<1000).map { Float(bitPattern: (UInt32($0) << 16) | 0x8000) }  // exact ties
        let got = Tensor(values, shape: [values.count]).bfloat16Bits()
        for (f, h) in zip(values, got) {
            let lo = UInt16(f.bitPattern >> 16)
            let a = bfloat16Value(lo), b = bfloat16Value(lo &+ 1)
            let x = Double(f)
            let expected: UInt16 = abs(x - a) < abs(b - x) ? lo : abs(x - a) > abs(b - x) ? lo &+ 1 : (lo & 1 == 0 ? lo : lo &+ 1)
            XCTAssertEqual(h, expected, "0x\(String(f.bitPattern, radix: 16))")
        }
    }

    func testUnalignedLittleEndianBytesAndBadShapes() throws {
        let halves: [UInt16] = [0x3c00, 0xc000, 0x7bff]
        var bytes: [UInt8] = [0xaa]  // one leading byte: the values start at an odd address
        for h in halves { bytes += [UInt8(h & 0xff), UInt8(h >> 8)] }
        let t = try bytes.withUnsafeBytes { raw in
            try Tensor(littleEndian: UnsafeRawBufferPointer(rebasing: raw[1...]), format: .float16, shape: [3])
        }
        XCTAssertEqual(t.array, [1, -2, 65504])
        let bf = try bytes.withUnsafeBytes { raw in
            try Tensor(littleEndian: UnsafeRawBufferPointer(rebasing: raw[1..<3]), format: .bfloat16, shape: [1])
        }
        XCTAssertEqual(bf[flat: 0].bitPattern, 0x3c00 << 16)
        XCTAssertThrowsError(try Tensor(float16Bits: halves, shape: [2, 2]))
        XCTAssertThrowsError(try Tensor(bfloat16Bits: halves, shape: [-3]))
        XCTAssertThrowsError(try bytes.withUnsafeBytes { try Tensor(littleEndian: $0, format: .float16, shape: [3]) })
    }

    /// Widening and narrowing a million values (parallel path) agree with the element-wise functions.
    func testBulkConversionMatchesScalar() {
        var rng = RandomGenerator(seed: 3)
        let t = rng.normal([1 << 20], std: 100)
        let h = t.float16Bits(), b = t.bfloat16Bits()
        for i in stride(from: 0, to: t.count, by: 997) {
            XCTAssertEqual(h[i], HalfPrecision.narrowToFloat16(t[flat: i]))
            XCTAssertEqual(b[i], HalfPrecision.narrowToBFloat16(t[flat: i]))
        }
    }
}

/// IEEE binary16 value by its definition, in Double (independent of the bit tricks under test).
private func referenceFloat16ToFloat32(_ h: UInt16) -> Float {
    let sign: Double = h & 0x8000 != 0 ? -1 : 1
    let e = Int((h >> 10) & 0x1f), m = Double(h & 0x3ff)
    if e == 31 { return m == 0 ? Float(sign * .infinity) : Float(bitPattern: (h & 0x8000 != 0 ? 0x8000_0000 : 0) | 0x7f80_0000 | (UInt32(h & 0x3ff) << 13)) }
    if e == 0 { return Float(sign * m * 0x1p-24) }
    return Float(sign * (1 + m / 1024) * Double(sign: .plus, exponent: e - 15, significand: 1))
}

/// A bfloat16's value in Double; the all-ones exponent counts as ±2¹²⁸, the threshold rounding overflows to.
private func bfloat16Value(_ b: UInt16) -> Double {
    let f = Float(bitPattern: UInt32(b) << 16)
    return f.isInfinite ? (f < 0 ? -0x1p128 : 0x1p128) : Double(f)
}

/// Nearest half to `f` by exhaustive comparison in Double over the finite halves of the same sign, ties to even.
private func referenceNarrowToFloat16(_ f: Float) -> UInt16 {
    let sign: UInt16 = f.sign == .minus ? 0x8000 : 0
    let x = Double(abs(f))
    if x >= 65520 { return sign | 0x7c00 }
    // Binary search over the monotone positive halves 0x0000...0x7bff.
    var lo: UInt16 = 0, hi: UInt16 = 0x7bff
    while hi - lo > 1 {
        let mid = (lo + hi) / 2
        if Double(referenceFloat16ToFloat32(mid)) <= x { lo = mid } else { hi = mid }
    }
    let a = Double(referenceFloat16ToFloat32(lo)), b = Double(referenceFloat16ToFloat32(hi))
    if x <= a { return sign | lo }
    if x >= b { return sign | hi }
    if x - a < b - x { return sign | lo }
    if x - a > b - x { return sign | hi }
    return sign | (lo & 1 == 0 ? lo : hi)
}
