// Float32 → ggml block formats, following ggml's reference quantizers (quantize_row_*_ref in ggml-quants.c,
// mirrored by gguf-py's quants.py) so a file LoRAKit writes holds the same bytes llama.cpp's own converter
// would write for the same floats:
//   Q8_0: d = max|x| / 127, q = round-half-away(x / d)                       (block: f16 d, 32 × int8)
//   Q4_0: m = the element of largest |x| (first on ties), d = m / −8, q = min(15, trunc(x/d + 8.5))
//   Q4_1: d = (max − min) / 15, q = min(15, trunc((x − min)/d + 0.5)), m = min  (block: f16 d, f16 m, nibbles)
// The division is done as a multiply by 1/d in Float32 (d = 0 gives 1/d = 0), exactly as the reference does.
import TensorCore

/// Encoders from Float32 to the ggml types LoRAKit writes (F32, F16, BF16, Q8_0, Q4_0, Q4_1).
public enum GGMLQuantizer {
    /// Types `encode` accepts.
    public static let encodableTypes: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1]

    /// Encodes `values` (row-major rows of `rowLength`) as `type`. `rowLength` must be a multiple of the
    /// type's block size; `name` is used in the error.
    public static func encode(_ values: UnsafeBufferPointer<Float>, rowLength: Int, as type: GGMLType,
                              name: String = "<tensor>") throws -> [UInt8] {
        guard encodableTypes.contains(type) else {
            throw GGUFError.invalidQuantizedData(tensor: name, reason: "LoRAKit cannot write type \(type.name) (writable: \(encodableTypes.map(\.name).joined(separator: ", ")))")
        }
        guard rowLength > 0 || values.isEmpty, rowLength == 0 || values.count % rowLength == 0 else {
            throw GGUFError.invalidQuantizedData(tensor: name, reason: "\(values.count) values do not form rows of \(rowLength)")
        }
        guard rowLength % type.blockSize == 0, let size = type.byteCount(elements: values.count) else {
            throw GGUFError.invalidQuantizedData(tensor: name,
                reason: "row length \(rowLength) is not a multiple of the \(type.name) block size \(type.blockSize)")
        }
        if type.blockSize > 1, let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw GGUFError.invalidQuantizedData(tensor: name, reason: "value #\(bad) is \(values[bad]); \(type.name) blocks need finite values")
        }
        var out = [UInt8](repeating: 0, count: size)
        guard let src = values.baseAddress, size > 0 else { return out }
        out.withUnsafeMutableBytes { raw in
            let dst = raw.baseAddress!
            let count = values.count
            switch type {
            case .f32: for i in 0..<count { dst.storeBytes(of: src[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
            case .f16: for i in 0..<count { dst.storeBytes(of: HalfPrecision.narrowToFloat16(src[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            case .bf16: for i in 0..<count { dst.storeBytes(of: HalfPrecision.narrowToBFloat16(src[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            case .q8_0, .q4_0, .q4_1:
                let blocks = count / 32
                // Blocks are independent: quantize in parallel chunks of ~64 K values.
                Parallel.forRanges(blocks, minChunk: 2048) { range in
                    for b in range {
                        let x = src + 32 * b, y = dst + b * type.blockBytes
                        switch type {
                        case .q8_0: q8_0(x, y)
                        case .q4_0: q4_0(x, y)
                        default: q4_1(x, y)
                        }
                    }
                }
            default: break
            }
        }
        return out
    }

    /// Encodes a tensor whose last dimension is the ggml row (ne0), e.g. a Linear weight [out, in].
    public static func encode(_ tensor: Tensor, as type: GGMLType, name: String = "<tensor>") throws -> [UInt8] {
        let rowLength = tensor.shape.last ?? 1
        return try tensor.withUnsafeBufferPointer { try encode($0, rowLength: rowLength, as: type, name: name) }
    }

    @inline(__always) private static func half(_ f: Float, _ y: UnsafeMutableRawPointer, _ offset: Int) {
        y.storeBytes(of: HalfPrecision.narrowToFloat16(f).littleEndian, toByteOffset: offset, as: UInt16.self)
    }

    static func q8_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(x[j])) }
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        half(d, y, 0)
        for j in 0..<32 {
            // roundf: halfway cases away from zero.
            let q = (x[j] * id).rounded(.toNearestOrAwayFromZero)
            y.storeBytes(of: Int8(q), toByteOffset: 2 + j, as: Int8.self)
        }
    }

    static func q4_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        var amax: Float = 0, signedMax: Float = 0
        for j in 0..<32 where amax < abs(x[j]) { amax = abs(x[j]); signedMax = x[j] }
        let d = signedMax / -8
        let id: Float = d != 0 ? 1 / d : 0
        half(d, y, 0)
        for j in 0..<16 {
            // (int8_t)(v + 8.5f) truncates toward zero; v·id lies in [−8, 8] so the sum is positive.
            let lo = min(15, Int8((x[j] * id + 8.5).rounded(.towardZero)))
            let hi = min(15, Int8((x[j + 16] * id + 8.5).rounded(.towardZero)))
            y.storeBytes(of: UInt8(lo) | UInt8(hi) << 4, toByteOffset: 2 + j, as: UInt8.self)
        }
    }

    static func q4_1(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
        for j in 0..<32 { lo = min(lo, x[j]); hi = max(hi, x[j]) }
        let d = (hi - lo) / 15
        let id: Float = d != 0 ? 1 / d : 0
        half(d, y, 0)
        half(lo, y, 2)
        for j in 0..<16 {
            let a = min(15, Int8(((x[j] - lo) * id + 0.5).rounded(.towardZero)))
            let b = min(15, Int8(((x[j + 16] - lo) * id + 0.5).rounded(.towardZero)))
            y.storeBytes(of: UInt8(a) | UInt8(b) << 4, toByteOffset: 4 + j, as: UInt8.self)
        }
    }
}
