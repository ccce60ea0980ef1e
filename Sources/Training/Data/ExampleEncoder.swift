// Examples → token ids and labels, with Hugging Face's label semantics:
//   labels has the same length as ids; labels[t] = ids[t] where token t is a target, −100 where it is not.
//   The shift happens in the loss (see `TokenBatch.targets`): the logits at position t predict labels[t + 1],
//   so labels[0] is never a target.
// Prompt and completion are tokenised separately and concatenated, so the prompt's tokens are exactly those the
// model sees at inference, when the prompt is encoded alone and the completion generated after it.
import Foundation
import Tokenizers

/// The label value for positions that contribute no loss (PyTorch's `ignore_index`).
public let ignoredLabel: Int32 = -100

/// How examples become token sequences.
public struct EncodingOptions: Equatable, Sendable {
    /// Longest sequence kept; longer examples are cut at the end (and counted).
    public var maxLength: Int
    /// Also learn the prompt / user turns (default: only completions and assistant turns).
    public var trainOnPrompt: Bool
    /// End {"text"} and {"prompt","completion"} examples with EOS, so the model learns to stop.
    public var appendEOS: Bool

    /// Options with mlx-lm-like defaults (2048 tokens, loss on completions only, EOS appended).
    public init(maxLength: Int = 2048, trainOnPrompt: Bool = false, appendEOS: Bool = true) {
        self.maxLength = maxLength; self.trainOnPrompt = trainOnPrompt; self.appendEOS = appendEOS
    }
}

/// One tokenised example: ids [n] and labels [n] (−100 where ignored, unshifted as in HF).
public struct TokenizedExample: Equatable, Sendable {
    public var ids: [Int32]
    public var labels: [Int32]

    /// Creates an example; ids and labels must have the same length.
    public init(ids: [Int32], labels: [Int32]) {
        precondition(ids.count == labels.count, "ids (\(ids.count)) and labels (\(labels.count)) differ in length")
        self.ids = ids; self.labels = labels
    }

    /// Positions whose label is learnt: t ≥ 1 with labels[t] ≠ −100 (position 0 has no predecessor).
    public var targetCount: Int { labels.dropFirst().reduce(0) { $0 + ($1 == ignoredLabel ? 0 : 1) } }
}

/// Tokenises examples with one tokenizer, chat template and option set.
public struct ExampleEncoder {
    public let tokenizer: any Tokenizer
    public let chatTemplate: ChatTemplate?
    public let options: EncodingOptions
    let leadingBOS: [Int32]

    /// Throws when options are out of range or EOS is needed but the tokenizer has none.
    public init(tokenizer: any Tokenizer, chatTemplate: ChatTemplate?, options: EncodingOptions = EncodingOptions()) throws {
        guard options.maxLength >= 2 else {
            throw TrainingDataError.invalidOption(name: "max length", reason: "\(options.maxLength) is too short: a target needs at least 2 tokens")
        }
        if options.appendEOS && tokenizer.specialTokenIDs.eos == nil {
            throw TrainingDataError.missingSpecialToken(name: "EOS", reason: "examples end with it so the model learns to stop; turn appendEOS off")
        }
        self.tokenizer = tokenizer; self.chatTemplate = chatTemplate; self.options = options
        // The tokenizer's own sequence start (BOS for Llama-style vocabularies, nothing for SmolLM2).
        let probe = tokenizer.encode("", addSpecialTokens: true, parseSpecialTokens: false)
        if let bos = tokenizer.specialTokenIDs.bos, probe.first == bos { leadingBOS = [Int32(bos)] } else { leadingBOS = [] }
    }

    /// Ids and labels of one example before truncation. `path`/`line` name it in errors.
    public func encode(_ example: TrainingExample, path: String = "<memory>", line: Int = 0) throws -> TokenizedExample {
        var ids: [Int32] = [], labels: [Int32] = []
        func append(_ text: String, trained: Bool) {
            let pieceIDs = tokenizer.encode(text, addSpecialTokens: false, parseSpecialTokens: true).map(Int32.init)
            ids += pieceIDs
            labels += trained || options.trainOnPrompt ? pieceIDs : [Int32](repeating: ignoredLabel, count: pieceIDs.count)
        }
        func appendEOS() {
            guard options.appendEOS, let eos = tokenizer.specialTokenIDs.eos, ids.last != Int32(eos) else { return }
            ids.append(Int32(eos)); labels.append(Int32(eos))
        }
        switch example {
        case .text(let text):
            ids = leadingBOS; labels = leadingBOS
            append(text, trained: true)
            appendEOS()
        case let .promptCompletion(prompt, completion):
            ids = leadingBOS; labels = options.trainOnPrompt ? leadingBOS : leadingBOS.map { _ in ignoredLabel }
            append(prompt, trained: false)
            append(completion, trained: true)
            appendEOS()
        case .chat(let messages):
            guard let template = chatTemplate else { throw TrainingDataError.noChatTemplate(path: path, line: line) }
            for (text, trained) in try Self.chatPieces(messages, template: template, path: path, line: line) where !text.isEmpty {
                append(text, trained: trained)
            }
        }
        return TokenizedExample(ids: ids, labels: labels)
    }

