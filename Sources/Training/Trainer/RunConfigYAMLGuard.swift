// Limits checked on a YAML run config before Yams sees it. Yams builds nested values recursively and expands
// aliases into copies, so a few kilobytes of hostile YAML overflow the stack ("- - - - …", "[[[[…", deep block
// maps) or take exponential time and memory (nested aliases, "billion laughs"); both were found by fuzzing
// (docs/RELIABILITY.md). A run config is a flat mapping of option: value (a list at most), so the limits are far
// beyond any real file: nesting 32 levels, no anchors or aliases. Yams also force-unwraps every mapping key as a
// string, so a sequence or mapping used as a key ("? - a") traps inside Yams; keys are checked on the composed
// node tree first, and scalars are resolved here, not by Yams' constructors (which trap on sexagesimal integers
// such as "3:3:3:…:33" that overflow).
import Yams

enum RunConfigYAMLGuard {
    static let maxDepth = 32

    /// Throws `TrainingError.configFile` when `text` nests deeper than `maxDepth` or uses an anchor/alias.
    static func check(_ text: String, path: String) throws {
        func fail(_ line: Int, _ reason: String) -> TrainingError {
            TrainingError.configFile(path: path, key: nil, reason: "line \(line): \(reason)")
        }
        var flowDepth = 0, lineNumber = 0
        for line in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let bytes = Array(line)
            var i = 0, blockDepth = 0
            // Block nesting: indentation plus the "- " / "? " / ": " markers that open a node on the same line.
            while i < bytes.count, bytes[i] == 0x20 { i += 1; blockDepth += 1 }
            var quote: UInt8? = nil
            var atNodeStart = true
            while i < bytes.count {
                let c = bytes[i]
                if let q = quote {
                    if c == q { quote = nil } else if c == UInt8(ascii: "\\") && q == UInt8(ascii: "\"") { i += 1 }
                    i += 1; continue
                }
                switch c {
                case UInt8(ascii: "#") where i == 0 || bytes[i - 1] == 0x20 || bytes[i - 1] == 0x09:
                    i = bytes.count; continue  // comment to the end of the line
                case UInt8(ascii: "\""), UInt8(ascii: "'"):
                    if atNodeStart { quote = c }
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    flowDepth += 1
                    guard flowDepth <= maxDepth else { throw fail(lineNumber, "nested deeper than \(maxDepth) levels") }
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    flowDepth = max(0, flowDepth - 1)
                case UInt8(ascii: "-"), UInt8(ascii: "?"), UInt8(ascii: ":"):
                    if i + 1 == bytes.count || bytes[i + 1] == 0x20 {
                        blockDepth += 1
                        guard blockDepth <= maxDepth * 4 else { throw fail(lineNumber, "nested deeper than \(maxDepth) levels") }
                    }
                case UInt8(ascii: "&") where atNodeStart, UInt8(ascii: "*") where atNodeStart:
                    throw fail(lineNumber, "anchors and aliases (&name, *name) are not supported in run configs")
                default: break
                }
                // A node can start after whitespace or a flow indicator; '*' inside a plain scalar (re:.*) is text.
                atNodeStart = [0x20, 0x09, UInt8(ascii: "["), UInt8(ascii: "{"), UInt8(ascii: ",")].contains(c)
                i += 1
            }
            guard blockDepth <= maxDepth * 4 else { throw fail(lineNumber, "indented deeper than \(maxDepth * 4) columns") }
        }
    }

    /// Throws when a mapping anywhere in the document has a key that is not a plain scalar.
    static func checkKeys(_ text: String, path: String) throws {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw TrainingError.configFile(path: path, key: nil, reason: "not valid YAML: \(error)")
        }
        func walk(_ node: Node) throws {
            switch node {
            case .scalar: return
            case .sequence(let items): for item in items { try walk(item) }
            case .mapping(let pairs):
                for (key, value) in pairs {
                    guard case .scalar = key else {
                        throw TrainingError.configFile(path: path, key: nil, reason: "line \(key.mark?.line ?? 0): a key must be a plain name, not a list or mapping")
                    }
                    try walk(value)
                }
            }
        }
        if let root { try walk(root) }
    }

    /// The top-level mapping of a YAML run config as option → value, built from the composed node tree (after
    /// `check`), resolving plain scalars as YAML's core schema does: null, true/false, integers, floats, strings.
    static func entries(_ text: String, path: String) throws -> [String: ConfigValue] {
        try check(text, path: path)
        try checkKeys(text, path: path)
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw TrainingError.configFile(path: path, key: nil, reason: "not valid YAML: \(error)")
        }
        guard let root else { throw TrainingError.configFile(path: path, key: nil, reason: "the file is empty") }
        guard case .mapping(let pairs) = root else {
            throw TrainingError.configFile(path: path, key: nil, reason: "the top level must be a mapping of option: value")
        }
        var result: [String: ConfigValue] = [:]
        for (key, value) in pairs { result[key.scalar?.string ?? ""] = configValue(value) }
        return result
    }

    static func configValue(_ node: Node) -> ConfigValue {
        switch node {
        case .sequence(let items): return .list(items.map(configValue))
        case .mapping: return .mapping
        case .scalar(let scalar):
            let text = scalar.string
            guard scalar.style == .plain else { return .string(text) }
            switch text {
            case "", "~", "null", "Null", "NULL": return .null
            case "true", "True", "TRUE": return .bool(true)
            case "false", "False", "FALSE": return .bool(false)
            case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .number(.infinity)
            case "-.inf", "-.Inf", "-.INF": return .number(-.infinity)
            case ".nan", ".NaN", ".NAN": return .number(.nan)
            default: break
            }
            let digits = text.replacingOccurrences(of: "_", with: "")
            if digits.range(of: #"^[-+]?[0-9]+$"#, options: .regularExpression) != nil {
                return Double(digits).map { .number($0) } ?? .string(text)
            }
            if digits.range(of: #"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$"#, options: .regularExpression) != nil,
               let d = Double(digits) {
                return .number(d)
            }
            return .string(text)
        }
    }
}
