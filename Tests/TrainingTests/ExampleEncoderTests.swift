import Foundation
import TestSupport
import Tokenizers
import Training
import XCTest

/// The SmolLM2 tokenizer from Tests/Fixtures/smollm/tokenizer_vocab.json (exported from the GGUF), built once.
enum SmolLMTokenizer {
    static let shared: (tokenizer: BPETokenizer, template: ChatTemplate, templateText: String) = {
        let data = try! Data(contentsOf: Fixtures.url("smollm/tokenizer_vocab.json"))
        let o = try! JSONSerialization.jsonObject(with: data) as! [String: Any]
        let tokenizer = try! BPETokenizer(
            vocabulary: o["tokens"] as! [String], merges: o["merges"] as! [String],
            tokenTypes: (o["token_types"] as! [Int]).map(Int32.init), preTokenizer: try PreTokenizer(ggufName: o["pre"] as! String),
            specialTokenIDs: SpecialTokenIDs(bos: o["bos_token_id"] as? Int, eos: o["eos_token_id"] as? Int,
                                             unknown: o["unknown_token_id"] as? Int, padding: o["padding_token_id"] as? Int),
            addBOS: o["add_bos_token"] as! Bool, source: "tokenizer_vocab.json")
        let text = o["chat_template"] as! String
        return (tokenizer, try! ChatTemplate(template: text), text)
    }()
}

final class ExampleEncoderTests: XCTestCase {
    let tokenizer = SmolLMTokenizer.shared.tokenizer
    let template = SmolLMTokenizer.shared.template
    let ignored = Int32(-100)

    func ids(_ text: String) -> [Int32] { tokenizer.encode(text, addSpecialTokens: false, parseSpecialTokens: true).map(Int32.init) }
    func text(_ ids: [Int32]) throws -> String { try tokenizer.decode(ids.map(Int.init)) }

    func testPromptCompletionMasksThePromptAndEndsWithEOS() throws {
        let encoder = try ExampleEncoder(tokenizer: tokenizer, chatTemplate: nil)
        let prompt = "Normalize this date to ISO format: 5.3.2021\n", completion = "2021-03-05"
        let e = try encoder.encode(.promptCompletion(prompt: prompt, completion: completion))
        let p = ids(prompt), c = ids(completion)
        XCTAssertEqual(tokenizer.specialTokenIDs.eos, 2)
        XCTAssertEqual(e.ids, p + c + [2])
        XCTAssertEqual(e.labels, [Int32](repeating: ignored, count: p.count) + c + [2])
        XCTAssertEqual(try text(e.labels.filter { $0 != ignored }), "2021-03-05<|im_end|>")
        XCTAssertEqual(e.targetCount, c.count + 1)

        // After the shift, position t predicts token t + 1: the last prompt token predicts the first completion token.
        let batch = TokenBatch(rows: [[e]], paddingID: 2)
        XCTAssertEqual(batch.targets.count, e.ids.count)
        XCTAssertEqual(Array(batch.targets[..<(p.count - 1)]), [Int32](repeating: ignored, count: p.count - 1))
        XCTAssertEqual(Array(batch.targets[(p.count - 1)..<(e.ids.count - 1)]), c + [2])
        XCTAssertEqual(batch.targets.last, ignored)
        XCTAssertEqual(batch.targetCount, c.count + 1)

        let all = try ExampleEncoder(tokenizer: tokenizer, chatTemplate: nil, options: EncodingOptions(trainOnPrompt: true))
        XCTAssertEqual(try all.encode(.promptCompletion(prompt: prompt, completion: completion)).labels, p + c + [2])
    }

