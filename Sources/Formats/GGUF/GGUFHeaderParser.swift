// Parses and validates a GGUF v2/v3 header: magic, version, metadata key/values, tensor infos and
// the data-section layout. Layout (little-endian):
//   "GGUF" u32 version, u64 n_tensors, u64 n_kv,
//   n_kv × (string key, u32 value type, value), n_tensors × (string name, u32 n_dims, u64 dims[n_dims],
//   u32 ggml type, u64 offset), padding to `general.alignment`, tensor data.
// Strings are u64 length + UTF-8 bytes; arrays are u32 element type + u64 count + elements.

struct GGUFHeader {
    var version: UInt32 = 0
    var metadataKeys: [String] = []
    var metadata: [String: GGUFValue] = [:]
    var tensors: [GGUFTensorInfo] = []
    var alignment = GGUFHeaderParser.defaultAlignment
    var dataOffset = 0
}

enum GGUFHeaderParser {
    static let defaultAlignment = 32
    /// Deeper array nesting has no use in practice and would let a file recurse without bound.
    static let maxArrayDepth = 8
    static let maxDimensions = 4
    // Fewest bytes a key/value pair and a tensor info can occupy (empty strings, zero dims).
    static let minimumKeyValueBytes = 8 + 4 + 1
    static let minimumTensorInfoBytes = 8 + 4 + 4 + 8

    static func parse(base: UnsafeRawPointer, size: Int, file: String) throws -> GGUFHeader {
        var cursor = GGUFByteCursor(base: base, size: size, file: file)
        var header = GGUFHeader()

        guard size >= 4 else {
            throw GGUFError.truncated(file: file, field: "magic", offset: 0, needed: 4, fileSize: size)
        }
        let magic = (0..<4).map { base.load(fromByteOffset: $0, as: UInt8.self) }
        guard magic == Array("GGUF".utf8) else { throw GGUFError.badMagic(file: file, found: magic) }
        cursor.skip(to: 4)

        let version = try cursor.read(UInt32.self, "version")
        // A big-endian writer stores small versions byte-swapped (e.g. 3 → 0x03000000).
        if (1...3).contains(version.byteSwapped) { throw GGUFError.bigEndian(file: file) }
        guard version == 2 || version == 3 else { throw GGUFError.unsupportedVersion(file: file, version: version) }
        header.version = version

        let tensorCount = try cursor.readCount(minimumSize: minimumTensorInfoBytes, "tensor count")
        let keyValueCount = try cursor.readCount(minimumSize: minimumKeyValueBytes, "metadata key/value count")

        header.metadataKeys.reserveCapacity(keyValueCount)
        for index in 0..<keyValueCount {
            let key = try cursor.readString("metadata key #\(index)")
            let rawType = try cursor.read(UInt32.self, "value type of metadata key '\(key)'")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw GGUFError.unknownValueType(file: file, key: key, rawType: rawType)
            }
            let value = try readValue(type, key: key, depth: 0, cursor: &cursor)
            guard header.metadata.updateValue(value, forKey: key) == nil else {
                throw GGUFError.duplicateKey(file: file, key: key)
            }
            header.metadataKeys.append(key)
        }

        if let value = header.metadata["general.alignment"] {
            guard let a = value.intValue, a > 0, a & (a - 1) == 0 else {
                throw GGUFError.invalidAlignment(file: file, value: value.summary())
            }
            header.alignment = a
        }

        var seen = Set<String>()
        header.tensors.reserveCapacity(tensorCount)
        for index in 0..<tensorCount {
            let info = try readTensorInfo(index: index, cursor: &cursor)
            guard seen.insert(info.name).inserted else { throw GGUFError.duplicateTensor(file: file, tensor: info.name) }
            header.tensors.append(info)
        }

