// Parsing and full validation of a safetensors header, before any tensor byte is read.
// Layout: u64 little-endian N, N bytes of UTF-8 JSON (space padded), then the data buffer; every
// data_offsets pair is relative to the buffer start.

/// One tensor's entry in a safetensors header.
public struct SafeTensorsTensorInfo: Equatable, Sendable {
    public let name: String
    public let dtype: SafeTensorsDType
    public let shape: [Int]
    /// Byte range of the tensor inside the data buffer (the bytes after the header).
    public let dataOffsets: Range<Int>

    /// Number of elements (1 for a scalar, 0 when a dimension is 0).
    public var elementCount: Int { shape.reduce(1, *) }
}

/// The validated header: tensors in offset order, metadata, and where the data buffer starts in the file.
struct SafeTensorsHeader {
    /// Same limit as the reference implementation (100 MB); it bounds what a hostile length can make us read.
    static let maxHeaderLength = 100_000_000

    let tensors: [SafeTensorsTensorInfo]
    let metadata: [String: String]?
    let dataStart: Int

    /// Parses `file` (the whole file's bytes) and checks every size, type and offset; `path` names errors.
    static func parse(file: UnsafeRawBufferPointer, path: String) throws -> SafeTensorsHeader {
        guard file.count >= 8 else { throw SafeTensorsError.fileTooSmall(path: path, byteCount: file.count) }
        let length = UInt64(littleEndian: file.loadUnaligned(as: UInt64.self))
        // Both checks come before anything is allocated from `length`.
        guard length <= UInt64(maxHeaderLength) else {
            throw SafeTensorsError.headerTooLarge(path: path, headerLength: length, limit: maxHeaderLength)
        }
        guard length <= UInt64(file.count - 8) else {
            throw SafeTensorsError.headerBeyondFile(path: path, headerLength: length, fileSize: file.count)
        }
        let dataStart = 8 + Int(length)
        let headerBytes = UnsafeRawBufferPointer(rebasing: file[8..<dataStart])
        guard String(validating: headerBytes, as: UTF8.self) != nil else {
            throw SafeTensorsError.headerNotUTF8(path: path)
        }
        let root: SafeTensorsJSONValue
        do { root = try SafeTensorsJSONParser.parse(headerBytes) } catch let e as SafeTensorsJSONSyntaxError {
            throw SafeTensorsError.malformedJSON(path: path, byteOffset: e.offset, reason: e.reason)
        }
        guard case let .object(members) = root else { throw SafeTensorsError.headerNotObject(path: path) }

        let bufferSize = file.count - dataStart
        var metadata: [String: String]?
        var tensors: [SafeTensorsTensorInfo] = []
        var seen = Set<String>()
        for (name, value) in members {
            if name == "__metadata__" {
                guard metadata == nil else {
                    throw SafeTensorsError.invalidMetadata(path: path, key: name, reason: "appears more than once")
                }
                metadata = try parseMetadata(value, path: path)
            } else {
                guard seen.insert(name).inserted else { throw SafeTensorsError.duplicateTensor(path: path, tensor: name) }
                tensors.append(try parseEntry(name: name, value, bufferSize: bufferSize, path: path))
            }
        }
        try checkCoverage(&tensors, bufferSize: bufferSize, path: path)
        return SafeTensorsHeader(tensors: tensors, metadata: metadata, dataStart: dataStart)
    }

    private static func parseMetadata(_ value: SafeTensorsJSONValue, path: String) throws -> [String: String] {
        guard case let .object(members) = value else {
            throw SafeTensorsError.invalidMetadata(path: path, key: "__metadata__",
                                                   reason: "must be an object of strings, got \(value.typeName)")
        }
        var result: [String: String] = [:]
        for (key, item) in members {
            guard case let .string(text) = item else {
                throw SafeTensorsError.invalidMetadata(path: path, key: key, reason: "must be a string, got \(item.typeName)")
            }
            guard result.updateValue(text, forKey: key) == nil else {
                throw SafeTensorsError.invalidMetadata(path: path, key: key, reason: "appears more than once")
            }
        }
        return result
    }

