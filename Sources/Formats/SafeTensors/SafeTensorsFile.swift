// Read access to a safetensors file through a read-only memory map: the header is parsed and fully
// validated when the file is opened; tensor bytes are only touched when a tensor is asked for.
// (As with any mmap reader, truncating the file on disk while it is open is outside what we can guard.)
import Foundation
import TensorCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A validated safetensors file, memory-mapped; tensors are converted or viewed on request.
public final class SafeTensorsFile: @unchecked Sendable {
    /// The path used in error messages.
    public let path: String
    /// Tensor names in the order of their data in the file.
    public let names: [String]
    /// Entries in file (offset) order.
    public let tensorInfos: [SafeTensorsTensorInfo]
    /// The `__metadata__` string map (empty when the header has none).
    public let metadata: [String: String]
    /// Whether the header holds a `__metadata__` entry at all (it may be present and empty).
    public let hasMetadata: Bool

    // The whole file: a mapping when `mapped`, else a heap copy. Immutable after init, hence Sendable.
    private let base: UnsafeRawPointer
    private let byteCount: Int
    private let mapped: Bool
    private let dataStart: Int
    private let index: [String: Int]

    /// Opens and validates the safetensors file at `url`.
    public convenience init(contentsOf url: URL) throws {
        let path = url.path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SafeTensorsError.cannotOpen(path: path, reason: Self.lastErrorText()) }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw SafeTensorsError.cannotOpen(path: path, reason: Self.lastErrorText()) }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw SafeTensorsError.cannotOpen(path: path, reason: "not a regular file")
        }
        let size = Int(status.st_size)
        // Reject before mapping: mmap of an empty file fails, and a short file cannot hold the length field.
        guard size >= 8 else { throw SafeTensorsError.fileTooSmall(path: path, byteCount: size) }
        guard let region = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0),
              region != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw SafeTensorsError.cannotOpen(path: path, reason: "mmap failed: \(Self.lastErrorText())")
        }
        try self.init(base: UnsafeRawPointer(region), byteCount: size, mapped: true, path: path)
    }

    /// Parses and validates a safetensors image held in memory (copied); `label` names it in errors.
    public convenience init(bytes: [UInt8], label: String = "<memory>") throws {
        let copy = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { if let src = $0.baseAddress { copy.copyMemory(from: src, byteCount: bytes.count) } }
        try self.init(base: UnsafeRawPointer(copy), byteCount: bytes.count, mapped: false, path: label)
    }

    /// Takes ownership of `base`; releases it itself if validation fails (deinit does not run then).
    private init(base: UnsafeRawPointer, byteCount: Int, mapped: Bool, path: String) throws {
        let header: SafeTensorsHeader
        do {
            header = try SafeTensorsHeader.parse(file: UnsafeRawBufferPointer(start: base, count: byteCount), path: path)
        } catch {
            Self.release(base, byteCount: byteCount, mapped: mapped)
            throw error
        }
        self.base = base
        self.byteCount = byteCount
        self.mapped = mapped
        self.path = path
        dataStart = header.dataStart
        tensorInfos = header.tensors
        names = header.tensors.map(\.name)
        metadata = header.metadata ?? [:]
        hasMetadata = header.metadata != nil
        index = Dictionary(uniqueKeysWithValues: header.tensors.enumerated().map { ($1.name, $0) })
    }

    deinit { Self.release(base, byteCount: byteCount, mapped: mapped) }

    private static func release(_ base: UnsafeRawPointer, byteCount: Int, mapped: Bool) {
        if mapped { munmap(UnsafeMutableRawPointer(mutating: base), byteCount) } else { base.deallocate() }
    }

    private static func lastErrorText() -> String { String(cString: strerror(errno)) }

    /// Whether the file holds a tensor named `name`.
    public func contains(_ name: String) -> Bool { index[name] != nil }

    /// Dtype, shape and byte range of tensor `name`.
    public func info(_ name: String) throws -> SafeTensorsTensorInfo {
        guard let i = index[name] else { throw SafeTensorsError.tensorNotFound(path: path, tensor: name) }
        return tensorInfos[i]
    }

    /// Calls `body` with the tensor's raw little-endian bytes inside the mapping (no copy); the pointer is
    /// valid only during the call.
    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let info = try info(name)
        let start = base + dataStart + info.dataOffsets.lowerBound
        return try body(UnsafeRawBufferPointer(start: start, count: info.dataOffsets.count))
    }

    /// Tensor `name` converted to Float32 (F64/F16/BF16 and integer types convert; integers are exact up
    /// to 2^24 in magnitude and round to nearest beyond; BOOL gives 0 or 1).
    public func tensor(_ name: String) throws -> Tensor {
        let info = try info(name)
        let source = base + dataStart + info.dataOffsets.lowerBound
        return Tensor(shape: info.shape) { out in
            guard let destination = out.baseAddress else { return }
            SafeTensorsElementConversion.decode(source, dtype: info.dtype, count: info.elementCount, into: destination)
        }
    }

    /// Every tensor converted to Float32, keyed by name.
    public func tensors() throws -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for name in names { result[name] = try tensor(name) }
        return result
    }

    /// Integer tensor `name` (I64, I32, I16, I8, U8 or BOOL) as exact Int64 values in row-major order.
    public func int64s(_ name: String) throws -> [Int64] {
        try integers(name, target: "Int64") { $0 }
    }

    /// Integer tensor `name` as Int32; I64 values outside Int32's range are an error, never truncated.
    public func int32s(_ name: String) throws -> [Int32] {
        try integers(name, target: "Int32") { Int32(exactly: $0) }
    }

    private func integers<T>(_ name: String, target: String, _ convert: (Int64) -> T?) throws -> [T] {
        let info = try info(name)
        guard !info.dtype.isFloatingPoint else {
            throw SafeTensorsError.wrongDType(path: path, tensor: name, dtype: info.dtype,
                                              expected: "an integer dtype (I64, I32, I16, I8, U8, BOOL)")
        }
        let source = base + dataStart + info.dataOffsets.lowerBound
        var values: [T] = []
        values.reserveCapacity(info.elementCount)
        for i in 0..<info.elementCount {
            let value = SafeTensorsElementConversion.integer(at: i, of: source, dtype: info.dtype)
            guard let converted = convert(value) else {
                throw SafeTensorsError.valueOutOfRange(path: path, tensor: name, index: i, value: value, target: target)
            }
            values.append(converted)
        }
        return values
    }
}
