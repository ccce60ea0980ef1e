// Writes GGUF v3 files: metadata of every value type, a tensor table in ggml dimension order, aligned data.
// Layout (gguf.h; checked by llama.cpp's loader in gguf.cpp):
//   "GGUF", u32 version 3, i64 n_tensors, i64 n_kv, n_kv × (string key, u32 type, value),
//   n_tensors × (string name, u32 n_dims, i64 ne[n_dims] (ne0 = contiguous axis), u32 ggml type, u64 offset),
//   zero padding to the alignment, then each tensor's bytes padded to the alignment (the last one too).
// Offsets are relative to the data section and equal the running sum of padded sizes in table order —
// llama.cpp rejects any other layout. The file is written atomically (temp file + rename).
import Foundation
import TensorCore

/// Why a GGUF file could not be assembled (before anything is written).
public struct GGUFWriteError: Error, CustomStringConvertible, Equatable {
    /// The output file, key or tensor concerned.
    public let subject: String
    public let reason: String
    public var description: String { "GGUF writer: \(subject): \(reason)" }
}

/// An in-memory GGUF file under construction: metadata in insertion order and tensors with their encoded bytes.
public struct GGUFWriter {
    /// One tensor to write; `dimensions` in ggml order (ne0 first).
    public struct Tensor: Sendable {
        public let name: String
        public let dimensions: [Int]
        public let type: GGMLType
        public let bytes: [UInt8]
    }

    /// llama.cpp's GGML_MAX_NAME is 64 including the terminating NUL.
    public static let maxTensorNameBytes = 63
    public private(set) var alignment: Int
    public private(set) var metadataKeys: [String] = []
    public private(set) var metadata: [String: GGUFValue] = [:]
    public private(set) var tensors: [Tensor] = []
    private var tensorNames: Set<String> = []

    /// `alignment` other than 32 is recorded as `general.alignment` (u32), as the format requires.
    public init(alignment: Int = 32) throws {
        guard alignment > 0, alignment & (alignment - 1) == 0, alignment <= 1 << 20 else {
            throw GGUFWriteError(subject: "general.alignment", reason: "\(alignment) is not a power of two up to 2^20")
        }
        self.alignment = alignment
        if alignment != 32 { set("general.alignment", .uint32(UInt32(alignment))) }
    }

