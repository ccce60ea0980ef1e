// JSONL data for encoder fine-tuning, one example per line:
//   classification  {"text": "...", "label": "positive" | 3}   (optional "text_pair" for sentence-pair tasks)
//   retrieval       {"anchor": "...", "positive": "..."}       (MultipleNegativesRankingLoss pairs)
// Labels are all strings or all integers. The label set comes from the training split (sorted names, or 0..<max+1
// for integers); a valid/test label outside it is a typed error naming the file and line.
import Foundation
import PEFT

/// What an encoder is fine-tuned for.
public enum EncoderTask: String, CaseIterable, Sendable {
    case classification, retrieval

    /// The task of a JSONL file's first example: {"anchor", ...} is retrieval, anything else classification.
    public static func of(_ url: URL) throws -> EncoderTask { try EncoderJSONL.task(of: url) }
}

/// A class label as written in the data.
public enum ClassLabel: Hashable, Sendable, CustomStringConvertible {
    case index(Int)
    case name(String)
    public var description: String {
        switch self {
        case .index(let i): return "\(i)"
        case .name(let s): return "\"\(s)\""
        }
    }
}

public struct ClassificationExample: Equatable, Sendable {
    public var text: String
    public var pair: String?
    public var label: ClassLabel
    public init(text: String, pair: String? = nil, label: ClassLabel) { self.text = text; self.pair = pair; self.label = label }
}

public struct RetrievalPair: Equatable, Sendable {
    public var anchor: String
    public var positive: String
    public init(anchor: String, positive: String) { self.anchor = anchor; self.positive = positive }
}

/// Bad encoder data; every case names the file and, where there is one, the line.
public enum EncoderDataError: Error, CustomStringConvertible, Equatable {
    case labelOutOfRange(path: String, line: Int, label: Int, classes: Int)
    case unknownLabel(path: String, line: Int, label: String, known: [String], labelSource: String)
    case mixedLabelKinds(path: String, line: Int, expected: String)
    case tooFewClasses(path: String, classes: [String])
    case wrongTask(path: String, expected: EncoderTask, keys: [String])

    public var description: String {
        switch self {
        case let .labelOutOfRange(path, line, label, classes):
            return classes > 0 ? "\(path):\(line): label \(label) is out of range: the classes are 0..<\(classes)"
                : "\(path):\(line): label \(label) is out of range: integer labels are class ids 0, 1, 2, …"
        case let .unknownLabel(path, line, label, known, source):
            return "\(path):\(line): label \(label) is not one of the \(known.count) labels of \(source) (\(known.joined(separator: ", "))): the label sets do not match"
        case let .mixedLabelKinds(path, line, expected):
            return "\(path):\(line): label must be \(expected) like the first example's; use one kind of label per dataset"
        case let .tooFewClasses(path, classes):
            return "\(path): classification needs at least 2 classes, the labels are \(classes)"
        case let .wrongTask(path, expected, keys):
            return "\(path): keys \(keys) are not \(expected == .classification ? "{\"text\", \"label\"}" : "{\"anchor\", \"positive\"}") examples for \(expected.rawValue)"
        }
    }
}

/// The classes of a classifier: names by id, and how data labels map to ids.
public struct LabelSet: Equatable, Sendable {
    /// Class names by id ("0", "1", … for integer labels).
    public let names: [String]
    /// Whether the data writes labels as integers (class ids) rather than names.
    public let integerLabels: Bool
    /// File the set was read from, named in mismatch errors.
    public let source: String

    public init(names: [String], integerLabels: Bool, source: String) {
        self.names = names; self.integerLabels = integerLabels; self.source = source
    }

    /// The set a training split defines.
    public init(training file: ClassificationDataFile) throws {
        guard let first = file.examples.first else { throw TrainingDataError.emptyFile(path: file.path) }
        if case .index = first.label {
            let maxIndex = file.examples.compactMap { if case .index(let i) = $0.label { return i }; return nil }.max() ?? 0
            names = (0...maxIndex).map(String.init); integerLabels = true
        } else {
            names = Set(file.examples.compactMap { if case .name(let s) = $0.label { return s }; return nil }).sorted(); integerLabels = false
        }
        source = file.path
        guard names.count >= 2 else { throw EncoderDataError.tooFewClasses(path: file.path, classes: names) }
    }

