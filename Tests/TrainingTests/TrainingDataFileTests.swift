import Foundation
import Tokenizers
import Training
import XCTest

final class TrainingDataFileTests: XCTestCase {
    func parse(_ text: String, path: String = "data/train.jsonl") throws -> TrainingDataFile {
        try TrainingDataFile.parse(Data(text.utf8), path: path)
    }

    /// Asserts that parsing fails with `expected` and that the message starts with "path:line".
    func assertError(_ text: String, _ expected: TrainingDataError, prefix: String? = nil, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(text), file: file, line: line) { error in
            XCTAssertEqual(error as? TrainingDataError, expected, file: file, line: line)
            if let prefix { XCTAssertTrue("\(error)".hasPrefix(prefix), "\(error)", file: file, line: line) }
        }
    }

    func testParsesTextFormat() throws {
        let f = try parse("{\"text\": \"Hello world\"}\n{\"text\": \"caf\\u00e9 \\ud83d\\ude00\", \"meta\": 3}\n")
        XCTAssertEqual(f.examples, [.text("Hello world"), .text("café 😀")])
        XCTAssertEqual(f.lineNumbers, [1, 2])
    }

    func testParsesPromptCompletionFormatWithBlankAndCRLFLines() throws {
        let f = try parse("\n{\"prompt\": \"Q: 1+1\", \"completion\": \" 2\"}\r\n   \n{\"completion\": \"b\", \"prompt\": \"a\"}")
        XCTAssertEqual(f.examples, [.promptCompletion(prompt: "Q: 1+1", completion: " 2"), .promptCompletion(prompt: "a", completion: "b")])
        XCTAssertEqual(f.lineNumbers, [2, 4])
    }

    func testParsesMessagesFormat() throws {
        let line = #"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}"#
        let f = try parse(line)
        XCTAssertEqual(f.examples, [.chat([.system("Be brief."), .user("Hi"), .assistant("Hello!")])])
    }

    func testParsesConversationalPromptCompletion() throws {
        let line = #"{"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Yo"}]}"#
        XCTAssertEqual(try parse(line).examples, [.chat([.user("Hi"), .assistant("Yo")])])
    }

    func testBadLinesNameFileAndLine() {
        let p = "data/train.jsonl"
        assertError("{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n", .invalidJSON(path: p, line: 2, reason: "column 24: unterminated string"),
                    prefix: "data/train.jsonl:2: not a JSON object")
        assertError("[1, 2]", .invalidJSON(path: p, line: 1, reason: "top level is not a JSON object"), prefix: "data/train.jsonl:1:")
        assertError("{\"text\": \"a\"} trailing", .invalidJSON(path: p, line: 1, reason: "column 15: unexpected trailing characters"))
        assertError("{\"prompt\": \"a\"}", .missingField(path: p, line: 1, field: "completion", reason: "needed next to [\"prompt\"]"),
                    prefix: "data/train.jsonl:1: missing field \"completion\"")
        assertError("{\"completion\": \"a\"}", .missingField(path: p, line: 1, field: "prompt", reason: "needed next to [\"completion\"]"))
        assertError("{\"text\": 5}", .wrongType(path: p, line: 1, field: "text", expected: "a string", got: "a number"),
                    prefix: "data/train.jsonl:1: field \"text\" must be a string, got a number")
        assertError("{\"prompt\": \"a\", \"completion\": null}", .wrongType(path: p, line: 1, field: "completion", expected: "a string", got: "null"))
        assertError("{\"foo\": 1, \"bar\": 2}", .unknownFormat(path: p, line: 1, keys: ["bar", "foo"]), prefix: "data/train.jsonl:1: keys")
    }

    func testBadMessagesNameTheMessage() {
        let p = "data/train.jsonl"
        assertError("{\"messages\": \"hi\"}", .wrongType(path: p, line: 1, field: "messages", expected: "a list of messages", got: "a string"))
        assertError("{\"messages\": []}", .invalidValue(path: p, line: 1, field: "messages", reason: "the list is empty"))
        assertError("{\"messages\": [3]}",
                    .wrongType(path: p, line: 1, field: "messages[0]", expected: "an object {\"role\", \"content\"}", got: "a number"))
        assertError("{\"messages\": [{\"content\": \"x\"}]}",
                    .missingField(path: p, line: 1, field: "messages[0].role", reason: "every message needs a role"))
        assertError("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"Assistant\", \"content\": \"y\"}]}",
                    .invalidValue(path: p, line: 1, field: "messages[1].role", reason: "unknown role \"Assistant\" (use assistant, system, tool, user)"),
                    prefix: "data/train.jsonl:1: field \"messages[1].role\"")
        assertError("{\"messages\": [{\"role\": \"user\"}]}",
                    .missingField(path: p, line: 1, field: "messages[0].content", reason: "every message needs content"))
        assertError("{\"messages\": [{\"role\": \"user\", \"content\": [\"x\"]}]}",
                    .wrongType(path: p, line: 1, field: "messages[0].content", expected: "a string", got: "a list"))
        assertError("{\"prompt\": [{\"role\": \"user\", \"content\": \"x\"}], \"completion\": \"y\"}",
                    .wrongType(path: p, line: 1, field: "completion", expected: "a list of messages (the prompt is one)", got: "a string"))
    }

    func testMixedFormatsAndEmptyFiles() {
        let p = "data/train.jsonl"
        assertError("{\"text\": \"a\"}\n\n{\"prompt\": \"a\", \"completion\": \"b\"}",
                    .mixedFormats(path: p, line: 3, expected: "text", got: "prompt/completion"), prefix: "data/train.jsonl:3:")
        assertError("", .emptyFile(path: p))
        assertError("\n  \n\t\n", .emptyFile(path: p))
    }

    func testFilesAndSplitDirectories() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorakit-data-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = dir.appendingPathComponent("train.jsonl")
        XCTAssertThrowsError(try TrainingDataFile.load(missing)) {
            XCTAssertEqual($0 as? TrainingDataError, .missingFile(path: missing.path))
        }
        try Data("{\"text\": \"a\"}\n".utf8).write(to: missing)
        XCTAssertThrowsError(try TrainingDataSplits.load(dir)) {  // valid.jsonl is required by default
            XCTAssertEqual($0 as? TrainingDataError, .missingFile(path: dir.appendingPathComponent("valid.jsonl").path))
        }
        let trainOnly = try TrainingDataSplits.load(dir, requireValid: false)
        XCTAssertNil(trainOnly.valid)
        try Data("{\"text\": \"b\"}\n{\"text\": \"c\"}\n".utf8).write(to: dir.appendingPathComponent("valid.jsonl"))
        try Data("\n".utf8).write(to: dir.appendingPathComponent("test.jsonl"))
        XCTAssertThrowsError(try TrainingDataSplits.load(dir)) {  // an existing but empty test split is an error, not ignored
            XCTAssertEqual($0 as? TrainingDataError, .emptyFile(path: dir.appendingPathComponent("test.jsonl").path))
        }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("test.jsonl"))
        let splits = try TrainingDataSplits.load(dir)
        XCTAssertEqual(splits.train.examples, [.text("a")])
        XCTAssertEqual(splits.valid?.examples, [.text("b"), .text("c")])
        XCTAssertNil(splits.test)
        XCTAssertEqual(try TrainingDataSplits.load(missing).train.examples, [.text("a")])  // a single file is the train split
    }
}