    /// Validates one `{"dtype", "shape", "data_offsets"}` entry. Unknown extra fields are ignored, as the
    /// reference reader does; each known field must appear exactly once with the right JSON type.
    private static func parseEntry(name: String, _ value: SafeTensorsJSONValue, bufferSize: Int,
                                   path: String) throws -> SafeTensorsTensorInfo {
        func fieldError(_ field: String, _ reason: String) -> SafeTensorsError {
            .invalidField(path: path, tensor: name, field: field, reason: reason)
        }
        guard case let .object(members) = value else {
            throw fieldError("entry", "must be an object with dtype, shape and data_offsets, got \(value.typeName)")
        }
        var fields: [String: SafeTensorsJSONValue] = [:]
        for (key, item) in members where fields.updateValue(item, forKey: key) != nil {
            throw fieldError(key, "appears more than once")
        }

        guard let dtypeValue = fields["dtype"] else { throw fieldError("dtype", "is missing") }
        guard case let .string(dtypeText) = dtypeValue else {
            throw fieldError("dtype", "must be a string, got \(dtypeValue.typeName)")
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeText) else {
            throw SafeTensorsError.unsupportedDType(path: path, tensor: name, dtype: dtypeText)
        }

        guard let shapeValue = fields["shape"] else { throw fieldError("shape", "is missing") }
        guard case let .array(dims) = shapeValue else {
            throw fieldError("shape", "must be an array of integers, got \(shapeValue.typeName)")
        }
        var dimTexts: [String] = []
        for dim in dims {
            guard case let .number(text) = dim else {
                throw fieldError("shape", "must be an array of integers, found \(dim.typeName)")
            }
            guard isIntegerLiteral(text) else { throw fieldError("shape", "must hold integers, found \(text)") }
            dimTexts.append(text)
        }
        let shape = dimTexts.compactMap { Int($0) }
        guard shape.count == dimTexts.count else {
            throw SafeTensorsError.shapeOverflow(path: path, tensor: name, shape: dimTexts)
        }
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw SafeTensorsError.negativeDimension(path: path, tensor: name, shape: shape)
        }
        var neededBytes = dtype.byteSize
        for dim in shape {
            let (product, overflow) = neededBytes.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw SafeTensorsError.shapeOverflow(path: path, tensor: name, shape: dimTexts) }
            neededBytes = product
        }

        guard let offsetsValue = fields["data_offsets"] else { throw fieldError("data_offsets", "is missing") }
        guard case let .array(offsetItems) = offsetsValue, offsetItems.count == 2 else {
            throw fieldError("data_offsets", "must be an array [begin, end], got \(describe(offsetsValue))")
        }
        var offsets: [Int] = []
        for item in offsetItems {
            guard case let .number(text) = item, isIntegerLiteral(text), let offset = Int(text), offset >= 0 else {
                throw fieldError("data_offsets", "must hold two integers in 0...\(Int.max), got \(describe(offsetsValue))")
            }
            offsets.append(offset)
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin <= end else { throw SafeTensorsError.invalidOffsets(path: path, tensor: name, begin: begin, end: end) }
        guard end - begin == neededBytes else {
            throw SafeTensorsError.byteCountMismatch(path: path, tensor: name, begin: begin, end: end, dtype: dtype,
                                                     shape: shape, neededBytes: neededBytes)
        }
        guard end <= bufferSize else {
            throw SafeTensorsError.offsetsOutOfRange(path: path, tensor: name, begin: begin, end: end, bufferSize: bufferSize)
        }
        return SafeTensorsTensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: begin..<end)
    }

    /// Sorts by offset and requires the tensors to tile the buffer exactly: no overlap, no gap, nothing after.
    private static func checkCoverage(_ tensors: inout [SafeTensorsTensorInfo], bufferSize: Int, path: String) throws {
        // Stable order for equal ranges (zero-size tensors sharing an offset keep header order).
        tensors = tensors.enumerated().sorted { a, b in
            let (ra, rb) = (a.element.dataOffsets, b.element.dataOffsets)
            if ra.lowerBound != rb.lowerBound { return ra.lowerBound < rb.lowerBound }
            if ra.upperBound != rb.upperBound { return ra.upperBound < rb.upperBound }
            return a.offset < b.offset
        }.map(\.element)
        var covered = 0
        var previous: SafeTensorsTensorInfo?
        for info in tensors {
            let begin = info.dataOffsets.lowerBound
            if begin < covered, let previous {
                throw SafeTensorsError.overlappingTensors(path: path, tensor: info.name, other: previous.name,
                                                          begin: begin, otherEnd: covered)
            }
            guard begin == covered else {
                throw SafeTensorsError.gapBeforeTensor(path: path, tensor: info.name, expectedBegin: covered, begin: begin)
            }
            covered = info.dataOffsets.upperBound
            previous = info
        }
        guard covered == bufferSize else {
            throw SafeTensorsError.trailingBytes(path: path, coveredBytes: covered, bufferSize: bufferSize)
        }
    }

    /// `-?[0-9]+` (the JSON grammar already excludes leading zeros); fractions and exponents are not sizes.
    private static func isIntegerLiteral(_ text: String) -> Bool {
        !text.utf8.contains { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
    }

    /// Compact rendering of a small JSON value for messages.
    private static func describe(_ value: SafeTensorsJSONValue) -> String {
        switch value {
        case let .array(items): return "[" + items.map(describe).joined(separator: ", ") + "]"
        case let .number(text): return text
        case let .string(text): return "\"\(text)\""
        default: return value.typeName
        }
    }
}
