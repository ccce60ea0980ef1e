// JSONL training data in the formats mlx-lm, TRL and PEFT users already have, one JSON object per line:
//   {"text": "..."}                                          plain language modelling, loss on every token
//   {"prompt": "...", "completion": "..."}                   loss on the completion
//   {"messages": [{"role": "user", "content": "..."}, ...]}  chat, rendered with the model's template,
//                                                            loss on the assistant turns
//   {"prompt": [messages], "completion": [messages]}         TRL's conversational prompt-completion
// Blank lines are skipped; every other line must parse, and the first error stops loading with `file:line`.
import Foundation
import PEFT
import Tokenizers

/// One training example, before tokenisation.
public enum TrainingExample: Equatable, Sendable {
    /// Plain text: every token is a target.
    case text(String)
    /// A prompt and its completion: only the completion is a target by default.
    case promptCompletion(prompt: String, completion: String)
    /// A conversation: only assistant turns are targets by default.
    case chat([ChatMessage])

    /// The format's name as users write it ("text", "prompt/completion", "messages").
    public var formatName: String {
        switch self {
        case .text: return "text"
        case .promptCompletion: return "prompt/completion"
        case .chat: return "messages"
        }
    }
}

/// The examples of one JSONL file, each with the line it came from (for messages about it later).
public struct TrainingDataFile: Sendable {
    /// Where the examples came from (used in messages).
    public let path: String
    public let examples: [TrainingExample]
    /// 1-based source line of each example.
    public let lineNumbers: [Int]

    /// Examples from memory; `lineNumbers` must have one entry per example.
    public init(path: String, examples: [TrainingExample], lineNumbers: [Int]) {
        precondition(examples.count == lineNumbers.count, "one line number per example")
        self.path = path; self.examples = examples; self.lineNumbers = lineNumbers
    }

    /// Roles a chat message may have.
    public static let knownRoles: Set<String> = ["system", "user", "assistant", "tool"]

