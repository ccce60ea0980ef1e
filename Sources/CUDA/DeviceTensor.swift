// Device memory: a buffer owned by one allocation, and typed views of it. Dense tensors are fp32 or bf16
// (row-major like Tensor); quantized weights keep their GGUF block bytes (Q8_0, Q4_1) and are expanded by the
// kernels; token ids and targets are int32. Freed when the last view goes away.
import Foundation
import TensorCore

public enum DeviceElementType: String, Sendable {
    case float32, bfloat16, int32, q8_0, q4_1

    /// Bytes of `count` elements (quantized: whole blocks of 32).
    public func byteCount(_ count: Int) -> Int {
        switch self {
        case .float32, .int32: return 4 * count
        case .bfloat16: return 2 * count
        case .q8_0: return count / 32 * 34
        case .q4_1: return count / 32 * 20
        }
    }
}

/// One device allocation.
public final class DeviceBuffer: @unchecked Sendable {
    public let context: CUDAContext
    public let address: CUDADevicePointer
    public let byteCount: Int

    init(context: CUDAContext, byteCount: Int) throws {
        self.context = context; self.byteCount = byteCount
        address = try context.allocate(bytes: byteCount)
    }
    deinit { context.free(address, bytes: byteCount) }
}

/// A typed, shaped view of device memory.
public struct DeviceTensor: @unchecked Sendable {
    public let buffer: DeviceBuffer
    public let shape: [Int]
    public let type: DeviceElementType
    /// Byte offset of element 0 in `buffer`.
    public let offset: Int

    public var count: Int { shape.reduce(1, *) }
    public var address: CUDADevicePointer { buffer.address + UInt64(offset) }
    var argument: KernelArgument { .pointer(address) }

    /// Zero-filled tensor.
    public init(zeros shape: [Int], type: DeviceElementType, context: CUDAContext) throws {
        let n = shape.reduce(1, *)
        if type == .q8_0 || type == .q4_1, n % 32 != 0 {
            throw CUDAError.invalidLaunch(kernel: "DeviceTensor", reason: "\(type.rawValue) needs a multiple of 32 elements, shape \(shape)")
        }
        buffer = try DeviceBuffer(context: context, byteCount: type.byteCount(n))
        self.shape = shape; self.type = type; offset = 0
        try context.zero(buffer.address, bytes: buffer.byteCount)
    }

    init(buffer: DeviceBuffer, shape: [Int], type: DeviceElementType, offset: Int) {
        self.buffer = buffer; self.shape = shape; self.type = type; self.offset = offset
    }

    /// Uploads a Float32 tensor as fp32 or bf16 (rounded to nearest even, as `HalfPrecision`).
    public init(_ tensor: Tensor, as type: DeviceElementType = .float32, context: CUDAContext) throws {
        guard type == .float32 || type == .bfloat16 else {
            throw CUDAError.invalidLaunch(kernel: "DeviceTensor upload", reason: "a dense tensor uploads as float32 or bfloat16, not \(type.rawValue)")
        }
        buffer = try DeviceBuffer(context: context, byteCount: type.byteCount(tensor.count))
        shape = tensor.shape; self.type = type; offset = 0
        if type == .float32 {
            try tensor.withUnsafeBufferPointer { try context.upload(UnsafeRawBufferPointer($0), to: buffer.address) }
        } else {
            let bits = tensor.bfloat16Bits()
            try bits.withUnsafeBytes { try context.upload($0, to: buffer.address) }
        }
    }

    /// Uploads int32 values (token ids, targets).
    public init(int32 values: [Int32], shape: [Int], context: CUDAContext) throws {
        guard shape.reduce(1, *) == values.count else {
            throw CUDAError.invalidLaunch(kernel: "DeviceTensor upload", reason: "\(values.count) ids for shape \(shape)")
        }
        buffer = try DeviceBuffer(context: context, byteCount: 4 * values.count)
        self.shape = shape; type = .int32; offset = 0
        try values.withUnsafeBytes { try context.upload($0, to: buffer.address) }
    }

    /// Uploads GGUF block bytes of a [rows, cols] Q8_0 / Q4_1 matrix unchanged (QLoRA keeps the base quantized).
    public init(quantizedBlocks bytes: [UInt8], type: DeviceElementType, shape: [Int], context: CUDAContext) throws {
        let n = shape.reduce(1, *)
        guard type == .q8_0 || type == .q4_1, n % 32 == 0, (shape.last ?? 0) % 32 == 0, bytes.count == type.byteCount(n) else {
            throw CUDAError.invalidLaunch(kernel: "DeviceTensor upload", reason: "\(bytes.count) bytes are not \(type.rawValue) blocks of shape \(shape) (rows must be whole blocks of 32)")
        }
        buffer = try DeviceBuffer(context: context, byteCount: bytes.count)
        self.shape = shape; self.type = type; offset = 0
        try bytes.withUnsafeBytes { try context.upload($0, to: buffer.address) }
    }

    /// A view of the same memory with another shape (same element count) or a sub-range starting at `elementOffset`.
    public func view(_ shape: [Int], elementOffset: Int = 0) throws -> DeviceTensor {
        let bytes = type.byteCount(shape.reduce(1, *)), start = type.byteCount(elementOffset)
        guard start + bytes + offset <= buffer.byteCount else {
            throw CUDAError.invalidLaunch(kernel: "DeviceTensor.view", reason: "view \(shape) at \(elementOffset) outside a \(self.shape) tensor")
        }
        return DeviceTensor(buffer: buffer, shape: shape, type: type, offset: offset + start)
    }

    /// Reads back as a Float32 tensor (bf16 widened exactly). Synchronises the stream.
    public func toTensor() throws -> Tensor {
        switch type {
        case .float32:
            var t = Tensor(zeros: shape)
            try t.withUnsafeMutableBufferPointer { try buffer.context.download(address, into: UnsafeMutableRawBufferPointer($0)) }
            return t
        case .bfloat16:
            var bits = [UInt16](repeating: 0, count: count)
            try bits.withUnsafeMutableBytes { try buffer.context.download(address, into: $0) }
            return try Tensor(bfloat16Bits: bits, shape: shape)
        case .int32, .q8_0, .q4_1:
            throw CUDAError.invalidLaunch(kernel: "DeviceTensor.toTensor", reason: "\(type.rawValue) does not read back as Float32")
        }
    }

    /// Sets every element to zero (queued on the stream).
    public func zeroFill() throws { try buffer.context.zero(address, bytes: type.byteCount(count)) }

    /// Reads back raw int32 values.
    public func int32Values() throws -> [Int32] {
        var v = [Int32](repeating: 0, count: count)
        try v.withUnsafeMutableBytes { try buffer.context.download(address, into: $0) }
        return v
    }

    func require(_ types: Set<DeviceElementType>, _ kernel: String, _ name: String) throws {
        guard types.contains(type) else {
            throw CUDAError.invalidLaunch(kernel: kernel, reason: "\(name) is \(type.rawValue), expected \(types.map(\.rawValue).sorted().joined(separator: " or "))")
        }
    }
    func require(count n: Int, _ kernel: String, _ name: String) throws {
        guard count >= n else { throw CUDAError.invalidLaunch(kernel: kernel, reason: "\(name) \(shape) has \(count) elements, needs \(n)") }
    }
}
