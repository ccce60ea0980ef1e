// Element conversions between safetensors storage types and Float32. File bytes are little-endian and
// may sit at any alignment (foreign writers need not align), so sources are read with unaligned loads.
// Half-precision scalars come from TensorCore.HalfPrecision (exact widening, round-to-nearest-even narrowing).
import TensorCore

enum SafeTensorsElementConversion {
    /// Elements per thread chunk: conversions are memory-bound, so only large tensors are split.
    private static let parallelChunk = 1 << 18

    /// Converts `count` elements of `dtype` at `source` to Float32 (integers round to nearest when wider
    /// than 24 bits, as any cast to float does; booleans are any non-zero byte → 1).
    static func decode(_ source: UnsafeRawPointer, dtype: SafeTensorsDType, count: Int,
                       into destination: UnsafeMutablePointer<Float>) {
        Parallel.forRanges(count, minChunk: parallelChunk) { range in
            switch dtype {
            case .f32:
                // Little-endian host: the file bytes are the floats.
                UnsafeMutableRawPointer(destination + range.lowerBound)
                    .copyMemory(from: source + range.lowerBound * 4, byteCount: range.count * 4)
            case .f64:
                for i in range { destination[i] = Float(Double(bitPattern: UInt64(littleEndian: source.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))) }
            case .f16:
                for i in range { destination[i] = HalfPrecision.widenFloat16(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
            case .bf16:
                for i in range { destination[i] = Float(bitPattern: UInt32(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) << 16) }  // bf16 = top half of a float32
            case .i64:
                for i in range { destination[i] = Float(Int64(littleEndian: source.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))) }
            case .i32:
                for i in range { destination[i] = Float(Int32(littleEndian: source.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))) }
            case .i16:
                for i in range { destination[i] = Float(Int16(littleEndian: source.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))) }
            case .i8:
                for i in range { destination[i] = Float(source.load(fromByteOffset: i, as: Int8.self)) }
            case .u8:
                for i in range { destination[i] = Float(source.load(fromByteOffset: i, as: UInt8.self)) }
            case .bool:
                for i in range { destination[i] = source.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0 }
            }
        }
    }

    /// Reads element `i` of an integer dtype exactly as Int64 (floating dtypes are rejected by callers).
    @inline(__always)
    static func integer(at i: Int, of source: UnsafeRawPointer, dtype: SafeTensorsDType) -> Int64 {
        switch dtype {
        case .i64: return Int64(littleEndian: source.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))
        case .i32: return Int64(Int32(littleEndian: source.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))
        case .i16: return Int64(Int16(littleEndian: source.loadUnaligned(fromByteOffset: i * 2, as: Int16.self)))
        case .i8: return Int64(source.load(fromByteOffset: i, as: Int8.self))
        case .u8: return Int64(source.load(fromByteOffset: i, as: UInt8.self))
        case .bool: return source.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0
        case .f64, .f32, .f16, .bf16: preconditionFailure("integer(at:) called on floating dtype \(dtype)")
        }
    }

    /// Writes `count` Float32 values as `dtype` (a floating type) at `destination`, little-endian.
    static func encode(_ source: UnsafePointer<Float>, count: Int, as dtype: SafeTensorsDType,
                       into destination: UnsafeMutableRawPointer) {
        switch dtype {
        case .f32:
            destination.copyMemory(from: source, byteCount: count * 4)
        case .f64:
            for i in 0..<count { destination.storeBytes(of: Double(source[i]).bitPattern.littleEndian, toByteOffset: i * 8, as: UInt64.self) }
        case .f16:
            for i in 0..<count { destination.storeBytes(of: HalfPrecision.narrowToFloat16(source[i]).littleEndian, toByteOffset: i * 2, as: UInt16.self) }
        case .bf16:
            for i in 0..<count { destination.storeBytes(of: HalfPrecision.narrowToBFloat16(source[i]).littleEndian, toByteOffset: i * 2, as: UInt16.self) }
        case .i64, .i32, .i16, .i8, .u8, .bool:
            preconditionFailure("encode(_:as:) called with integer dtype \(dtype); the writer rejects this earlier")
        }
    }
}

#if _endian(big)
#error("safetensors data is little-endian; the F32 fast paths assume a little-endian host")
#endif
