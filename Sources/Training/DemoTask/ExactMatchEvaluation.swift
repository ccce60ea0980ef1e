// Exact-match accuracy of generated answers: the demo task's headline number, and `lorakit eval`'s.
// An answer counts when its first line, trimmed of surrounding whitespace, equals the expected completion
// (likewise trimmed): models often add a newline or an end-of-turn, never a different date.
import Foundation
import Tokenizers

/// One question: the prompt (as text, and as chat turns for message-format data) and the expected answer.
public struct ExactMatchCase: Equatable, Sendable {
    /// The prompt text ({"prompt"}), or the last user turn's content ({"messages"}).
    public let prompt: String
    /// Every turn before the final assistant turn ({"messages"} data), nil for prompt/completion data.
    public let messages: [ChatMessage]?
    public let expected: String

    /// A case from its parts.
    public init(prompt: String, messages: [ChatMessage]? = nil, expected: String) {
        self.prompt = prompt; self.messages = messages; self.expected = expected
    }
}

/// The outcome of an exact-match evaluation.
public struct ExactMatchReport: Sendable {
    /// Each case with the raw generated text and whether it matched.
    public let results: [(testCase: ExactMatchCase, output: String, correct: Bool)]
    public var total: Int { results.count }
    public var correct: Int { results.filter(\.correct).count }
    /// correct / total (0 for no cases).
    public var accuracy: Double { total == 0 ? 0 : Double(correct) / Double(total) }
}

public enum ExactMatch {
    /// The part of a generation that is compared: its first non-empty line, trimmed.
    public static func normalize(_ text: String) -> String {
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        let first = lines.first { !$0.trimmingCharacters(in: .whitespaces).isEmpty } ?? ""
        return first.trimmingCharacters(in: .whitespaces)
    }

    /// Cases from a prompt/completion or messages file (the last assistant turn is the expected answer).
    public static func cases(from file: TrainingDataFile) throws -> [ExactMatchCase] {
        try zip(file.examples, file.lineNumbers).map { example, line in
            switch example {
            case let .promptCompletion(prompt, completion):
                return ExactMatchCase(prompt: prompt, expected: completion)
            case .chat(let messages):
                guard let answer = messages.lastIndex(where: { $0.role == "assistant" }) else {
                    throw TrainingDataError.invalidValue(path: file.path, line: line, field: "messages",
                                                         reason: "has no assistant turn to compare against")
                }
                let before = Array(messages[..<answer])
                let prompt = before.last(where: { $0.role == "user" })?.content ?? ""
                return ExactMatchCase(prompt: prompt, messages: before, expected: messages[answer].content)
            case .text:
                throw TrainingDataError.invalidValue(path: file.path, line: line, field: "text",
                                                     reason: "exact match needs {\"prompt\", \"completion\"} or {\"messages\"} examples")
            }
        }
    }

    /// Runs `generate` on every case and compares normalised answers.
    public static func evaluate(_ cases: [ExactMatchCase], generate: (ExactMatchCase) throws -> String) rethrows -> ExactMatchReport {
        var results: [(testCase: ExactMatchCase, output: String, correct: Bool)] = []
        for c in cases {
            let output = try generate(c)
            results.append((c, output, normalize(output) == normalize(c.expected)))
        }
        return ExactMatchReport(results: results)
    }
}
