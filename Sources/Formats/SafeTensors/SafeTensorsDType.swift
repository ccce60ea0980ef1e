// Element types a safetensors file may declare, as far as LoRAKit reads and writes them.

/// A safetensors element type; the raw value is the header's `dtype` string.
public enum SafeTensorsDType: String, CaseIterable, Sendable {
    case f64 = "F64"
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case i64 = "I64"
    case i32 = "I32"
    case i16 = "I16"
    case i8 = "I8"
    case u8 = "U8"
    case bool = "BOOL"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    /// True for the floating-point types a `Tensor` can be stored as.
    public var isFloatingPoint: Bool {
        switch self {
        case .f64, .f32, .f16, .bf16: return true
        default: return false
        }
    }

    /// Rank in the reference implementation's `Dtype` enum (declared in increasing alignment, with
    /// F64 before I64). Its serializer writes tensors by descending rank, then by name, so wide types come
    /// first and every tensor stays aligned after the 8-byte-padded header. Checked against safetensors 0.8.0.
    var referenceOrder: Int {
        switch self {
        case .bool: return 0
        case .u8: return 1
        case .i8: return 2
        case .i16: return 3
        case .f16: return 4
        case .bf16: return 5
        case .i32: return 6
        case .f32: return 7
        case .f64: return 8
        case .i64: return 9
        }
    }
}
