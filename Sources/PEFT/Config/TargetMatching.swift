// Which modules an adapter applies to, with PEFT's exact matching rules (spec §1.2):
//   list  -> exact name or dot-boundary suffix ("q_proj" matches "model.layers.0.self_attn.q_proj", not "xq_proj")
//   regex -> full match against the whole dotted name
//   all-linear -> every linear module except the output head
import Foundation

public enum ModuleSelector: Equatable, Sendable {
    case names([String])
    case regex(String)
    case allLinear

    /// From a config value: a string is a regex unless it is "all-linear" (any case); a list is names.
    public init(json: JSONValue, field: String) throws {
        switch json {
        case .string(let s): self = s.lowercased() == "all-linear" ? .allLinear : .regex(s)
        case .array(let items):
            self = .names(try items.map {
                guard let s = $0.stringValue else { throw PEFTError.invalidConfig(field: field, reason: "list entries must be strings") }
                return s
            })
        default: throw PEFTError.invalidConfig(field: field, reason: "must be a string (regex or \"all-linear\") or a list of names")
        }
    }

    /// Parses a command-line value: "q_proj,v_proj", "all-linear", or "re:<regex>".
    public init(commandLine text: String) {
        if text.lowercased() == "all-linear" { self = .allLinear }
        else if text.hasPrefix("re:") { self = .regex(String(text.dropFirst(3))) }
        else { self = .names(text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }) }
    }

    public var json: JSONValue {
        switch self {
        case .names(let n): return .array(n.sorted().map(JSONValue.string))
        case .regex(let r): return .string(r)
        case .allLinear: return .string("all-linear")
        }
    }

    /// `outputHeadNames` are excluded by `all-linear` (PEFT skips the LM head).
    public func matches(_ module: String, outputHeadNames: Set<String> = ["lm_head"]) throws -> Bool {
        switch self {
        case .names(let names): return names.contains { module == $0 || module.hasSuffix("." + $0) }
        case .regex(let pattern): return try PatternMatch.fullMatch(pattern, module)
        case .allLinear:
            let leaf = module.split(separator: ".").last.map(String.init) ?? module
            return !outputHeadNames.contains(module) && !outputHeadNames.contains(leaf)
        }
    }
}

public enum PatternMatch {
    nonisolated(unsafe) private static var cache: [String: NSRegularExpression] = [:]
    private static let lock = NSLock()

    static func regex(_ pattern: String) throws -> NSRegularExpression {
        lock.lock(); defer { lock.unlock() }
        if let r = cache[pattern] { return r }
        do {
            let r = try NSRegularExpression(pattern: pattern)
            cache[pattern] = r
            return r
        } catch {
            throw PEFTError.invalidConfig(field: "pattern", reason: "'\(pattern)' is not a valid regular expression")
        }
    }

    /// Python `re.fullmatch(pattern, text)`.
    public static func fullMatch(_ pattern: String, _ text: String) throws -> Bool {
        try firstMatch("^(?:\(pattern))$", text) != nil
    }

    /// Python `re.match` (anchored at the start); returns capture groups (nil for groups that did not take part).
    public static func firstMatch(_ pattern: String, _ text: String) throws -> [String?]? {
        let r = try regex(pattern)
        let ns = text as NSString
        guard let m = r.firstMatch(in: text, range: NSRange(location: 0, length: ns.length)), m.range.location == 0 else { return nil }
        return (0..<m.numberOfRanges).map { i in
            let range = m.range(at: i)
            return range.location == NSNotFound ? nil : ns.substring(with: range)
        }
    }

    /// PEFT's layer-index rule: with patterns, the first `.<pattern>.<digits>.`; without, the first
    /// `.<name>.<digits>.` segment. Returns nil when the module has no layer index.
    public static func layerIndex(of module: String, layersPattern: [String]?) throws -> Int? {
        let patterns = layersPattern.map { $0.map { NSRegularExpression.escapedPattern(for: $0) } } ?? ["[^.]*"]
        for p in patterns {
            if let groups = try firstMatch(".*?\\.\(p)\\.(\\d+)\\.", module), let digits = groups.last ?? nil {
                return Int(digits)
            }
        }
        return nil
    }

    /// PEFT's `get_pattern_key`: the first key (in order) for which `(.*\.)?(key)$` matches from the start.
    public static func patternKey(for module: String, keys: [String]) throws -> String? {
        for key in keys where try firstMatch("(.*\\.)?(\(key))$", module) != nil { return key }
        return nil
    }
}