        // The data section starts at the next multiple of the alignment after the tensor table.
        let (padded, overflow) = cursor.offset.addingReportingOverflow(header.alignment - 1)
        guard !overflow else { throw GGUFError.invalidAlignment(file: file, value: "\(header.alignment)") }
        header.dataOffset = padded / header.alignment * header.alignment
        try validateLayout(header, fileSize: size, file: file)
        return header
    }

    private static func readValue(_ type: GGUFValueType, key: String, depth: Int,
                                  cursor: inout GGUFByteCursor) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try cursor.read(UInt8.self, "value of '\(key)'"))
        case .int8: return .int8(try cursor.read(Int8.self, "value of '\(key)'"))
        case .uint16: return .uint16(try cursor.read(UInt16.self, "value of '\(key)'"))
        case .int16: return .int16(try cursor.read(Int16.self, "value of '\(key)'"))
        case .uint32: return .uint32(try cursor.read(UInt32.self, "value of '\(key)'"))
        case .int32: return .int32(try cursor.read(Int32.self, "value of '\(key)'"))
        case .uint64: return .uint64(try cursor.read(UInt64.self, "value of '\(key)'"))
        case .int64: return .int64(try cursor.read(Int64.self, "value of '\(key)'"))
        case .float32: return .float32(try cursor.readFloat("value of '\(key)'"))
        case .float64: return .float64(try cursor.readDouble("value of '\(key)'"))
        case .bool:
            let byte = try cursor.read(UInt8.self, "value of '\(key)'")
            guard byte <= 1 else {
                throw GGUFError.invalidValue(file: cursor.file, key: key, reason: "bool byte \(byte) is not 0 or 1")
            }
            return .bool(byte == 1)
        case .string: return .string(try cursor.readString("string value of '\(key)'"))
        case .array:
            guard depth < maxArrayDepth else { throw GGUFError.nestingTooDeep(file: cursor.file, key: key, depth: maxArrayDepth) }
            let rawElement = try cursor.read(UInt32.self, "array element type of '\(key)'")
            guard let element = GGUFValueType(rawValue: rawElement) else {
                throw GGUFError.unknownValueType(file: cursor.file, key: key, rawType: rawElement)
            }
            let count = try cursor.readCount(minimumSize: element.minimumEncodedSize, "array count of '\(key)'")
            var values: [GGUFValue] = []
            values.reserveCapacity(count)
            for _ in 0..<count { values.append(try readValue(element, key: key, depth: depth + 1, cursor: &cursor)) }
            return .array(elementType: element, values: values)
        }
    }

    private static func readTensorInfo(index: Int, cursor: inout GGUFByteCursor) throws -> GGUFTensorInfo {
        let file = cursor.file
        let name = try cursor.readString("name of tensor #\(index)")
        let nDims = try cursor.read(UInt32.self, "n_dims of tensor '\(name)'")
        guard nDims <= maxDimensions else {
            throw GGUFError.invalidTensorInfo(file: file, tensor: name, reason: "n_dims \(nDims) exceeds \(maxDimensions)")
        }
        var dims: [Int] = []
        var elements = 1, nonZeroElements = 1
        for d in 0..<Int(nDims) {
            let raw = try cursor.read(UInt64.self, "dimension \(d) of tensor '\(name)'")
            guard let dim = Int(exactly: raw) else {
                throw GGUFError.invalidTensorInfo(file: file, tensor: name, reason: "dimension \(d) = \(raw) is too large")
            }
            let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
            guard !overflow else {
                throw GGUFError.invalidTensorInfo(file: file, tensor: name, reason: "element count of dims \(dims + [dim]) overflows")
            }
            // With a zero dimension the element count is 0 whatever the others are, but rows × row length still
            // drive loops and allocations: the product of the non-zero dims must fit too (found by fuzzing).
            let (nonZero, nonZeroOverflow) = nonZeroElements.multipliedReportingOverflow(by: max(dim, 1))
            guard !nonZeroOverflow, nonZero <= Int.max / 512 else {
                throw GGUFError.invalidTensorInfo(file: file, tensor: name, reason: "dims \(dims + [dim]) overflow")
            }
            dims.append(dim)
            elements = product
            nonZeroElements = nonZero
        }
        let rawType = try cursor.read(UInt32.self, "type of tensor '\(name)'")
        guard let type = GGMLType(rawValue: rawType) else {
            throw GGUFError.unknownTensorType(file: file, tensor: name, rawType: rawType)
        }
        let rowLength = dims.first ?? 1
        guard rowLength % type.blockSize == 0 else {
            throw GGUFError.invalidTensorInfo(file: file, tensor: name,
                reason: "row length \(rowLength) is not a multiple of the \(type.name) block size \(type.blockSize)")
        }
        guard let bytes = type.byteCount(elements: elements), type.byteCount(elements: rowLength) != nil else {
            throw GGUFError.invalidTensorInfo(file: file, tensor: name, reason: "byte size of \(elements) \(type.name) elements overflows")
        }
        let rawOffset = try cursor.read(UInt64.self, "offset of tensor '\(name)'")
        guard let offset = Int(exactly: rawOffset) else {
            throw GGUFError.tensorOutOfBounds(file: file, tensor: name, offset: rawOffset, byteCount: bytes, dataSize: 0)
        }
        return GGUFTensorInfo(name: name, dimensions: dims, type: type, offset: offset, elementCount: elements, byteCount: bytes)
    }

    /// Every tensor lies inside the data section, starts on the alignment, and no two overlap.
    private static func validateLayout(_ header: GGUFHeader, fileSize: Int, file: String) throws {
        let dataSize = max(0, fileSize - header.dataOffset)
        for t in header.tensors {
            guard t.offset % header.alignment == 0 else {
                throw GGUFError.misalignedTensor(file: file, tensor: t.name, offset: t.offset, alignment: header.alignment)
            }
            let (end, overflow) = t.offset.addingReportingOverflow(t.byteCount)
            guard !overflow, end <= dataSize, header.dataOffset <= fileSize else {
                throw GGUFError.tensorOutOfBounds(file: file, tensor: t.name, offset: UInt64(t.offset),
                                                  byteCount: t.byteCount, dataSize: dataSize)
            }
        }
        let ordered = header.tensors.filter { $0.byteCount > 0 }.sorted { $0.offset < $1.offset }
        for (a, b) in zip(ordered, ordered.dropFirst()) where a.offset + a.byteCount > b.offset {
            throw GGUFError.overlappingTensors(file: file, first: a.name, second: b.name)
        }
    }
}
