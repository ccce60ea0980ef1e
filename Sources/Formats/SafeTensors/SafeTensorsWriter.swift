// Writing safetensors files byte-for-byte as the reference serializer (safetensors 0.8.0) does: tensors
// ordered by descending dtype alignment then name, compact JSON with __metadata__ first, header padded
// with spaces to a multiple of 8. Files are written to a temporary sibling and renamed into place, so a
// crash or error never leaves a partial file and never destroys the previous one.
import Foundation
import TensorCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One tensor to write: a Float32 tensor stored as a floating dtype, or exact integer ids.
public struct SafeTensorsEntry {
    enum Payload {
        case float(Tensor)
        case int64([Int64])
        case int32([Int32])
    }

    public let name: String
    public let dtype: SafeTensorsDType
    public let shape: [Int]
    let payload: Payload

    /// `tensor` stored as `dtype` (F32, F16, BF16 or F64; F16/BF16 round to nearest even).
    public static func float(_ name: String, _ tensor: Tensor, as dtype: SafeTensorsDType = .f32) -> SafeTensorsEntry {
        SafeTensorsEntry(name: name, dtype: dtype, shape: tensor.shape, payload: .float(tensor))
    }

    /// Row-major Int64 values of `shape`, stored as I64.
    public static func int64(_ name: String, _ values: [Int64], shape: [Int]) -> SafeTensorsEntry {
        SafeTensorsEntry(name: name, dtype: .i64, shape: shape, payload: .int64(values))
    }

    /// Row-major Int32 values of `shape`, stored as I32.
    public static func int32(_ name: String, _ values: [Int32], shape: [Int]) -> SafeTensorsEntry {
        SafeTensorsEntry(name: name, dtype: .i32, shape: shape, payload: .int32(values))
    }

    var byteCount: Int { shape.reduce(1, *) * dtype.byteSize }
}

/// Serializes tensors to the safetensors format.
public enum SafeTensorsWriter {
    /// Writes `tensors` atomically to `url`; `metadata` becomes `__metadata__` (omitted when nil).
    public static func write(tensors: [(name: String, tensor: Tensor, dtype: SafeTensorsDType)],
                             metadata: [String: String]? = nil, to url: URL) throws {
        try write(tensors.map { SafeTensorsEntry.float($0.name, $0.tensor, as: $0.dtype) }, metadata: metadata, to: url)
    }

    /// Writes `entries` atomically to `url` (temporary file in the same directory, fsync, rename: `AtomicFile`).
    public static func write(_ entries: [SafeTensorsEntry], metadata: [String: String]? = nil, to url: URL) throws {
        let (ordered, header) = try prepare(entries, metadata: metadata, path: url.path)
        do {
            try AtomicFile.write(to: url) { write in try emit(ordered, header: header, to: write) }
        } catch let error as AtomicFileError {
            throw SafeTensorsError.writeFailed(path: error.path, reason: error.reason)
        }
    }

    /// The complete file image of `entries` in memory (same bytes `write` puts on disk).
    public static func serialize(_ entries: [SafeTensorsEntry], metadata: [String: String]? = nil) throws -> [UInt8] {
        let (ordered, header) = try prepare(entries, metadata: metadata, path: "<memory>")
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + header.count + ordered.reduce(0) { $0 + $1.byteCount })
        try emit(ordered, header: header) { bytes.append(contentsOf: $0) }
        return bytes
    }

    /// Validates the input, orders it like the reference serializer and builds the padded header.
    static func prepare(_ entries: [SafeTensorsEntry], metadata: [String: String]?,
                        path: String) throws -> ([SafeTensorsEntry], [UInt8]) {
        var seen = Set<String>()
        for entry in entries {
            guard !entry.name.isEmpty else {
                throw SafeTensorsError.invalidTensorName(path: path, tensor: entry.name, reason: "is empty")
            }
            guard entry.name != "__metadata__" else {
                throw SafeTensorsError.invalidTensorName(path: path, tensor: entry.name, reason: "is reserved for metadata")
            }
            guard seen.insert(entry.name).inserted else {
                throw SafeTensorsError.duplicateTensor(path: path, tensor: entry.name)
            }
            switch entry.payload {
            case .float:
                guard entry.dtype.isFloatingPoint else {
                    throw SafeTensorsError.wrongDType(path: path, tensor: entry.name, dtype: entry.dtype,
                                                      expected: "a floating dtype (F64, F32, F16, BF16) for a Float32 tensor")
                }
            case let .int64(values):
                try checkCount(values.count, entry, path: path)
            case let .int32(values):
                try checkCount(values.count, entry, path: path)
            }
        }
        let ordered = entries.sorted { a, b in
            if a.dtype.referenceOrder != b.dtype.referenceOrder { return a.dtype.referenceOrder > b.dtype.referenceOrder }
            return a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
        }

        var json = "{"
        var first = true
        if let metadata {
            // The reference emits a hash map in arbitrary order; sorted keys make ours deterministic.
            let members = metadata.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
                .map { jsonString($0.key) + ":" + jsonString($0.value) }
            json += jsonString("__metadata__") + ":{" + members.joined(separator: ",") + "}"
            first = false
        }
        var offset = 0
        for entry in ordered {
            let end = offset + entry.byteCount
            if !first { json += "," }
            first = false
            json += jsonString(entry.name) + ":{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":["
                + entry.shape.map(String.init).joined(separator: ",") + "],\"data_offsets\":[\(offset),\(end)]}"
            offset = end
        }
        json += "}"
        var header = Array(json.utf8)
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8))
        return (ordered, header)
    }

    private static func checkCount(_ count: Int, _ entry: SafeTensorsEntry, path: String) throws {
        // Overflow-checked product: a hostile shape such as [Int.max, 2] must be an error, not a trap.
        let elements = entry.shape.reduce(Optional(1)) { product, dim in
            guard let product, dim >= 0 else { return nil }
            let (next, overflow) = product.multipliedReportingOverflow(by: dim)
            return overflow ? nil : next
        }
        guard elements == count else {
            throw SafeTensorsError.elementCountMismatch(path: path, tensor: entry.name, shape: entry.shape, count: count)
        }
    }

    /// Streams the length, header and each tensor's bytes to `sink`, converting in bounded chunks.
    private static func emit(_ ordered: [SafeTensorsEntry], header: [UInt8],
                             to sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        var length = UInt64(header.count).littleEndian
        try withUnsafeBytes(of: &length) { try sink($0) }
        try header.withUnsafeBytes { try sink($0) }
        let chunkElements = 1 << 16
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: chunkElements * 8, alignment: 64)
        defer { scratch.deallocate() }
        for entry in ordered {
            switch entry.payload {
            case let .float(tensor):
                try tensor.withUnsafeBufferPointer { values in
                    guard let source = values.baseAddress, entry.byteCount > 0 else { return }
                    if entry.dtype == .f32 { try sink(UnsafeRawBufferPointer(values)); return }
                    var start = 0
                    while start < values.count {
                        let n = min(chunkElements, values.count - start)
                        SafeTensorsElementConversion.encode(source + start, count: n, as: entry.dtype, into: scratch)
                        try sink(UnsafeRawBufferPointer(start: scratch, count: n * entry.dtype.byteSize))
                        start += n
                    }
                }
            case let .int64(values):
                try values.withUnsafeBytes { try sink($0) }  // little-endian host: already file order
            case let .int32(values):
                try values.withUnsafeBytes { try sink($0) }
            }
        }
    }

    /// JSON string literal escaped as serde_json does: `"`, `\` and control characters only; UTF-8 kept raw.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\u{00}"..."\u{1F}":
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

