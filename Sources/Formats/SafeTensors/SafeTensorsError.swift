// Every way a safetensors file (or a request to write one) can be wrong. Each case carries the file path
// and, where there is one, the tensor and the field, so the message alone locates the problem.

/// Typed errors of the safetensors reader and writer.
public enum SafeTensorsError: Error, Equatable, CustomStringConvertible {
    /// The file could not be opened, sized or mapped.
    case cannotOpen(path: String, reason: String)
    /// Shorter than the 8-byte header length field.
    case fileTooSmall(path: String, byteCount: Int)
    /// The declared header length is above the reader's limit (checked before anything is allocated).
    case headerTooLarge(path: String, headerLength: UInt64, limit: Int)
    /// The declared header length runs past the end of the file.
    case headerBeyondFile(path: String, headerLength: UInt64, fileSize: Int)
    /// The header bytes are not valid UTF-8.
    case headerNotUTF8(path: String)
    /// The header is not well-formed JSON; `byteOffset` counts from the start of the header.
    case malformedJSON(path: String, byteOffset: Int, reason: String)
    /// The header's JSON value is not an object.
    case headerNotObject(path: String)
    /// `__metadata__` is not an object of string values, or repeats a key.
    case invalidMetadata(path: String, key: String, reason: String)
    /// A tensor entry is not an object, or one of its fields is missing or of the wrong JSON type.
    case invalidField(path: String, tensor: String, field: String, reason: String)
    /// The `dtype` string is not one LoRAKit supports.
    case unsupportedDType(path: String, tensor: String, dtype: String)
    /// A dimension in `shape` is negative.
    case negativeDimension(path: String, tensor: String, shape: [Int])
    /// The element or byte count of `shape` overflows a 64-bit integer.
    case shapeOverflow(path: String, tensor: String, shape: [String])
    /// `data_offsets` is not `[begin, end]` with 0 ≤ begin ≤ end.
    case invalidOffsets(path: String, tensor: String, begin: Int, end: Int)
    /// `end - begin` differs from elements × dtype size.
    case byteCountMismatch(path: String, tensor: String, begin: Int, end: Int, dtype: SafeTensorsDType, shape: [Int],
                           neededBytes: Int)
    /// `data_offsets` reach past the data buffer.
    case offsetsOutOfRange(path: String, tensor: String, begin: Int, end: Int, bufferSize: Int)
    /// Two tensors share bytes.
    case overlappingTensors(path: String, tensor: String, other: String, begin: Int, otherEnd: Int)
    /// Bytes no tensor claims lie before this tensor (the buffer must be covered contiguously).
    case gapBeforeTensor(path: String, tensor: String, expectedBegin: Int, begin: Int)
    /// Bytes no tensor claims lie at the end of the buffer.
    case trailingBytes(path: String, coveredBytes: Int, bufferSize: Int)
    /// The same tensor name appears twice (in a header, or in a writer's input).
    case duplicateTensor(path: String, tensor: String)
    /// No tensor of that name in the file.
    case tensorNotFound(path: String, tensor: String)
    /// The tensor's dtype cannot serve the request (e.g. `int64s` of an F32 tensor).
    case wrongDType(path: String, tensor: String, dtype: SafeTensorsDType, expected: String)
    /// An integer does not fit the requested type (e.g. `int32s` of an I64 tensor holding 2^40).
    case valueOutOfRange(path: String, tensor: String, index: Int, value: Int64, target: String)
    /// The writer's input has `values.count` different from the product of `shape`, or a negative dimension.
    case elementCountMismatch(path: String, tensor: String, shape: [Int], count: Int)
    /// The writer refuses this tensor name (empty, or the reserved `__metadata__`).
    case invalidTensorName(path: String, tensor: String, reason: String)
    /// Writing, syncing or renaming the output failed; the previous file, if any, is untouched.
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            return "\(path): cannot open: \(reason)"
        case let .fileTooSmall(path, count):
            return "\(path): \(count) bytes is too small for a safetensors file (needs at least the 8-byte header length)"
        case let .headerTooLarge(path, length, limit):
            return "\(path): header length \(length) exceeds the limit of \(limit) bytes"
        case let .headerBeyondFile(path, length, size):
            return "\(path): header length \(length) runs past the end of the \(size)-byte file"
        case let .headerNotUTF8(path):
            return "\(path): header is not valid UTF-8"
        case let .malformedJSON(path, offset, reason):
            return "\(path): header JSON is malformed at byte \(offset): \(reason)"
        case let .headerNotObject(path):
            return "\(path): header JSON is not an object"
        case let .invalidMetadata(path, key, reason):
            return "\(path): __metadata__ key '\(key)': \(reason)"
        case let .invalidField(path, tensor, field, reason):
            return "\(path): tensor '\(tensor)': field '\(field)' \(reason)"
        case let .unsupportedDType(path, tensor, dtype):
            let known = SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            return "\(path): tensor '\(tensor)': unsupported dtype '\(dtype)' (supported: \(known))"
        case let .negativeDimension(path, tensor, shape):
            return "\(path): tensor '\(tensor)': shape \(shape) has a negative dimension"
        case let .shapeOverflow(path, tensor, shape):
            return "\(path): tensor '\(tensor)': shape [\(shape.joined(separator: ", "))] overflows a 64-bit size"
        case let .invalidOffsets(path, tensor, begin, end):
            return "\(path): tensor '\(tensor)': data_offsets [\(begin), \(end)] must satisfy 0 <= begin <= end"
        case let .byteCountMismatch(path, tensor, begin, end, dtype, shape, needed):
            return "\(path): tensor '\(tensor)': data_offsets [\(begin), \(end)] hold \(end - begin) bytes "
                + "but \(dtype.rawValue) \(shape) needs \(needed)"
        case let .offsetsOutOfRange(path, tensor, begin, end, size):
            return "\(path): tensor '\(tensor)': data_offsets [\(begin), \(end)] reach past the \(size)-byte data buffer"
        case let .overlappingTensors(path, tensor, other, begin, otherEnd):
            return "\(path): tensor '\(tensor)' starts at \(begin), inside tensor '\(other)' which ends at \(otherEnd)"
        case let .gapBeforeTensor(path, tensor, expected, begin):
            return "\(path): tensor '\(tensor)' starts at \(begin) but the previous tensor ends at \(expected); "
                + "tensors must cover the data buffer contiguously"
        case let .trailingBytes(path, covered, size):
            return "\(path): tensors cover \(covered) bytes but the data buffer holds \(size)"
        case let .duplicateTensor(path, tensor):
            return "\(path): tensor '\(tensor)' appears more than once"
        case let .tensorNotFound(path, tensor):
            return "\(path): no tensor named '\(tensor)'"
        case let .wrongDType(path, tensor, dtype, expected):
            return "\(path): tensor '\(tensor)' is \(dtype.rawValue), expected \(expected)"
        case let .valueOutOfRange(path, tensor, index, value, target):
            return "\(path): tensor '\(tensor)': element \(index) = \(value) does not fit \(target)"
        case let .elementCountMismatch(path, tensor, shape, count):
            return "\(path): tensor '\(tensor)': \(count) values do not fill shape \(shape)"
        case let .invalidTensorName(path, tensor, reason):
            return "\(path): tensor name '\(tensor)' \(reason)"
        case let .writeFailed(path, reason):
            return "\(path): write failed: \(reason)"
        }
    }
}