    /// The class id of a label at `path:line`.
    public func id(of label: ClassLabel, path: String, line: Int) throws -> Int {
        switch label {
        case .index(let i):
            guard integerLabels else { throw EncoderDataError.mixedLabelKinds(path: path, line: line, expected: "a string") }
            guard (0..<names.count).contains(i) else { throw EncoderDataError.labelOutOfRange(path: path, line: line, label: i, classes: names.count) }
            return i
        case .name(let s):
            guard !integerLabels else { throw EncoderDataError.mixedLabelKinds(path: path, line: line, expected: "an integer") }
            guard let i = names.firstIndex(of: s) else {
                throw EncoderDataError.unknownLabel(path: path, line: line, label: "\"\(s)\"", known: names, labelSource: source)
            }
            return i
        }
    }

    /// labels.json beside a classifier adapter: {"labels": [...], "integer_labels": bool}.
    public static let fileName = "labels.json"

    public func write(to directory: URL) throws {
        let object: [String: Any] = ["labels": names, "integer_labels": integerLabels]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        let url = directory.appendingPathComponent(Self.fileName)
        let temporary = directory.appendingPathComponent(".\(Self.fileName).tmp-\(getpid())")
        do {
            try data.write(to: temporary)
            guard rename(temporary.path, url.path) == 0 else { throw TrainingError.file(path: url.path, reason: "cannot move into place (errno \(errno))") }
        } catch let error as TrainingError { throw error } catch {
            throw TrainingError.file(path: url.path, reason: error.localizedDescription)
        }
    }

    public static func load(from directory: URL) throws -> LabelSet {
        let url = directory.appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: url.path),
              let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let names = o["labels"] as? [String], names.count >= 2 else {
            throw TrainingError.file(path: url.path, reason: "missing or not {\"labels\": [at least 2 names]}: a classifier adapter needs its label list")
        }
        return LabelSet(names: names, integerLabels: o["integer_labels"] as? Bool ?? false, source: url.path)
    }
}

/// A classification JSONL file.
public struct ClassificationDataFile: Sendable {
    public let path: String
    public let examples: [ClassificationExample]
    public let lineNumbers: [Int]

    /// Examples with the line each came from (`path` and lines name them in errors).
    public init(path: String, examples: [ClassificationExample], lineNumbers: [Int]) {
        self.path = path; self.examples = examples; self.lineNumbers = lineNumbers
    }

    public static func load(_ url: URL) throws -> ClassificationDataFile {
        let path = url.path
        var examples: [ClassificationExample] = [], lines: [Int] = []
        var kind: String? = nil
        try EncoderJSONL.forEachObject(url) { object, line in
            guard object["text"] != nil || object["label"] != nil else {
                throw EncoderDataError.wrongTask(path: path, expected: .classification, keys: object.keys.sorted())
            }
            let text = try EncoderJSONL.string(object, "text", path: path, line: line)
            let pair = object["text_pair"] == nil ? nil : try EncoderJSONL.string(object, "text_pair", path: path, line: line)
            let label: ClassLabel
            switch object["label"] {
            case nil, .null?: throw TrainingDataError.missingField(path: path, line: line, field: "label", reason: "classification examples are {\"text\", \"label\"}")
            case .number(let d)?:
                guard d == d.rounded(), let i = Int(exactly: d) else {
                    throw TrainingDataError.wrongType(path: path, line: line, field: "label", expected: "a string or a whole number", got: "\(d)")
                }
                guard i >= 0 else { throw EncoderDataError.labelOutOfRange(path: path, line: line, label: i, classes: 0) }
                label = .index(i)
            case .string(let s)?: label = .name(s)
            case let other?:
                throw TrainingDataError.wrongType(path: path, line: line, field: "label", expected: "a string or a whole number", got: "\(other.anyValue)")
            }
            let thisKind = { if case .index = label { return "an integer" }; return "a string" }()
            if let kind, kind != thisKind { throw EncoderDataError.mixedLabelKinds(path: path, line: line, expected: kind) }
            kind = thisKind
            examples.append(ClassificationExample(text: text, pair: pair, label: label)); lines.append(line)
        }
        guard !examples.isEmpty else { throw TrainingDataError.emptyFile(path: path) }
        return ClassificationDataFile(path: path, examples: examples, lineNumbers: lines)
    }

