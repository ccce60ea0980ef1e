// Encoder fine-tuning: data errors name file and line, examples survive the sampler's batches, the contrastive
// loss is MultipleNegativesRankingLoss, and the shared Trainer fine-tunes a tiny random BERT classifier
// (LoRA + classifier copy) to perfect accuracy and saves it in PEFT's layout. The real-model run is in
// EncoderEndToEndTests (skipped without the model).
import Foundation
import XCTest
import TensorCore
import Autograd
import Formats
import PEFT
import Models
import Tokenizers
import Training
import TestSupport

final class EncoderTrainingTests: XCTestCase {
    func write(_ lines: [String], _ name: String, in dir: URL) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: url)
        return url
    }

    func testLabelErrorsNameFileAndLine() throws {
        let dir = try temporaryDirectory(self, "encoder-labels")
        let train = try ClassificationDataFile.load(write([#"{"text": "a", "label": "pos"}"#, #"{"text": "b", "label": "neg"}"#], "train.jsonl", in: dir))
        let set = try LabelSet(training: train)
        XCTAssertEqual(set.names, ["neg", "pos"])
        let validURL = try write([#"{"text": "c", "label": "pos"}"#, "", #"{"text": "d", "label": "neutral"}"#], "valid.jsonl", in: dir)
        XCTAssertThrowsError(try ClassificationDataFile.load(validURL).classIDs(set)) { error in
            XCTAssertEqual(error as? EncoderDataError, .unknownLabel(path: validURL.path, line: 3, label: "\"neutral\"", known: ["neg", "pos"],
                                                                     labelSource: train.path))
            XCTAssertTrue("\(error)".hasPrefix("\(validURL.path):3: label \"neutral\" is not one of the 2 labels of \(train.path)"))
        }
        let ints = try LabelSet(training: ClassificationDataFile.load(write([#"{"text": "a", "label": 0}"#, #"{"text": "b", "label": 2}"#], "t2.jsonl", in: dir)))
        XCTAssertEqual(ints.names, ["0", "1", "2"])
        let outOfRange = try write([#"{"text": "c", "label": 1}"#, #"{"text": "d", "label": 5}"#], "v2.jsonl", in: dir)
        XCTAssertThrowsError(try ClassificationDataFile.load(outOfRange).classIDs(ints)) { error in
            XCTAssertEqual(error as? EncoderDataError, .labelOutOfRange(path: outOfRange.path, line: 2, label: 5, classes: 3))
        }
        let mixed = try write([#"{"text": "c", "label": 1}"#, #"{"text": "d", "label": "pos"}"#], "v3.jsonl", in: dir)
        XCTAssertThrowsError(try ClassificationDataFile.load(mixed)) { error in
            XCTAssertEqual(error as? EncoderDataError, .mixedLabelKinds(path: mixed.path, line: 2, expected: "an integer"))
        }
        XCTAssertThrowsError(try ClassificationDataFile.load(mixed).classIDs(set))
        let negative = try write([#"{"text": "c", "label": -1}"#], "v4.jsonl", in: dir)
        XCTAssertThrowsError(try ClassificationDataFile.load(negative)) { XCTAssertTrue("\($0)".hasPrefix("\(negative.path):1: label -1 is out of range")) }
        let oneClass = try write([#"{"text": "c", "label": "x"}"#], "v5.jsonl", in: dir)
        XCTAssertThrowsError(try LabelSet(training: ClassificationDataFile.load(oneClass)))
        let wrongTask = try write([#"{"anchor": "a", "positive": "b"}"#], "v6.jsonl", in: dir)
        XCTAssertThrowsError(try ClassificationDataFile.load(wrongTask)) { XCTAssertTrue($0 is EncoderDataError) }
        XCTAssertEqual(try EncoderTask.of(wrongTask), .retrieval)
        let missing = try write([#"{"anchor": "a"}"#], "v7.jsonl", in: dir)
        XCTAssertThrowsError(try RetrievalDataFile.load(missing)) { XCTAssertTrue("\($0)".hasPrefix("\(missing.path):1: missing field \"positive\"")) }
        // labels.json round trip.
        try set.write(to: dir)
        XCTAssertEqual(try LabelSet.load(from: dir).names, set.names)
    }

    func toyTokenizer() throws -> WordPieceTokenizer {
        let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + ["good", "bad", "not", "the", "food", "was", "very", "x", "y", "z", "."]
        return try WordPieceTokenizer(vocabulary: vocab, addedTokens: (0..<5).map { AddedToken(id: $0, content: vocab[$0]) })
    }

    func testExamplesSurviveBatchingAndMNRLMatchesDefinition() throws {
        let tokenizer = try toyTokenizer()
        let file = RetrievalDataFile.make([RetrievalPair(anchor: "the food", positive: "good ."), RetrievalPair(anchor: "x y z x", positive: "bad")])
        let data = try EncoderExamples.retrieval(file, tokenizer: tokenizer, maxLength: 16)
        let batch = TokenBatch(rows: data.examples.map { [$0] }, paddingID: 0)
        XCTAssertEqual(batch.targetCount, 2)
        let rows = EncoderExamples.rows(batch)
        XCTAssertEqual(rows[0].ids.map(Int.init), tokenizer.encode("the food") + tokenizer.encode("good ."))
        XCTAssertEqual(Array(rows[1].ids[...rows[1].target]).map(Int.init), tokenizer.encode("x y z x"))
        XCTAssertEqual(Array(rows[1].ids[(rows[1].target + 1)...]).map(Int.init), tokenizer.encode("bad"))
        // Pair type ids: 1 after the first [SEP].
        let pairBatch = EncoderExamples.batch([[2, 5, 3, 6, 3]], padID: 0, sepID: 3)
        XCTAssertEqual(pairBatch.typeIDs, [[0, 0, 0, 1, 1]])

        var rng = RandomGenerator(seed: 1)
        let a = try l2Normalize(Variable(rng.normal([3, 4]))), p = try l2Normalize(Variable(rng.normal([3, 4])))
        let loss = try multipleNegativesRankingLoss(anchors: a, positives: p, scale: 20).value.scalarValue
        var expected = 0.0
        for i in 0..<3 {
            let scores = (0..<3).map { j in 20 * Double((0..<4).reduce(Float(0)) { $0 + a.value[i, $1] * p.value[j, $1] }) }
            let m = scores.max()!
            expected += m + log(scores.reduce(0) { $0 + exp($1 - m) }) - scores[i]
        }
        XCTAssertEqual(Double(loss), expected / 3, accuracy: 1e-5)
    }

    func testTrainerFineTunesTinyClassifier() throws {
        let tokenizer = try toyTokenizer()
        var rng = RandomGenerator(seed: 3)
        let config = BertConfig(vocabSize: tokenizer.vocabularySize, hiddenSize: 16, layerCount: 2, headCount: 2, intermediateSize: 32,
                                maxPositions: 16)
        let encoder = try BertModel(randomWeights: config, prefix: "bert.", rng: &rng)
        // Weights larger than HF's N(0, 0.02), so [CLS] sees the other tokens clearly in a 2-layer model.
        for l in encoder.adaptedLinears { l.denseWeight!.value = rng.normal(l.base.shape, std: 0.3) }
        encoder.wordEmbeddings.value = rng.normal(encoder.wordEmbeddings.shape, std: 1)
        let classifier = try BertSequenceClassifier(encoder: encoder, labels: ["negative", "positive"], rng: &rng)
        let texts = ["the food was good", "the food was bad", "the food was not good", "the food was not bad",
                     "good", "bad", "not good", "not bad", "very good .", "very bad .", "was not very good", "was not very bad"]
        let file = ClassificationDataFile.make(texts.map { t in
            ClassificationExample(text: t, label: .name(t.contains("good") ? "positive" : "negative"))
        })
        let labels = try LabelSet(training: file)
        let data = try EncoderExamples.classification(file, labels: labels, tokenizer: tokenizer, maxLength: 16)
        var trainerConfig = TrainerConfiguration(outputDirectory: try temporaryDirectory(self, "encoder-train"))
        trainerConfig.iterations = 60; trainerConfig.batchSize = 6; trainerConfig.learningRate = 1e-2
        trainerConfig.evalEvery = 0; trainerConfig.saveEvery = 30
        var lora = LoRAConfig(r: 4, loraAlpha: 8, targetModules: .names(["query", "value", "dense"]))
        lora.loraDropout = 0; lora.modulesToSave = ["classifier"]; lora.taskType = "SEQ_CLS"
        let model = SequenceClassificationTrainable(classifier: classifier, padID: 0, sepID: 3)
        let trainer = try Trainer(model: model, method: .lora(lora), trainData: data, validData: data, paddingID: 0, configuration: trainerConfig)
        let summary = try trainer.run()
        XCTAssertLessThan(summary.steps.last!.loss, 0.05)
        XCTAssertGreaterThan(summary.steps.first!.loss, 0.5)
        let metrics = try EncoderEvaluation.classification(classifier, tokenizer: tokenizer, file: file, labels: labels, maxLength: 16)
        XCTAssertEqual(metrics.accuracy, 1)
        let saved = try SafeTensorsFile(contentsOf: trainerConfig.outputDirectory.appendingPathComponent(AdapterFiles.weightsName))
        XCTAssertTrue(saved.contains("base_model.model.classifier.weight"))
        XCTAssertTrue(saved.contains("base_model.model.bert.pooler.dense.lora_A.weight"))
        XCTAssertEqual(try LoRAConfig.load(from: trainerConfig.outputDirectory.appendingPathComponent(AdapterFiles.configName)).modulesToSave, ["classifier"])
    }
}

extension RetrievalDataFile {
    static func make(_ pairs: [RetrievalPair]) -> RetrievalDataFile {
        RetrievalDataFile(path: "<memory>", pairs: pairs, lineNumbers: Array(1...pairs.count))
    }
}

extension ClassificationDataFile {
    static func make(_ examples: [ClassificationExample]) -> ClassificationDataFile {
        ClassificationDataFile(path: "<memory>", examples: examples, lineNumbers: Array(1...examples.count))
    }
}
