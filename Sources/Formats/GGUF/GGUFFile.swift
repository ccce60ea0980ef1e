// A memory-mapped GGUF file: validated metadata and tensor table, plus access to tensor data as
// Float32 tensors (dequantised) or as quantized matrices that keep the mapped bytes.
import Foundation
import TensorCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only mapping of a whole file; unmapped when the last user (file or matrix) goes away.
final class GGUFMappedRegion: @unchecked Sendable {
    let base: UnsafeRawPointer
    let size: Int

    init(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw GGUFError.cannotOpen(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw GGUFError.cannotOpen(file: path, reason: String(cString: strerror(errno))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw GGUFError.cannotOpen(file: path, reason: "not a regular file") }
        let size = Int(info.st_size)
        // mmap of 0 bytes fails; report a short file as truncated instead.
        guard size >= 24 else {
            throw GGUFError.truncated(file: path, field: "header", offset: 0, needed: 24, fileSize: size)
        }
        let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let mapped, mapped != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw GGUFError.cannotOpen(file: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(mapped)
        self.size = size
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), size) }
}

/// A GGUF (v2/v3, little-endian) model file, memory-mapped and validated on open.
public final class GGUFFile: @unchecked Sendable {
    /// Path the file was opened from (used in every error).
    public let path: String
    public let version: UInt32
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    public let metadata: [String: GGUFValue]
    /// Tensor table in file order.
    public let tensors: [GGUFTensorInfo]
    /// Alignment of the data section and of every tensor offset (`general.alignment`, default 32).
    public let alignment: Int
    /// Absolute byte offset of the data section.
    public let dataOffset: Int
    /// Total file size in bytes.
    public var fileSize: Int { region.size }

    let region: GGUFMappedRegion
    private let tensorIndex: [String: Int]

    /// Maps and validates the file at `path`; throws `GGUFError` naming the offending field.
    public init(path: String) throws {
        self.path = path
        region = try GGUFMappedRegion(path: path)
        let header = try GGUFHeaderParser.parse(base: region.base, size: region.size, file: path)
        version = header.version
        metadataKeys = header.metadataKeys
        metadata = header.metadata
        tensors = header.tensors
        alignment = header.alignment
        dataOffset = header.dataOffset
        var index: [String: Int] = [:]
        for (i, t) in header.tensors.enumerated() { index[t.name] = i }
        tensorIndex = index
    }

    public convenience init(url: URL) throws { try self.init(path: url.path) }

    /// The tensor info named `name`, or nil.
    public func tensorInfo(_ name: String) -> GGUFTensorInfo? { tensorIndex[name].map { tensors[$0] } }

    /// The tensor info named `name`, or `GGUFError.tensorNotFound`.
    public func requireTensorInfo(_ name: String) throws -> GGUFTensorInfo {
        guard let info = tensorInfo(name) else { throw GGUFError.tensorNotFound(file: path, tensor: name) }
        return info
    }

    /// Raw bytes of a tensor inside the mapping; valid only while this `GGUFFile` is alive.
    public func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let info = try requireTensorInfo(name)
        return try body(UnsafeRawBufferPointer(start: region.base + dataOffset + info.offset, count: info.byteCount))
    }

    /// The tensor dequantised to Float32 in PyTorch shape (ggml dims reversed: [in, out] → [out, in]).
    public func tensor(_ name: String) throws -> Tensor {
        let info = try requireTensorInfo(name)
        guard info.type.isDequantizable else {
            throw GGUFError.unsupportedTensorType(file: path, tensor: name, type: info.type)
        }
        let src = region.base + dataOffset + info.offset
        let rowLength = info.rowLength, rowBytes = info.rowBytes, type = info.type
        return Tensor(shape: info.shape) { dst in
            guard let out = dst.baseAddress, rowLength > 0 else { return }
            // ~64 K elements per chunk keeps each parallel piece well above thread start-up cost.
            Parallel.forRanges(info.rowCount, minChunk: max(1, 65_536 / rowLength)) { rows in
                for r in rows {
                    GGMLDequantizer.dequantize(type, from: src + r * rowBytes, count: rowLength, into: out + r * rowLength)
                }
            }
        }
    }

    /// A weight matrix [out, in] that keeps the mapped quantized bytes (ggml dims must be [in, out],
    /// trailing 1s allowed). The matrix keeps the mapping alive on its own.
    public func quantizedMatrix(_ name: String) throws -> QuantizedMatrix {
        let info = try requireTensorInfo(name)
        guard info.type.isDequantizable else {
            throw GGUFError.unsupportedTensorType(file: path, tensor: name, type: info.type)
        }
        let dims = info.dimensions
        guard dims.count >= 1, dims.dropFirst(2).allSatisfy({ $0 == 1 }) else {
            throw GGUFError.notAMatrix(file: path, tensor: name, dimensions: dims)
        }
        let bytes = UnsafeRawBufferPointer(start: region.base + dataOffset + info.offset, count: info.byteCount)
        return try QuantizedMatrix(name: name, type: info.type, rows: info.rowCount, columns: info.rowLength,
                                   mappedBytes: bytes, owner: region)
    }
}
