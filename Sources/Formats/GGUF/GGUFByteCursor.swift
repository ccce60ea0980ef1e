// Bounds-checked little-endian reads over a mapped GGUF header. Every read checks the remaining
// bytes first, so a corrupt length can never move the cursor outside the file.
import Foundation

struct GGUFByteCursor {
    let base: UnsafeRawPointer
    let size: Int
    let file: String
    private(set) var offset: Int = 0

    init(base: UnsafeRawPointer, size: Int, file: String) {
        self.base = base
        self.size = size
        self.file = file
    }

    var remaining: Int { size - offset }

    mutating func skip(to newOffset: Int) { offset = newOffset }

    private func require(_ count: Int, _ field: @autoclosure () -> String) throws {
        guard count >= 0, count <= remaining else {
            throw GGUFError.truncated(file: file, field: field(), offset: offset, needed: count, fileSize: size)
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ field: @autoclosure () -> String) throws -> T {
        try require(MemoryLayout<T>.size, field())
        let value = T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return value
    }

    mutating func readFloat(_ field: @autoclosure () -> String) throws -> Float {
        Float(bitPattern: try read(UInt32.self, field()))
    }

    mutating func readDouble(_ field: @autoclosure () -> String) throws -> Double {
        Double(bitPattern: try read(UInt64.self, field()))
    }

    /// A u64 count that must fit in the remaining bytes at `minimumSize` bytes per item.
    mutating func readCount(minimumSize: Int, _ field: @autoclosure () -> String) throws -> Int {
        let count = try read(UInt64.self, field())
        let limit = UInt64(remaining / max(minimumSize, 1))
        guard count <= limit else {
            throw GGUFError.absurdCount(file: file, field: field(), count: count, remainingBytes: remaining)
        }
        return Int(count)
    }

    /// A GGUF string: u64 byte length, then UTF-8 bytes (no terminator).
    mutating func readString(_ field: @autoclosure () -> String) throws -> String {
        let length = try readCount(minimumSize: 1, field())
        let bytes = UnsafeRawBufferPointer(start: base + offset, count: length).bindMemory(to: UInt8.self)
        guard let text = GGUFByteCursor.decodeUTF8(bytes) else {
            throw GGUFError.invalidUTF8(file: file, field: field())
        }
        offset += length
        return text
    }

    static func decodeUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        // Pure ASCII (the common case for keys and most tokens) is valid UTF-8 by construction.
        var ascii = true
        for b in bytes where b >= 0x80 { ascii = false; break }
        if ascii { return String(decoding: bytes, as: UTF8.self) }
        if #available(macOS 15, iOS 18, *) { return String(validating: bytes, as: UTF8.self) }
        return String(bytes: bytes, encoding: .utf8)
    }
}
