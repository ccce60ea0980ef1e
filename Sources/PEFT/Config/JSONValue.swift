// A JSON value that round-trips exactly: adapter configs written by newer PEFT versions carry fields we do not
// interpret, and saving them back must not lose them.
import Foundation

public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public var anyValue: Any {
        switch self {
        case .null: return NSNull()
        case .bool(let b): return b
        case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? (Int(d) as Any) : d
        case .string(let s): return s
        case .array(let a): return a.map(\.anyValue)
        case .object(let o): return o.mapValues(\.anyValue)
        }
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var doubleValue: Double? { if case .number(let d) = self { return d }; return nil }
    /// The number as an Int when it is whole and in range (1e300 or inf is nil, never a trap).
    public var intValue: Int? { if case .number(let d) = self { return Int(exactly: d) }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    public var objectValue: [String: JSONValue]? { if case .object(let o) = self { return o }; return nil }
    public var isNull: Bool { self == .null }

    /// Parses a JSON document whose top level is an object. `source` names the file in errors.
    public static func parseObject(_ data: Data, source: String) throws -> [String: JSONValue] {
        var parser = JSONParser(bytes: [UInt8](data), source: source)
        let value = try parser.parseDocument()
        guard case .object(let o) = value else {
            throw PEFTError.invalidConfig(field: source, reason: "top level is not a JSON object")
        }
        return o
    }

    /// Pretty JSON with sorted keys, two-space indent, as PEFT writes (`json.dumps(indent=2, sort_keys=True)`).
    public static func serialize(_ object: [String: JSONValue]) throws -> Data {
        var text = ""
        write(.object(object), indent: 0, into: &text)
        return Data((text + "\n").utf8)
    }

    private static func write(_ v: JSONValue, indent: Int, into s: inout String) {
        let pad = String(repeating: " ", count: indent), inner = String(repeating: " ", count: indent + 2)
        switch v {
        case .null: s += "null"
        case .bool(let b): s += b ? "true" : "false"
        case .number(let d):
            if d == d.rounded() && abs(d) < 1e15 && !isFloatLiteral(d) { s += String(Int(d)) } else { s += formatDouble(d) }
        case .string(let str): s += quote(str)
        case .array(let a):
            if a.isEmpty { s += "[]"; return }
            s += "[\n"
            for (i, e) in a.enumerated() { s += inner; write(e, indent: indent + 2, into: &s); s += i + 1 < a.count ? ",\n" : "\n" }
            s += pad + "]"
        case .object(let o):
            if o.isEmpty { s += "{}"; return }
            s += "{\n"
            let keys = o.keys.sorted()
            for (i, k) in keys.enumerated() {
                s += inner + quote(k) + ": "; write(o[k]!, indent: indent + 2, into: &s); s += i + 1 < keys.count ? ",\n" : "\n"
            }
            s += pad + "}"
        }
    }

    /// Integral doubles are written as integers; floats like 0.0 that PEFT writes as `0.0` are indistinguishable
    /// after parsing, and PEFT reads either form, so this is only cosmetic.
    private static func isFloatLiteral(_ d: Double) -> Bool { false }

    private static func formatDouble(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d > 0 ? "Infinity" : "-Infinity" }
        return "\(d)"  // Swift prints the shortest round-tripping form, like Python's repr.
    }

    private static func quote(_ str: String) -> String {
        var out = "\""
        for u in str.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || u.value > 0x7E {
                    // ASCII-only output like Python's default ensure_ascii=True (surrogate pairs above the BMP).
                    if u.value > 0xFFFF {
                        let v = u.value - 0x10000
                        out += String(format: "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF))
                    } else { out += String(format: "\\u%04x", u.value) }
                } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}
