// Fuzz targets for the text inputs: tokenizer.json, chat templates (raw and inside tokenizer_config.json),
// JSONL training data in all three layouts (encoded with a byte-level tokenizer and a chat template), and
// run config files in JSON and YAML.
import Foundation
import Tokenizers
import Training

enum FuzzText {
    static func tokenizer(_ bytes: [UInt8]) throws {
        let url = try FuzzScratch.file("tokenizer.json", bytes)
        let tokenizer = try BPETokenizer(huggingFaceTokenizer: url)
        FuzzFormats.exercise(tokenizer)
    }

    /// The bytes as a tokenizer_config.json (its chat_template is then rendered) or else as a raw Jinja template.
    static func chatTemplate(_ bytes: [UInt8]) throws {
        var template = String(decoding: bytes, as: UTF8.self)
        // JSON object (tokenizer_config.json) unless it opens like Jinja: "{%", "{{" or "{#".
        if bytes.first == UInt8(ascii: "{"), bytes.count < 2 || !"%{#".utf8.contains(bytes[1]) {
            let config = try TokenizerConfig(contentsOf: try FuzzScratch.file("tokenizer_config.json", bytes))
            guard let named = config.chatTemplate else { return }
            template = named
        }
        let chat = try ChatTemplate(template: template)
        let messages: [ChatMessage] = [.system("Be brief."), .user("Hi <|im_end|> there"), .assistant(""), .user("\u{0}")]
        let text = chat.render(messages, addGenerationPrompt: true)
        guard text.contains("Hi <|im_end|> there") else {
            throw FuzzInvariantViolation(target: "chat-template", reason: "rendered text lost a user message")
        }
    }

    static func jsonl(_ bytes: [UInt8]) throws {
        let file = try TrainingDataFile.parse(Data(bytes), path: "train.jsonl")
        guard file.examples.count == file.lineNumbers.count else {
            throw FuzzInvariantViolation(target: "jsonl", reason: "\(file.examples.count) examples, \(file.lineNumbers.count) line numbers")
        }
        let encoder = try ExampleEncoder(tokenizer: byteTokenizer, chatTemplate: ChatTemplate(format: .chatML),
                                         options: EncodingOptions(maxLength: 64))
        let limited = TrainingDataFile(path: file.path, examples: Array(file.examples.prefix(64)),
                                       lineNumbers: Array(file.lineNumbers.prefix(64)))
        let dataset = try TokenizedDataset(file: limited, encoder: encoder)
        for example in dataset.examples {
            guard example.ids.count == example.labels.count, example.ids.count <= 64, example.targetCount > 0 else {
                throw FuzzInvariantViolation(target: "jsonl", reason: "\(example.ids.count) ids, \(example.labels.count) labels, \(example.targetCount) targets")
            }
        }
    }

    static func runConfig(_ bytes: [UInt8], fileExtension: String) throws {
        let url = try FuzzScratch.file("run.\(fileExtension)", bytes)
        let options = try TrainingRunOptions.load(configFile: url)
        _ = try? options.resolved()
    }

    /// 256 byte symbols plus ChatML's control tokens, no merges: every text encodes, byte by byte.
    static let byteTokenizer: BPETokenizer = {
        let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        let vocabulary = (0...255).map { ByteLevelAlphabet.symbol(for: UInt8($0)) } + specials
        let types = [Int32](repeating: 1, count: 256) + [Int32](repeating: 3, count: specials.count)
        return try! BPETokenizer(vocabulary: vocabulary, merges: [], tokenTypes: types, preTokenizer: try! PreTokenizer(ggufName: nil),
                                 specialTokenIDs: SpecialTokenIDs(bos: 256, eos: 258), addBOS: false)
    }()
}
