// GGUF metadata values: the 13 wire types and typed accessors for reading model hyper-parameters.
import Foundation


/// The type tag of a GGUF metadata value, as stored in the file.
public enum GGUFValueType: UInt32, Sendable, CustomStringConvertible {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Fewest bytes one value of this type occupies in the file (used to reject absurd array counts).
    var minimumEncodedSize: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string: return 8        // u64 length, possibly empty
        case .array: return 12        // u32 element type + u64 count
        }
    }

    public var description: String {
        switch self {
        case .uint8: return "u8"
        case .int8: return "i8"
        case .uint16: return "u16"
        case .int16: return "i16"
        case .uint32: return "u32"
        case .int32: return "i32"
        case .float32: return "f32"
        case .bool: return "bool"
        case .string: return "string"
        case .array: return "array"
        case .uint64: return "u64"
        case .int64: return "i64"
        case .float64: return "f64"
        }
    }
}

/// One GGUF metadata value. Arrays keep their element type so empty arrays stay typed.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    case array(elementType: GGUFValueType, values: [GGUFValue])

    /// The wire type of this value.
    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .uint64: return .uint64
        case .int64: return .int64
        case .float32: return .float32
        case .float64: return .float64
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        }
    }

    /// Any integer value as `Int` (nil for non-integers and u64 values above `Int.max`).
    public var intValue: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return Int(exactly: v)
        case let .int64(v): return Int(v)
        default: return nil
        }
    }

    /// Any numeric value (integer or float) as `Double`.
    public var doubleValue: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        default: return intValue.map(Double.init)
        }
    }

    /// Any numeric value as `Float` (f32 values exactly as stored).
    public var floatValue: Float? {
        if case let .float32(v) = self { return v }
        return doubleValue.map(Float.init)
    }

    /// A bool value (GGUF bools are one byte, 0 or 1).
    public var boolValue: Bool? {
        if case let .bool(v) = self { return v }
        return nil
    }

    /// A string value.
    public var stringValue: String? {
        if case let .string(v) = self { return v }
        return nil
    }

    /// The elements of an array value.
    public var arrayValue: [GGUFValue]? {
        if case let .array(_, values) = self { return values }
        return nil
    }

    /// An array of strings (nil if this is not an array or any element is not a string).
    public var stringArray: [String]? {
        guard let values = arrayValue else { return nil }
        var out: [String] = []
        out.reserveCapacity(values.count)
        for v in values { guard let s = v.stringValue else { return nil }; out.append(s) }
        return out
    }

    /// An array of integers of any integer type.
    public var intArray: [Int]? {
        guard let values = arrayValue else { return nil }
        var out: [Int] = []
        out.reserveCapacity(values.count)
        for v in values { guard let i = v.intValue else { return nil }; out.append(i) }
        return out
    }

    /// An array of numbers as `Float`.
    public var floatArray: [Float]? {
        guard let values = arrayValue else { return nil }
        var out: [Float] = []
        out.reserveCapacity(values.count)
        for v in values { guard let f = v.floatValue else { return nil }; out.append(f) }
        return out
    }

    /// Short human-readable rendering; arrays longer than `maxItems` show their first items and the count.
    public func summary(maxItems: Int = 8) -> String {
        switch self {
        case let .string(s): return GGUFValue.quoted(s)
        case let .bool(b): return b ? "true" : "false"
        case let .float32(v): return "\(v)"
        case let .float64(v): return "\(v)"
        case let .array(elementType, values):
            let shown = values.prefix(max(0, maxItems)).map { $0.summary(maxItems: maxItems) }
            let more = values.count > shown.count ? ", … (\(values.count) \(elementType) items)" : ""
            return "[" + shown.joined(separator: ", ") + more + "]"
        default: return intValue.map(String.init) ?? "\(self)"
        }
    }

    /// A JSON-compatible rendering (Foundation types) of the value, arrays cut to `maxItems`.
    public func jsonObject(maxItems: Int = .max) -> Any {
        switch self {
        case let .string(s): return s
        case let .bool(b): return b
        case let .float32(v): return v.isFinite ? Double(v) as Any : "\(v)"
        case let .float64(v): return v.isFinite ? v as Any : "\(v)"
        case let .uint64(v): return Int(exactly: v).map { $0 as Any } ?? "\(v)"
        case let .array(elementType, values):
            let items = values.prefix(max(0, maxItems)).map { $0.jsonObject(maxItems: maxItems) }
            if items.count == values.count { return items }
            return ["type": "\(elementType)", "count": values.count, "first": items] as [String: Any]
        default: return intValue ?? 0
        }
    }

    static func quoted(_ s: String, limit: Int = 120) -> String {
        var body = s.count > limit ? String(s.prefix(limit)) + "…" : s
        body = body.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
            .replacingOccurrences(of: "\"", with: "\\\"")
        return "\"" + body + "\""
    }
}
