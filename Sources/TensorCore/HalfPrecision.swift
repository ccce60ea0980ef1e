// IEEE half (binary16) and bfloat16 storage formats, as UInt16 bit patterns.
//
// Checkpoints store weights in 16 bits; LoRAKit computes in Float32. The conversions are branch-free
// bit manipulation (every case becomes a select) so the loops vectorise and need no F16C instruction.
// Widening is exact for every bit pattern (subnormals, ±inf, NaN payloads). Narrowing rounds to nearest,
// ties to even, overflows to ±inf and keeps NaN a (quiet) NaN.

/// Bulk conversions between Float32 and 16-bit float bit patterns.
public enum HalfPrecision {
    /// Elements per parallel chunk: conversions are ~1 ns per element, so smaller chunks do not pay.
    static let minChunk = 1 << 16

    /// Float16 bits → Float32, exactly. `source.count` must equal `destination.count`.
    public static func float16ToFloat32(_ source: UnsafeBufferPointer<UInt16>, _ destination: UnsafeMutableBufferPointer<Float>) {
        precondition(source.count == destination.count, "float16ToFloat32: \(source.count) values into \(destination.count)")
        guard let src = source.baseAddress, let dst = destination.baseAddress else { return }
        Parallel.forRanges(source.count, minChunk: minChunk) { r in
            for i in r { dst[i] = widenFloat16(src[i]) }
        }
    }

    /// Float32 → Float16 bits, rounding to nearest even. `source.count` must equal `destination.count`.
    public static func float32ToFloat16(_ source: UnsafeBufferPointer<Float>, _ destination: UnsafeMutableBufferPointer<UInt16>) {
        precondition(source.count == destination.count, "float32ToFloat16: \(source.count) values into \(destination.count)")
        guard let src = source.baseAddress, let dst = destination.baseAddress else { return }
        Parallel.forRanges(source.count, minChunk: minChunk) { r in
            for i in r { dst[i] = narrowToFloat16(src[i]) }
        }
    }

    /// BFloat16 bits → Float32, exactly (the bits become the high half of the Float32).
    public static func bfloat16ToFloat32(_ source: UnsafeBufferPointer<UInt16>, _ destination: UnsafeMutableBufferPointer<Float>) {
        precondition(source.count == destination.count, "bfloat16ToFloat32: \(source.count) values into \(destination.count)")
        guard let src = source.baseAddress, let dst = destination.baseAddress else { return }
        Parallel.forRanges(source.count, minChunk: minChunk) { r in
            for i in r { dst[i] = Float(bitPattern: UInt32(src[i]) << 16) }
        }
    }

    /// Float32 → BFloat16 bits, rounding to nearest even. `source.count` must equal `destination.count`.
    public static func float32ToBFloat16(_ source: UnsafeBufferPointer<Float>, _ destination: UnsafeMutableBufferPointer<UInt16>) {
        precondition(source.count == destination.count, "float32ToBFloat16: \(source.count) values into \(destination.count)")
        guard let src = source.baseAddress, let dst = destination.baseAddress else { return }
        Parallel.forRanges(source.count, minChunk: minChunk) { r in
            for i in r { dst[i] = narrowToBFloat16(src[i]) }
        }
    }

    /// Little-endian 16-bit values at any byte alignment (as they sit in a memory-mapped file) → Float32.
    public static func float32(fromLittleEndian bytes: UnsafeRawBufferPointer, format: Format,
                               into destination: UnsafeMutableBufferPointer<Float>) {
        precondition(bytes.count == 2 * destination.count, "\(format): \(bytes.count) bytes into \(destination.count) values")
        guard let src = bytes.baseAddress, let dst = destination.baseAddress else { return }
        Parallel.forRanges(destination.count, minChunk: minChunk) { r in
            for i in r {
                let bits = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                dst[i] = format == .float16 ? widenFloat16(bits) : Float(bitPattern: UInt32(bits) << 16)
            }
        }
    }

    /// The two 16-bit formats.
    public enum Format: String, Sendable {
        /// IEEE binary16: 1 sign, 5 exponent, 10 mantissa bits.
        case float16
        /// bfloat16: the high 16 bits of a Float32 (8 exponent, 7 mantissa bits).
        case bfloat16
    }

    /// One Float16 bit pattern → Float32. Normal numbers re-bias the exponent; subnormals are scaled by
    /// an exact float subtraction; inf/NaN keep an all-ones exponent and their payload.
    @inline(__always)
    public static func widenFloat16(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let shifted = UInt32(h & 0x7fff) << 13             // exponent and mantissa in Float32 position
        let exponent = shifted & 0x0f80_0000
        let normal = shifted &+ ((127 - 15) << 23)
        let infOrNaN = normal &+ ((128 - 16) << 23)        // exponent 31 → 255
        // Subnormal (exponent 0): 2^-14 · 0.m = (1.m · 2^-14) − 2^-14, both exact in Float32.
        let subnormal = Float(bitPattern: normal &+ (1 << 23)) - Float(bitPattern: 113 << 23)
        var magnitude = exponent == 0x0f80_0000 ? infOrNaN : normal
        magnitude = exponent == 0 ? subnormal.bitPattern : magnitude
        return Float(bitPattern: magnitude | sign)
    }

