// Test-side GGUF writer and ggml block assemblers, written from the format definitions so the
// reader and dequantiser are checked against an independent encoding.
import Foundation
import Formats

/// Little-endian byte assembly.
struct GGUFBytes {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes += [UInt8(v & 0xFF), UInt8(v >> 8)] }
    mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8((v >> (8 * UInt32(i))) & 0xFF)) } }
    mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8((v >> (8 * UInt64(i))) & 0xFF)) } }
    mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }
    mutating func value(_ v: GGUFValue) {
        switch v {
        case let .uint8(x): u8(x)
        case let .int8(x): u8(UInt8(bitPattern: x))
        case let .uint16(x): u16(x)
        case let .int16(x): u16(UInt16(bitPattern: x))
        case let .uint32(x): u32(x)
        case let .int32(x): u32(UInt32(bitPattern: x))
        case let .uint64(x): u64(x)
        case let .int64(x): u64(UInt64(bitPattern: x))
        case let .float32(x): u32(x.bitPattern)
        case let .float64(x): u64(x.bitPattern)
        case let .bool(x): u8(x ? 1 : 0)
        case let .string(x): string(x)
        case let .array(type, values):
            u32(type.rawValue); u64(UInt64(values.count))
            for e in values { value(e) }
        }
    }
    mutating func pad(to alignment: Int) { while bytes.count % alignment != 0 { bytes.append(0) } }
}

/// A GGUF file assembled in memory; fields can be set to invalid values to test rejection.
struct GGUFTestFile {
    struct TensorEntry { var name: String; var dims: [UInt64]; var type: UInt32; var offset: UInt64 }
    var version: UInt32 = 3
    var metadata: [(String, GGUFValue)] = []
    var tensors: [TensorEntry] = []
    var alignment = 32
    var data: [UInt8] = []
    var tensorCountOverride: UInt64?

    /// Adds a tensor whose data is appended at the next aligned data offset.
    mutating func addTensor(_ name: String, dims: [Int], type: GGMLType, bytes: [UInt8]) {
        while data.count % alignment != 0 { data.append(0) }
        tensors.append(TensorEntry(name: name, dims: dims.map(UInt64.init), type: type.rawValue, offset: UInt64(data.count)))
        data += bytes
    }

    func encoded() -> [UInt8] {
        var w = GGUFBytes()
        w.bytes = Array("GGUF".utf8)
        w.u32(version)
        w.u64(tensorCountOverride ?? UInt64(tensors.count))
        w.u64(UInt64(metadata.count))
        for (key, value) in metadata { w.string(key); w.u32(value.type.rawValue); w.value(value) }
        for t in tensors {
            w.string(t.name); w.u32(UInt32(t.dims.count))
            for d in t.dims { w.u64(d) }
            w.u32(t.type); w.u64(t.offset)
        }
        w.pad(to: alignment)
        return w.bytes + data
    }
}

enum GGUFTemp {
    /// Writes `bytes` to a fresh temporary file and returns its path.
    static func write(_ bytes: [UInt8], name: String = "test") throws -> String {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("lorakit-gguf-\(name)-\(UUID().uuidString).gguf")
        try Data(bytes).write(to: url)
        return url.path
    }

    static func open(_ file: GGUFTestFile, name: String = "test") throws -> GGUFFile {
        try GGUFFile(path: write(file.encoded(), name: name))
    }
}

/// IEEE half bits of a float that is exactly representable as a normal half (or zero, ±infinity, NaN).
func halfBits(_ f: Float) -> UInt16 {
    if f == 0 { return f.sign == .minus ? 0x8000 : 0 }
    if f.isNaN { return 0x7E00 }
    if f.isInfinite { return f.sign == .minus ? 0xFC00 : 0x7C00 }
    let bits = f.bitPattern
    let sign = UInt16((bits >> 16) & 0x8000)
    let exponent = Int((bits >> 23) & 0xFF) - 127 + 15
    precondition(exponent > 0 && exponent < 31 && bits & 0x1FFF == 0, "\(f) is not an exact normal half")
    return sign | UInt16(exponent) << 10 | UInt16((bits >> 13) & 0x3FF)
}

/// Deterministic test values (SplitMix64).
struct TestRandom {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
    mutating func float(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * Float(next() >> 40) / Float(1 << 24) }
    /// A random half-exact scale: ±k/2^e with small k.
    mutating func halfScale() -> Float { Float(int(1...1023)) / Float(1 << int(10...13)) * (next() & 1 == 0 ? 1 : -1) }
}
