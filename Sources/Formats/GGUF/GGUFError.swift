// Typed errors for GGUF reading and quantized kernels; every case names the file and the key or tensor.

/// Why a GGUF file (or a block of quantized bytes) was rejected.
public enum GGUFError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(file: String, reason: String)
    /// A field runs past the end of the file.
    case truncated(file: String, field: String, offset: Int, needed: Int, fileSize: Int)
    case badMagic(file: String, found: [UInt8])
    case unsupportedVersion(file: String, version: UInt32)
    case bigEndian(file: String)
    /// A count or length that cannot fit in the bytes that remain (rejected before allocating).
    case absurdCount(file: String, field: String, count: UInt64, remainingBytes: Int)
    case invalidUTF8(file: String, field: String)
    case unknownValueType(file: String, key: String, rawType: UInt32)
    case nestingTooDeep(file: String, key: String, depth: Int)
    case duplicateKey(file: String, key: String)
    case invalidValue(file: String, key: String, reason: String)
    case invalidAlignment(file: String, value: String)
    case invalidTensorInfo(file: String, tensor: String, reason: String)
    case unknownTensorType(file: String, tensor: String, rawType: UInt32)
    case duplicateTensor(file: String, tensor: String)
    case tensorOutOfBounds(file: String, tensor: String, offset: UInt64, byteCount: Int, dataSize: Int)
    case misalignedTensor(file: String, tensor: String, offset: Int, alignment: Int)
    case overlappingTensors(file: String, first: String, second: String)
    case tensorNotFound(file: String, tensor: String)
    case unsupportedTensorType(file: String, tensor: String, type: GGMLType)
    /// A tensor used as a weight matrix must be 2-D in ggml order [in, out] (trailing 1s allowed).
    case notAMatrix(file: String, tensor: String, dimensions: [Int])
    /// Raw quantized bytes handed to `QuantizedMatrix` or `GGMLDequantizer` do not match the stated shape.
    case invalidQuantizedData(tensor: String, reason: String)
    /// A matmul/matvec argument has the wrong shape.
    case shapeMismatch(tensor: String, operation: String, expected: [Int], got: [Int])

    public var description: String {
        switch self {
        case let .cannotOpen(file, reason):
            return "GGUF file '\(file)': cannot open: \(reason)"
        case let .truncated(file, field, offset, needed, size):
            return "GGUF file '\(file)': truncated while reading \(field): needs \(needed) bytes at offset \(offset), file has \(size)"
        case let .badMagic(file, found):
            let hex = found.map { String($0, radix: 16) }.joined(separator: " ")
            return "GGUF file '\(file)': not a GGUF file (magic bytes \(hex), expected 47 47 55 46 \"GGUF\")"
        case let .unsupportedVersion(file, version):
            let hint = version == 1 ? " (GGUF v1 uses 32-bit counts; re-convert the model with a current llama.cpp)" : ""
            return "GGUF file '\(file)': unsupported GGUF version \(version); versions 2 and 3 are supported\(hint)"
        case let .bigEndian(file):
            return "GGUF file '\(file)': big-endian GGUF files are not supported"
        case let .absurdCount(file, field, count, remaining):
            return "GGUF file '\(file)': \(field) = \(count) cannot fit in the \(remaining) bytes that remain"
        case let .invalidUTF8(file, field):
            return "GGUF file '\(file)': \(field) is not valid UTF-8"
        case let .unknownValueType(file, key, raw):
            return "GGUF file '\(file)': metadata key '\(key)' has unknown value type \(raw)"
        case let .nestingTooDeep(file, key, depth):
            return "GGUF file '\(file)': metadata key '\(key)' nests arrays deeper than \(depth) levels"
        case let .duplicateKey(file, key):
            return "GGUF file '\(file)': metadata key '\(key)' appears twice"
        case let .invalidValue(file, key, reason):
            return "GGUF file '\(file)': metadata key '\(key)': \(reason)"
        case let .invalidAlignment(file, value):
            return "GGUF file '\(file)': general.alignment = \(value) is not a positive power of two"
        case let .invalidTensorInfo(file, tensor, reason):
            return "GGUF file '\(file)': tensor '\(tensor)': \(reason)"
        case let .unknownTensorType(file, tensor, raw):
            return "GGUF file '\(file)': tensor '\(tensor)' has unknown ggml type id \(raw)"
        case let .duplicateTensor(file, tensor):
            return "GGUF file '\(file)': tensor '\(tensor)' appears twice"
        case let .tensorOutOfBounds(file, tensor, offset, bytes, dataSize):
            return "GGUF file '\(file)': tensor '\(tensor)' data (offset \(offset), \(bytes) bytes) lies outside the \(dataSize)-byte data section"
        case let .misalignedTensor(file, tensor, offset, alignment):
            return "GGUF file '\(file)': tensor '\(tensor)' offset \(offset) is not a multiple of the alignment \(alignment)"
        case let .overlappingTensors(file, first, second):
            return "GGUF file '\(file)': tensors '\(first)' and '\(second)' overlap"
        case let .tensorNotFound(file, tensor):
            return "GGUF file '\(file)': no tensor named '\(tensor)'"
        case let .unsupportedTensorType(file, tensor, type):
            return "GGUF file '\(file)': tensor '\(tensor)' has type \(type.name), which cannot be dequantized (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)"
        case let .notAMatrix(file, tensor, dims):
            return "GGUF file '\(file)': tensor '\(tensor)' with ggml dims \(dims) is not a 2-D weight matrix"
        case let .invalidQuantizedData(tensor, reason):
            return "quantized tensor '\(tensor)': \(reason)"
        case let .shapeMismatch(tensor, operation, expected, got):
            return "quantized tensor '\(tensor)': \(operation) expects shape \(expected), got \(got)"
        }
    }
}