    func testChatLearnsOnlyAssistantTurnsAndTokenisesLikeTheWholeRendering() throws {
        let messages: [ChatMessage] = [.user("What is 2+2?"), .assistant("4."), .user("And 3+3?"), .assistant(" Six")]
        let encoder = try ExampleEncoder(tokenizer: tokenizer, chatTemplate: template)
        let e = try encoder.encode(.chat(messages))
        let rendered = template.render(messages, addGenerationPrompt: false)
        XCTAssertTrue(rendered.hasPrefix("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"))
        XCTAssertEqual(e.ids, ids(rendered), "piecewise encoding must equal encoding the whole rendering")
        // Learnt spans: each assistant content plus its <|im_end|>, nothing else (not the header, not the newline).
        var spans: [String] = [], current: [Int32] = []
        for label in e.labels {
            if label == ignored { if !current.isEmpty { spans.append(try text(current)); current = [] } } else { current.append(label) }
        }
        if !current.isEmpty { spans.append(try text(current)) }
        XCTAssertEqual(spans, ["4.<|im_end|>", " Six<|im_end|>"])
        for (id, label) in zip(e.ids, e.labels) where label != ignored { XCTAssertEqual(id, label) }
        // The prompt part of the first turn ends with the generation prompt the model sees at inference.
        let firstLearnt = e.labels.firstIndex { $0 != ignored }!
        XCTAssertEqual(Array(e.ids[..<firstLearnt]), ids(template.render([messages[0]], addGenerationPrompt: true)))

        let all = try ExampleEncoder(tokenizer: tokenizer, chatTemplate: template, options: EncodingOptions(trainOnPrompt: true))
        XCTAssertEqual(try all.encode(.chat(messages)).labels, e.ids)
        XCTAssertThrowsError(try ExampleEncoder(tokenizer: tokenizer, chatTemplate: nil).encode(.chat(messages), path: "t.jsonl", line: 7)) {
            XCTAssertEqual($0 as? TrainingDataError, .noChatTemplate(path: "t.jsonl", line: 7))
            XCTAssertTrue("\($0)".hasPrefix("t.jsonl:7:"))
        }
    }

    func testTextLearnsEveryToken() throws {
        let e = try ExampleEncoder(tokenizer: tokenizer, chatTemplate: nil).encode(.text("Hello there"))
        XCTAssertEqual(e.ids, ids("Hello there") + [2])
        XCTAssertEqual(e.labels, e.ids)
    }

    func testTruncationAndDroppedExamplesAreCounted() throws {
        let file = TrainingDataFile(path: "t.jsonl", examples: [
            .promptCompletion(prompt: "short", completion: " answer"),                          // fits
            .promptCompletion(prompt: "a b", completion: String(repeating: " word", count: 20)), // cut, keeps targets
            .promptCompletion(prompt: String(repeating: "x y ", count: 20), completion: " z"),   // prompt fills 8 tokens: dropped
        ], lineNumbers: [1, 2, 3])
        let encoder = try ExampleEncoder(tokenizer: tokenizer, chatTemplate: nil, options: EncodingOptions(maxLength: 8))
        let data = try TokenizedDataset(file: file, encoder: encoder)
        XCTAssertEqual(data.truncatedCount, 2)
        XCTAssertEqual(data.droppedCount, 1)
        XCTAssertEqual(data.examples.count, 2)
        XCTAssertEqual(data.examples[1].ids.count, 8)
        XCTAssertEqual(data.examples[1].ids, Array((ids("a b") + ids(String(repeating: " word", count: 20))).prefix(8)))
        XCTAssertThrowsError(try ExampleEncoder(tokenizer: tokenizer, chatTemplate: nil, options: EncodingOptions(maxLength: 1))) {
            guard case .invalidOption(let name, _)? = $0 as? TrainingDataError else { return XCTFail("\($0)") }
            XCTAssertEqual(name, "max length")
        }
        let onlyDropped = TrainingDataFile(path: "t.jsonl", examples: [file.examples[2]], lineNumbers: [3])
        XCTAssertThrowsError(try TokenizedDataset(file: onlyDropped, encoder: encoder)) {
            XCTAssertEqual($0 as? TrainingDataError, .noTrainableExamples(path: "t.jsonl", dropped: 1))
        }
    }

    static func syntheticDataset(lengths: [Int]) -> TokenizedDataset {
        TokenizedDataset(path: "synthetic", examples: lengths.enumerated().map { i, n in
            let ids = (0..<n).map { Int32(100 * i + $0) }
            return TokenizedExample(ids: ids, labels: [-100] + ids.dropFirst())
        })
    }

    func testPaddingMasksAndTargets() {
        let data = Self.syntheticDataset(lengths: [3, 5])
        let batch = TokenBatch(rows: data.examples.map { [$0] }, paddingID: 7)
        XCTAssertEqual(batch.rows, 2); XCTAssertEqual(batch.length, 5)
        XCTAssertEqual(batch.inputIDs, [0, 1, 2, 7, 7, 100, 101, 102, 103, 104])
        XCTAssertEqual(batch.attentionMask.array, [1, 1, 1, 0, 0, 1, 1, 1, 1, 1])
        XCTAssertEqual(batch.labels, [-100, 1, 2, -100, -100, -100, 101, 102, 103, 104])
        XCTAssertEqual(batch.targets, [1, 2, -100, -100, -100, 101, 102, 103, 104, -100])
        XCTAssertEqual(batch.targetCount, 6); XCTAssertEqual(batch.tokenCount, 8)
    }

