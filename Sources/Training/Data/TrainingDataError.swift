// Typed errors of the data pipeline. Every case about a file names it, and every case about a line says
// `file:line` first, the form editors and terminals turn into a link.

/// What is wrong with a training data file, a split directory or a data option.
public enum TrainingDataError: Error, CustomStringConvertible, Equatable {
    /// The file or directory does not exist.
    case missingFile(path: String)
    /// The file exists but could not be read.
    case unreadable(path: String, reason: String)
    /// The file holds no example (only blank lines, or nothing).
    case emptyFile(path: String)
    /// A line is not a JSON object.
    case invalidJSON(path: String, line: Int, reason: String)
    /// A line lacks a field its format needs.
    case missingField(path: String, line: Int, field: String, reason: String)
    /// A field has the wrong JSON type.
    case wrongType(path: String, line: Int, field: String, expected: String, got: String)
    /// A field has the right type but an unusable value (unknown role, empty conversation).
    case invalidValue(path: String, line: Int, field: String, reason: String)
    /// The line's keys fit none of the formats {"text"}, {"prompt","completion"}, {"messages"}.
    case unknownFormat(path: String, line: Int, keys: [String])
    /// A line uses another format than the file's first example.
    case mixedFormats(path: String, line: Int, expected: String, got: String)
    /// A chat example was given but there is no chat template to render it with.
    case noChatTemplate(path: String, line: Int)
    /// The tokenizer defines no id needed here (EOS to end examples, or a padding id).
    case missingSpecialToken(name: String, reason: String)
    /// A data option is out of range (max length, batch size, …).
    case invalidOption(name: String, reason: String)
    /// After tokenisation and truncation no example has a token to learn from.
    case noTrainableExamples(path: String, dropped: Int)

    public var description: String {
        switch self {
        case let .missingFile(path): return "\(path): no such file"
        case let .unreadable(path, reason): return "\(path): cannot read: \(reason)"
        case let .emptyFile(path): return "\(path): the file holds no examples"
        case let .invalidJSON(path, line, reason): return "\(path):\(line): not a JSON object: \(reason)"
        case let .missingField(path, line, field, reason): return "\(path):\(line): missing field \"\(field)\": \(reason)"
        case let .wrongType(path, line, field, expected, got):
            return "\(path):\(line): field \"\(field)\" must be \(expected), got \(got)"
        case let .invalidValue(path, line, field, reason): return "\(path):\(line): field \"\(field)\": \(reason)"
        case let .unknownFormat(path, line, keys):
            return "\(path):\(line): keys \(keys) fit no known format; use {\"text\"}, {\"prompt\", \"completion\"} or {\"messages\": [{\"role\", \"content\"}, …]}"
        case let .mixedFormats(path, line, expected, got):
            return "\(path):\(line): this line is a \(got) example but the file started with \(expected) examples; use one format per file"
        case let .noChatTemplate(path, line):
            return "\(path):\(line): {\"messages\"} examples need the model's chat template, and none is available (give --chat-format)"
        case let .missingSpecialToken(name, reason): return "the tokenizer has no \(name) token: \(reason)"
        case let .invalidOption(name, reason): return "invalid data option \(name): \(reason)"
        case let .noTrainableExamples(path, dropped):
            return "\(path): no example has a token to learn from (\(dropped) dropped: prompt fills the whole max length, or the completion is empty)"
        }
    }
}