    /// Sets `key` (a new key is appended; an existing one keeps its place). `general.alignment` also changes
    /// the layout and must be a u32 power of two.
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if metadata.updateValue(value, forKey: key) == nil { metadataKeys.append(key) }
        if key == "general.alignment", let a = value.intValue, a > 0, a & (a - 1) == 0 { alignment = a }
    }

    /// Removes `key` if present.
    public mutating func remove(_ key: String) {
        guard metadata.removeValue(forKey: key) != nil else { return }
        metadataKeys.removeAll { $0 == key }
        if key == "general.alignment" { alignment = 32 }
    }

    /// Copies every key of `file` except those `excluding` rejects (e.g. `general.alignment`, file-type keys).
    public mutating func copyMetadata(from file: GGUFFile, excluding: (String) -> Bool = { _ in false }) {
        for key in file.metadataKeys where !excluding(key) { if let v = file.metadata[key] { set(key, v) } }
    }

    /// Adds already encoded bytes. `dimensions` are in ggml order (a Linear weight [out, in] is [in, out]).
    public mutating func addTensor(name: String, dimensions: [Int], type: GGMLType, bytes: [UInt8]) throws {
        guard !name.isEmpty, name.utf8.count <= Self.maxTensorNameBytes else {
            throw GGUFWriteError(subject: "tensor '\(name)'", reason: "name must be 1...\(Self.maxTensorNameBytes) bytes (llama.cpp's GGML_MAX_NAME), it is \(name.utf8.count)")
        }
        guard !tensorNames.contains(name) else { throw GGUFWriteError(subject: "tensor '\(name)'", reason: "added twice") }
        guard (1...4).contains(dimensions.count), dimensions.allSatisfy({ $0 >= 0 }) else {
            throw GGUFWriteError(subject: "tensor '\(name)'", reason: "ggml dimensions \(dimensions) must be 1 to 4 non-negative sizes")
        }
        guard dimensions[0] % type.blockSize == 0 else {
            throw GGUFWriteError(subject: "tensor '\(name)'", reason: "ne0 = \(dimensions[0]) is not a multiple of the \(type.name) block size \(type.blockSize)")
        }
        let elements = dimensions.reduce(1, *)
        guard let expected = type.byteCount(elements: elements), expected == bytes.count else {
            throw GGUFWriteError(subject: "tensor '\(name)'", reason: "\(elements) \(type.name) elements need \(type.byteCount(elements: elements) ?? -1) bytes, got \(bytes.count)")
        }
        tensorNames.insert(name)
        tensors.append(Tensor(name: name, dimensions: dimensions, type: type, bytes: bytes))
    }

    /// Encodes a Float32 tensor in PyTorch shape (last axis contiguous) as `type` and adds it; the ggml
    /// dimensions are the shape reversed.
    public mutating func addTensor(name: String, _ tensor: TensorCore.Tensor, as type: GGMLType) throws {
        let shape = tensor.shape.isEmpty ? [1] : tensor.shape
        let bytes = try GGMLQuantizer.encode(tensor, as: type, name: name)
        try addTensor(name: name, dimensions: Array(shape.reversed()), type: type, bytes: bytes)
    }

    /// The whole file as bytes (for tests and small files; `write` streams instead).
    public func encoded() throws -> [UInt8] {
        var out: [UInt8] = []
        try emit { out.append(contentsOf: $0) }
        return out
    }

    /// Writes the file atomically. Refuses to replace an existing file unless `overwrite`.
    public func write(to url: URL, overwrite: Bool = false) throws {
        if !overwrite, FileManager.default.fileExists(atPath: url.path) {
            throw GGUFWriteError(subject: url.path, reason: "exists (pass --overwrite to replace it)")
        }
        try AtomicFile.write(to: url) { write in
            var buffer: [UInt8] = []
            buffer.reserveCapacity(1 << 20)
            try emit { bytes in
                buffer.append(contentsOf: bytes)
                if buffer.count >= 1 << 20 { try buffer.withUnsafeBytes { try write($0) }; buffer.removeAll(keepingCapacity: true) }
            }
            if !buffer.isEmpty { try buffer.withUnsafeBytes { try write($0) } }
        }
    }

    /// Produces the file in order, piece by piece.
    private func emit(_ sink: ([UInt8]) throws -> Void) throws {
        var header = GGUFEncoding()
        header.bytes = Array("GGUF".utf8)
        header.u32(3)
        header.u64(UInt64(tensors.count))
        header.u64(UInt64(metadataKeys.count))
        for key in metadataKeys {
            let value = metadata[key]!
            try header.checkArray(value, key: key)
            header.string(key)
            header.u32(value.type.rawValue)
            header.value(value)
        }
        var offset = 0
        for t in tensors {
            header.string(t.name)
            header.u32(UInt32(t.dimensions.count))
            for d in t.dimensions { header.u64(UInt64(d)) }
            header.u32(t.type.rawValue)
            header.u64(UInt64(offset))
            offset += Self.padded(t.bytes.count, alignment)
        }
        header.bytes += [UInt8](repeating: 0, count: Self.padded(header.bytes.count, alignment) - header.bytes.count)
        try sink(header.bytes)
        for t in tensors {
            try sink(t.bytes)
            let pad = Self.padded(t.bytes.count, alignment) - t.bytes.count
            if pad > 0 { try sink([UInt8](repeating: 0, count: pad)) }
        }
    }

    static func padded(_ n: Int, _ alignment: Int) -> Int { (n + alignment - 1) / alignment * alignment }
}

/// Little-endian encoding of GGUF header fields.
struct GGUFEncoding {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
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
            u32(type.rawValue)
            u64(UInt64(values.count))
            for e in values { value(e) }
        }
    }

    /// An array's elements must all have its declared element type (the format has no per-element tag).
    func checkArray(_ v: GGUFValue, key: String) throws {
        guard case let .array(type, values) = v else { return }
        if let bad = values.firstIndex(where: { $0.type != type }) {
            throw GGUFWriteError(subject: "metadata key '\(key)'", reason: "array of \(type) has a \(values[bad].type) element at index \(bad)")
        }
        for e in values { try checkArray(e, key: key) }
    }
}