    func testPackingKeepsExamplesWholeAndTargetsWithinEachExample() throws {
        let lengths = [3, 5, 2, 6, 4, 1, 7]
        let data = Self.syntheticDataset(lengths: lengths)
        var sampler = try BatchSampler(dataset: data, batchRows: 2, seed: 3, packLength: 8, paddingID: 0)
        let rows = sampler.rows(epoch: 0)
        XCTAssertEqual(rows.flatMap { $0 }.sorted(), Array(0..<7), "every example exactly once per epoch")
        for row in rows { XCTAssertLessThanOrEqual(row.map { lengths[$0] }.reduce(0, +), 8) }
        XCTAssertLessThan(rows.count, lengths.count, "packing must share rows")
        let batch = sampler.next()
        XCTAssertEqual(batch.length, 8)
        for r in 0..<2 {
            let members = rows[r]
            let row = Array(batch.inputIDs[(r * 8)..<(r * 8 + 8)]), targets = Array(batch.targets[(r * 8)..<(r * 8 + 8)])
            let segments = Array(batch.segmentIDs[(r * 8)..<(r * 8 + 8)])
            var t = 0
            for (s, i) in members.enumerated() {
                XCTAssertEqual(Array(row[t..<(t + lengths[i])]), data.examples[i].ids)
                XCTAssertEqual(Array(segments[t..<(t + lengths[i])]), [Int32](repeating: Int32(s + 1), count: lengths[i]))
                // Inside an example position t predicts t + 1; its last token predicts nothing (not the next example).
                XCTAssertEqual(Array(targets[t..<(t + lengths[i] - 1)]), Array(data.examples[i].ids.dropFirst()))
                XCTAssertEqual(targets[t + lengths[i] - 1], -100)
                t += lengths[i]
            }
            XCTAssertEqual(Array(segments[t...]), [Int32](repeating: 0, count: 8 - t))
        }
        XCTAssertThrowsError(try BatchSampler(dataset: data, batchRows: 2, seed: 3, packLength: 6, paddingID: 0))
    }

    func testShuffleIsSeededPerEpochAndResumable() throws {
        let data = Self.syntheticDataset(lengths: Array(repeating: 2, count: 10))
        let a = try BatchSampler(dataset: data, batchRows: 3, seed: 42, paddingID: 0)
        let b = try BatchSampler(dataset: data, batchRows: 3, seed: 42, paddingID: 0)
        let c = try BatchSampler(dataset: data, batchRows: 3, seed: 43, paddingID: 0)
        XCTAssertEqual(a.order(epoch: 0), b.order(epoch: 0))
        XCTAssertEqual(a.order(epoch: 0).sorted(), Array(0..<10))
        XCTAssertNotEqual(a.order(epoch: 0), c.order(epoch: 0))
        XCTAssertNotEqual(a.order(epoch: 0), a.order(epoch: 1))
        XCTAssertNotEqual(a.order(epoch: 0), Array(0..<10))
        let unshuffled = try BatchSampler(dataset: data, batchRows: 3, seed: 42, shuffle: false, paddingID: 0)
        XCTAssertEqual(unshuffled.order(epoch: 5), Array(0..<10))

        // Batches run across the epoch boundary; a sampler started at a saved position continues identically.
        var s = a
        var firstIDs: [[Int32]] = []
        for _ in 0..<5 { firstIDs.append(s.next().inputIDs) }
        XCTAssertEqual(s.position, DataPosition(epoch: 1, offset: 5))
        let order0 = a.order(epoch: 0), order1 = a.order(epoch: 1)
        XCTAssertEqual(firstIDs[3], [order0[9], order1[0], order1[1]].flatMap { data.examples[$0].ids })
        var resumed = try BatchSampler(dataset: data, batchRows: 3, seed: 42, paddingID: 0, position: DataPosition(epoch: 0, offset: 6))
        var replay = a
        for _ in 0..<2 { _ = replay.next() }
        for _ in 0..<4 { XCTAssertEqual(resumed.next().inputIDs, replay.next().inputIDs) }
        XCTAssertThrowsError(try BatchSampler(dataset: data, batchRows: 3, seed: 42, paddingID: 0, position: DataPosition(epoch: 0, offset: 11)))
    }
}