    /// Reads and parses a JSONL file.
    public static func load(_ url: URL) throws -> TrainingDataFile {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw TrainingDataError.missingFile(path: url.path)
        }
        guard !isDirectory.boolValue else { throw TrainingDataError.unreadable(path: url.path, reason: "is a directory") }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TrainingDataError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        return try parse(data, path: url.path)
    }

    /// Parses JSONL bytes; `path` names the source in errors.
    public static func parse(_ data: Data, path: String) throws -> TrainingDataFile {
        var examples: [TrainingExample] = []
        var lines: [Int] = []
        var lineNumber = 0
        for rawLine in data.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = rawLine
            if line.last == 0x0D { line = line.dropLast() }  // CRLF files
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            if lineNumber == 1, line.starts(with: [0xEF, 0xBB, 0xBF]) { line = line.dropFirst(3) }  // UTF-8 BOM
            let example = try parseLine(Data(line), path: path, line: lineNumber)
            if let first = examples.first, first.formatName != example.formatName {
                throw TrainingDataError.mixedFormats(path: path, line: lineNumber, expected: first.formatName, got: example.formatName)
            }
            examples.append(example)
            lines.append(lineNumber)
        }
        guard !examples.isEmpty else { throw TrainingDataError.emptyFile(path: path) }
        return TrainingDataFile(path: path, examples: examples, lineNumbers: lines)
    }

    /// One line → one example, or the precise reason it is not one.
    static func parseLine(_ bytes: Data, path: String, line: Int) throws -> TrainingExample {
        let object: [String: JSONValue]
        do { object = try JSONValue.parseObject(bytes, source: path) } catch let PEFTError.invalidConfig(_, reason) {
            // The parser counts lines within this one line; only the column is useful here.
            let trimmed = reason.replacingOccurrences(of: "invalid JSON at line 1, ", with: "")
            throw TrainingDataError.invalidJSON(path: path, line: line, reason: trimmed)
        }
        func string(_ field: String) throws -> String {
            guard let value = object[field] else {
                throw TrainingDataError.missingField(path: path, line: line, field: field, reason: "needed next to \(object.keys.sorted())")
            }
            guard let s = value.stringValue else {
                throw TrainingDataError.wrongType(path: path, line: line, field: field, expected: "a string", got: typeName(value))
            }
            return s
        }
        if let messages = object["messages"] {
            return .chat(try parseMessages(messages, field: "messages", path: path, line: line))
        }
        if object["prompt"] != nil || object["completion"] != nil {
            if case .array = object["prompt"] {  // TRL conversational prompt-completion
                let prompt = try parseMessages(object["prompt"]!, field: "prompt", path: path, line: line)
                guard let completionValue = object["completion"] else {
                    throw TrainingDataError.missingField(path: path, line: line, field: "completion", reason: "needed next to \"prompt\"")
                }
                guard case .array = completionValue else {
                    throw TrainingDataError.wrongType(path: path, line: line, field: "completion",
                                                      expected: "a list of messages (the prompt is one)", got: typeName(completionValue))
                }
                return .chat(prompt + (try parseMessages(completionValue, field: "completion", path: path, line: line)))
            }
            return .promptCompletion(prompt: try string("prompt"), completion: try string("completion"))
        }
        if object["text"] != nil { return .text(try string("text")) }
        throw TrainingDataError.unknownFormat(path: path, line: line, keys: object.keys.sorted())
    }

    static func parseMessages(_ value: JSONValue, field: String, path: String, line: Int) throws -> [ChatMessage] {
        guard let items = value.arrayValue else {
            throw TrainingDataError.wrongType(path: path, line: line, field: field, expected: "a list of messages", got: typeName(value))
        }
        guard !items.isEmpty else { throw TrainingDataError.invalidValue(path: path, line: line, field: field, reason: "the list is empty") }
        return try items.enumerated().map { index, item in
            let here = "\(field)[\(index)]"
            guard let message = item.objectValue else {
                throw TrainingDataError.wrongType(path: path, line: line, field: here, expected: "an object {\"role\", \"content\"}", got: typeName(item))
            }
            guard let roleValue = message["role"] else {
                throw TrainingDataError.missingField(path: path, line: line, field: here + ".role", reason: "every message needs a role")
            }
            guard let role = roleValue.stringValue else {
                throw TrainingDataError.wrongType(path: path, line: line, field: here + ".role", expected: "a string", got: typeName(roleValue))
            }
            guard knownRoles.contains(role) else {
                throw TrainingDataError.invalidValue(path: path, line: line, field: here + ".role",
                                                     reason: "unknown role \"\(role)\" (use \(knownRoles.sorted().joined(separator: ", ")))")
            }
            guard let contentValue = message["content"] else {
                throw TrainingDataError.missingField(path: path, line: line, field: here + ".content", reason: "every message needs content")
            }
            guard let content = contentValue.stringValue else {
                throw TrainingDataError.wrongType(path: path, line: line, field: here + ".content", expected: "a string", got: typeName(contentValue))
            }
            return ChatMessage(role: role, content: content)
        }
    }

    static func typeName(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "a list"
        case .object: return "an object"
        }
    }
}

/// A data directory as mlx-lm lays it out: train.jsonl, valid.jsonl and optionally test.jsonl.
public struct TrainingDataSplits: Sendable {
    public let train: TrainingDataFile
    /// nil only when the directory has no valid.jsonl and it was not required.
    public let valid: TrainingDataFile?
    public let test: TrainingDataFile?

    /// Loads the splits in `directory`. train.jsonl must exist; valid.jsonl must too when `requireValid`.
    /// A path to a single .jsonl file is taken as the training split alone.
    public static func load(_ directory: URL, requireValid: Bool = true) throws -> TrainingDataSplits {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory) else {
            throw TrainingDataError.missingFile(path: directory.path)
        }
        if !isDirectory.boolValue { return TrainingDataSplits(train: try TrainingDataFile.load(directory), valid: nil, test: nil) }
        func split(_ name: String, required: Bool) throws -> TrainingDataFile? {
            let url = directory.appendingPathComponent(name)
            if !required && !FileManager.default.fileExists(atPath: url.path) { return nil }
            return try TrainingDataFile.load(url)
        }
        return TrainingDataSplits(train: try split("train.jsonl", required: true)!,
                                  valid: try split("valid.jsonl", required: requireValid),
                                  test: try split("test.jsonl", required: false))
    }
}