    /// The first `n` examples.
    public func prefix(_ n: Int) -> ClassificationDataFile {
        ClassificationDataFile(path: path, examples: Array(examples.prefix(n)), lineNumbers: Array(lineNumbers.prefix(n)))
    }

    /// Class ids of every example under `labels` (typed errors for labels outside the set).
    public func classIDs(_ labels: LabelSet) throws -> [Int] {
        try zip(examples, lineNumbers).map { try labels.id(of: $0.label, path: path, line: $1) }
    }
}

/// A retrieval JSONL file of (anchor, positive) pairs.
public struct RetrievalDataFile: Sendable {
    public let path: String
    public let pairs: [RetrievalPair]
    public let lineNumbers: [Int]

    /// Pairs with the line each came from.
    public init(path: String, pairs: [RetrievalPair], lineNumbers: [Int]) {
        self.path = path; self.pairs = pairs; self.lineNumbers = lineNumbers
    }

    public static func load(_ url: URL) throws -> RetrievalDataFile {
        let path = url.path
        var pairs: [RetrievalPair] = [], lines: [Int] = []
        try EncoderJSONL.forEachObject(url) { object, line in
            guard object["anchor"] != nil || object["positive"] != nil else {
                throw EncoderDataError.wrongTask(path: path, expected: .retrieval, keys: object.keys.sorted())
            }
            pairs.append(RetrievalPair(anchor: try EncoderJSONL.string(object, "anchor", path: path, line: line),
                                       positive: try EncoderJSONL.string(object, "positive", path: path, line: line)))
            lines.append(line)
        }
        guard !pairs.isEmpty else { throw TrainingDataError.emptyFile(path: path) }
        return RetrievalDataFile(path: path, pairs: pairs, lineNumbers: lines)
    }

    /// The first `n` pairs.
    public func prefix(_ n: Int) -> RetrievalDataFile {
        RetrievalDataFile(path: path, pairs: Array(pairs.prefix(n)), lineNumbers: Array(lineNumbers.prefix(n)))
    }
}

enum EncoderJSONL {
    /// Calls `body` with each non-blank line's object and its 1-based line number.
    static func forEachObject(_ url: URL, _ body: ([String: JSONValue], Int) throws -> Void) throws {
        let path = url.path
        guard FileManager.default.fileExists(atPath: path) else { throw TrainingDataError.missingFile(path: path) }
        guard let data = FileManager.default.contents(atPath: path) else { throw TrainingDataError.unreadable(path: path, reason: "cannot read") }
        for (index, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty else { continue }
            let dictionary: [String: JSONValue]
            do { dictionary = try JSONValue.parseObject(Data(trimmed.utf8), source: path) } catch {
                throw TrainingDataError.invalidJSON(path: path, line: index + 1, reason: "\(error)")
            }
            try body(dictionary, index + 1)
        }
    }

    static func string(_ object: [String: JSONValue], _ field: String, path: String, line: Int) throws -> String {
        guard let value = object[field], !value.isNull else { throw TrainingDataError.missingField(path: path, line: line, field: field, reason: "required") }
        guard let s = value.stringValue else {
            throw TrainingDataError.wrongType(path: path, line: line, field: field, expected: "a string", got: "\(value.anyValue)")
        }
        return s
    }

    /// The task a file's first example belongs to ("label" → classification, "anchor" → retrieval).
    static func task(of url: URL) throws -> EncoderTask {
        var found: EncoderTask? = nil
        struct Stop: Error {}
        do {
            try forEachObject(url) { object, _ in
                found = object["anchor"] != nil ? .retrieval : .classification
                throw Stop()
            }
        } catch is Stop {}
        guard let found else { throw TrainingDataError.emptyFile(path: url.path) }
        return found
    }
}