    /// One Float32 → Float16 bit pattern, round to nearest even.
    @inline(__always)
    public static func narrowToFloat16(_ f: Float) -> UInt16 {
        let bits = f.bitPattern
        let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
        let a = bits & 0x7fff_ffff
        // ≥ 65520 (halfway above the largest half, 65504) rounds to inf; NaN stays NaN with its top payload bits.
        let nan = UInt32(0x7e00) | ((a >> 13) & 0x03ff)
        let overflow: UInt32 = a > 0x7f80_0000 ? nan : 0x7c00
        // Below 2^-14 the result is subnormal: adding 0.5 lets the FPU round the mantissa at the 2^-24 step
        // (round-to-nearest-even), after which the low bits are the half's bits.
        let denormMagic: UInt32 = ((127 - 15) + (23 - 10) + 1) << 23
        let sub = (Float(bitPattern: a) + Float(bitPattern: denormMagic)).bitPattern &- denormMagic
        // Normal: re-bias, add 0xfff plus the lowest kept bit so ties go to even, then drop 13 bits.
        let odd = (a >> 13) & 1
        let normal = (a &+ (UInt32(bitPattern: Int32(15 - 127)) << 23) &+ 0xfff &+ odd) >> 13
        var result = a >= (143 << 23) ? overflow : normal
        result = a < (113 << 23) ? sub : result
        return UInt16(truncatingIfNeeded: result) | sign
    }

    /// One Float32 → BFloat16 bit pattern, round to nearest even; NaN stays a quiet NaN.
    @inline(__always)
    public static func narrowToBFloat16(_ f: Float) -> UInt16 {
        let bits = f.bitPattern
        let rounded = (bits &+ 0x7fff &+ ((bits >> 16) & 1)) >> 16
        let quietNaN = (bits >> 16) | 0x0040
        return UInt16(truncatingIfNeeded: (bits & 0x7fff_ffff) > 0x7f80_0000 ? quietNaN : rounded)
    }
}

extension Tensor {
    /// A Float32 tensor from IEEE half bit patterns (exact). Throws if the count does not fill `shape`.
    public init(float16Bits bits: [UInt16], shape: [Int]) throws {
        try self.init(sixteenBit: bits, shape: shape, format: .float16)
    }

    /// A Float32 tensor from bfloat16 bit patterns (exact). Throws if the count does not fill `shape`.
    public init(bfloat16Bits bits: [UInt16], shape: [Int]) throws {
        try self.init(sixteenBit: bits, shape: shape, format: .bfloat16)
    }

    /// A Float32 tensor from little-endian 16-bit floats at any alignment (e.g. a slice of a mapped file).
    public init(littleEndian bytes: UnsafeRawBufferPointer, format: HalfPrecision.Format, shape: [Int]) throws {
        let count = try Tensor.validatedCount(shape, operation: "Tensor(littleEndian:format: \(format))")
        guard bytes.count == 2 * count else {
            throw TensorError.shapeMismatch(operation: "Tensor(littleEndian:format: \(format)) byte count",
                                            expected: [2 * count], got: [bytes.count])
        }
        self.init(zeros: shape)
        withUnsafeMutableBufferPointer { HalfPrecision.float32(fromLittleEndian: bytes, format: format, into: $0) }
    }

    /// IEEE half bit patterns of every element, rounded to nearest even (overflow → ±inf).
    public func float16Bits() -> [UInt16] {
        var out = [UInt16](repeating: 0, count: count)
        withUnsafeBufferPointer { src in out.withUnsafeMutableBufferPointer { HalfPrecision.float32ToFloat16(src, $0) } }
        return out
    }

    /// BFloat16 bit patterns of every element, rounded to nearest even.
    public func bfloat16Bits() -> [UInt16] {
        var out = [UInt16](repeating: 0, count: count)
        withUnsafeBufferPointer { src in out.withUnsafeMutableBufferPointer { HalfPrecision.float32ToBFloat16(src, $0) } }
        return out
    }

    private init(sixteenBit bits: [UInt16], shape: [Int], format: HalfPrecision.Format) throws {
        let operation = format == .float16 ? "Tensor(float16Bits:shape:)" : "Tensor(bfloat16Bits:shape:)"
        let count = try Tensor.validatedCount(shape, operation: operation)
        guard bits.count == count else {
            throw TensorError.shapeMismatch(operation: operation, expected: [bits.count], got: shape)
        }
        self.init(zeros: shape)
        withUnsafeMutableBufferPointer { dst in bits.withUnsafeBufferPointer { src in
            if format == .float16 { HalfPrecision.float16ToFloat32(src, dst) } else { HalfPrecision.bfloat16ToFloat32(src, dst) }
        } }
    }

    /// Element count of `shape`, rejecting negative dimensions and overflowing products.
    private static func validatedCount(_ shape: [Int], operation: String) throws -> Int {
        var count = 1
        for d in shape {
            guard d >= 0 else { throw TensorError.invalidShape(shape, reason: "negative dimension in \(operation)") }
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw TensorError.invalidShape(shape, reason: "element count overflows in \(operation)") }
            count = product
        }
        return count
    }
}