    /// The rendered conversation cut into pieces that are learnt (assistant content and its end-of-turn marker)
    /// or not (everything else, including the assistant header the generation prompt supplies at inference).
    /// Pieces are cut where the template's text is cut by special tokens or newlines, so encoding them one by
    /// one gives the same ids as encoding the whole rendering.
    static func chatPieces(_ messages: [ChatMessage], template: ChatTemplate, path: String, line: Int) throws -> [(String, Bool)] {
        let start = template.render([], addGenerationPrompt: false)
        guard let header = dropPrefix(template.render([], addGenerationPrompt: true), start), !header.isEmpty else {
            throw TrainingDataError.invalidValue(path: path, line: line, field: "messages", reason: "the chat template has no assistant header")
        }
        let endMarker = template.format == .chatML ? "<|im_end|>" : "<|eot_id|>"
        var pieces: [(String, Bool)] = [(start, false)]
        var previous = start
        for i in messages.indices {
            let rendered = template.render(Array(messages[...i]), addGenerationPrompt: false)
            guard let segment = dropPrefix(rendered, previous) else {
                throw TrainingDataError.invalidValue(path: path, line: line, field: "messages[\(i)]",
                                                     reason: "the chat template does not render this conversation turn by turn")
            }
            previous = rendered
            guard messages[i].role == "assistant",
                  let headerRange = segment.range(of: header),
                  let markerRange = segment.range(of: endMarker, options: .backwards),
                  markerRange.lowerBound >= headerRange.upperBound else {
                pieces.append((segment, false)); continue
            }
            pieces.append((String(segment[..<headerRange.upperBound]), false))
            pieces.append((String(segment[headerRange.upperBound..<markerRange.upperBound]), true))
            pieces.append((String(segment[markerRange.upperBound...]), false))
        }
        return pieces
    }

    /// `s` without the leading `prefix`, compared byte for byte (nil when `s` does not start with it).
    static func dropPrefix(_ s: String, _ prefix: String) -> String? {
        guard s.utf8.starts(with: prefix.utf8) else { return nil }
        return String(decoding: s.utf8.dropFirst(prefix.utf8.count), as: UTF8.self)
    }
}

/// A tokenised split: examples cut to the max length, with the counts a user should see.
public struct TokenizedDataset: Sendable {
    /// Source file (for messages).
    public let path: String
    public let examples: [TokenizedExample]
    /// Examples longer than the max length, cut at the end.
    public let truncatedCount: Int
    /// Examples left without any target after truncation (prompt filled the max length, or nothing to learn).
    public let droppedCount: Int

    /// Tokens over all kept examples.
    public var tokenCount: Int { examples.reduce(0) { $0 + $1.ids.count } }
    /// Learnt positions over all kept examples.
    public var targetCount: Int { examples.reduce(0) { $0 + $1.targetCount } }

    /// Tokenises every example of `file`; throws when none has a target left.
    public init(file: TrainingDataFile, encoder: ExampleEncoder) throws {
        var kept: [TokenizedExample] = []
        var truncated = 0, dropped = 0
        for (example, line) in zip(file.examples, file.lineNumbers) {
            var encoded = try encoder.encode(example, path: file.path, line: line)
            if encoded.ids.count > encoder.options.maxLength {
                truncated += 1
                encoded = TokenizedExample(ids: Array(encoded.ids.prefix(encoder.options.maxLength)),
                                           labels: Array(encoded.labels.prefix(encoder.options.maxLength)))
            }
            if encoded.targetCount == 0 { dropped += 1; continue }
            kept.append(encoded)
        }
        guard !kept.isEmpty else { throw TrainingDataError.noTrainableExamples(path: file.path, dropped: dropped) }
        self.init(path: file.path, examples: kept, truncatedCount: truncated, droppedCount: dropped)
    }

    /// A dataset from already tokenised examples (tests, synthetic data).
    public init(path: String, examples: [TokenizedExample], truncatedCount: Int = 0, droppedCount: Int = 0) {
        self.path = path; self.examples = examples; self.truncatedCount = truncatedCount; self.droppedCount = droppedCount
    }
}
