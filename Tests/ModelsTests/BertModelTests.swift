// A tiny random BERT: padding never changes real tokens, LoRA gradients through the whole encoder (masked
// attention, GELU, LayerNorm, pooler) match finite differences, and the classifier's modules_to_save copy
// behaves as PEFT's (its output when active, the original head when disabled, saved and loaded by name).
import Foundation
import XCTest
import TensorCore
import Autograd
import Formats
import PEFT
import Models
import TestSupport

final class BertModelTests: XCTestCase {
    static let config = BertConfig(vocabSize: 40, hiddenSize: 16, layerCount: 2, headCount: 4, intermediateSize: 32, maxPositions: 12,
                                   typeVocabSize: 2, layerNormEps: 1e-12)

    func tiny(prefix: String = "", seed: UInt64 = 1) throws -> BertModel {
        var rng = RandomGenerator(seed: seed)
        let model = try BertModel(randomWeights: Self.config, prefix: prefix, rng: &rng)
        // Larger weights than HF's 0.02 so every layer changes its input visibly.
        for l in model.adaptedLinears { if let w = l.denseWeight { w.value = rng.normal(w.shape, std: 0.3) } }
        return model
    }

    func testPaddingDoesNotChangeRealTokens() throws {
        let model = try tiny()
        var rng = RandomGenerator(seed: 0)
        let short = EncoderBatch(ids: [[2, 7, 9, 3]])
        let padded = EncoderBatch(ids: [[2, 7, 9, 3, 0, 0], [2, 5, 6, 8, 11, 3]], typeIDs: nil,
                                  attentionMask: [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
        let a = try model.forward(short, rng: &rng).value, b = try model.forward(padded, rng: &rng).value
        for t in 0..<4 { for e in 0..<16 { XCTAssertEqual(a[t, e], b[t, e], accuracy: 2e-6) } }
        let ea = try model.sentenceEmbeddings(short, rng: &rng).value, eb = try model.sentenceEmbeddings(padded, rng: &rng).value
        for e in 0..<16 { XCTAssertEqual(ea[0, e], eb[0, e], accuracy: 2e-6) }
        XCTAssertThrowsError(try model.forward(EncoderBatch(ids: [[2, 40]]), rng: &rng))  // id outside the vocabulary
        XCTAssertThrowsError(try model.forward(EncoderBatch(ids: [[2, 3]], attentionMask: [[0, 0]]), rng: &rng))
        XCTAssertThrowsError(try model.forward(EncoderBatch(ids: [[2, 3]], typeIDs: [[0, 2]]), rng: &rng))
        XCTAssertThrowsError(try model.forward(EncoderBatch(ids: [Array(repeating: 2, count: 13)]), rng: &rng))
    }

    /// Finite differences of a padded batch's pooled embedding loss w.r.t. LoRA A and B of query, value and
    /// intermediate.dense (B made non-zero so A's gradient is too).
    func testLoRAGradientsThroughEncoderMatchFiniteDifferences() throws {
        let model = try tiny()
        var rng = RandomGenerator(seed: 2)
        var config = LoRAConfig(r: 2, loraAlpha: 4, targetModules: .names(["query", "value", "intermediate.dense"]))
        config.loraDropout = 0
        try model.addLoRA(config, rng: &rng)
        let params = model.adapterParameters("default")
        XCTAssertEqual(params.count, 2 * 3 * 2)
        for (_, p) in params { p.value = rng.normal(p.shape, std: 0.3) }
        let batch = EncoderBatch(ids: [[2, 7, 9, 3, 0], [2, 5, 6, 8, 3]], typeIDs: [[0, 0, 0, 0, 0], [0, 0, 1, 1, 1]],
                                 attentionMask: [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
        let weights = rng.normal([2, 16])
        let checked = [params[0].1, params[1].1, params[6].1, params[11].1]
        let error = GradientCheck.maxRelativeError(inputs: checked, epsilon: 1e-2) { _ in
            var r = RandomGenerator(seed: 0)
            let e = try! model.sentenceEmbeddings(batch, normalize: false, rng: &r)
            return sum(mul(e, Variable(weights)))
        }
        XCTAssertLessThan(error, 3e-3)
    }

    func testRecomputedLayersGiveIdenticalGradients() throws {
        let model = try tiny()
        var rng = RandomGenerator(seed: 3)
        try model.addLoRA(LoRAConfig(r: 2, loraAlpha: 4, targetModules: .names(["query", "value"])), rng: &rng)
        for (_, p) in model.adapterParameters("default") { p.value = rng.normal(p.shape, std: 0.3) }
        let batch = EncoderBatch(ids: [[2, 7, 9, 3, 0]], attentionMask: [[1, 1, 1, 1, 0]])
        func gradients() throws -> [Tensor] {
            for (_, p) in model.adapterParameters("default") { p.zeroGrad() }
            var r = RandomGenerator(seed: 5)
            sum(try model.sentenceEmbeddings(batch, training: true, rng: &r)).backward()
            return model.adapterParameters("default").map { $0.1.grad! }
        }
        let plain = try gradients()
        model.recomputesActivations = true
        XCTAssertEqual(try gradients(), plain)
    }

    func testClassifierModulesToSave() throws {
        let encoder = try tiny(prefix: "bert.")
        var rng = RandomGenerator(seed: 4)
        let classifier = try BertSequenceClassifier(encoder: encoder, labels: ["a", "b", "c"], rng: &rng)
        XCTAssertEqual(classifier.encoder.adaptedLinears[0].path, "bert.encoder.layer.0.attention.self.query")
        var config = LoRAConfig(r: 2, loraAlpha: 4, targetModules: .names(["query", "value"]))
        config.modulesToSave = ["classifier"]
        try classifier.addLoRA(config, rng: &rng)
        let names = classifier.adapterParameters("default").map(\.0)
        XCTAssertTrue(names.contains("classifier.weight") && names.contains("classifier.bias"))
        let batch = EncoderBatch(ids: [[2, 7, 9, 3], [2, 5, 3, 0]], attentionMask: [[1, 1, 1, 1], [1, 1, 1, 0]])
        let before = try classifier.logits(batch, rng: &rng).value
        // Train-like change of the copy: the active output follows it, the disabled output is the original head.
        let copy = classifier.classifier.adapter(named: "default") as! ModulesToSaveBranch
        copy.weight.value = rng.normal(copy.weight.shape, std: 0.5)
        let changed = try classifier.logits(batch, rng: &rng).value
        XCTAssertGreaterThan(maxAbsDifference(changed, before), 1e-3)
        classifier.setAdaptersDisabled(true)
        XCTAssertLessThan(maxAbsDifference(try classifier.logits(batch, rng: &rng).value, before), 1e-6)
        classifier.setAdaptersDisabled(false)
        // Gradient reaches the copy, not the original head.
        let loss = try classifier.loss(batch, labels: [0, 2], rng: &rng)
        loss.backward()
        XCTAssertNotNil(copy.weight.grad); XCTAssertNil(classifier.classifier.denseWeight?.grad)
        XCTAssertThrowsError(try classifier.loss(batch, labels: [0, 3], rng: &rng))
        // Saved as PEFT does, loaded back onto a fresh classifier with another random head: same logits.
        let dir = try temporaryDirectory(self, "bert-cls")
        try AdapterFiles.saveLoRA(classifier, config: config, to: dir)
        let keys = try SafeTensorsFile(contentsOf: dir.appendingPathComponent(AdapterFiles.weightsName)).names
        XCTAssertTrue(keys.contains("base_model.model.classifier.weight"))
        XCTAssertTrue(keys.contains("base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight"))
        var other = RandomGenerator(seed: 99)
        let fresh = try BertSequenceClassifier(encoder: try tiny(prefix: "bert."), labels: ["a", "b", "c"], rng: &other)
        try AdapterFiles.loadLoRA(into: fresh, from: dir)
        XCTAssertLessThan(maxAbsDifference(try fresh.logits(batch, rng: &rng).value, changed), 1e-6)
        // A config naming a module that does not exist is an error.
        config.modulesToSave = ["score"]
        XCTAssertThrowsError(try fresh.addLoRA(config, name: "other", rng: &rng))
    }

    func testConfigErrorsAreTyped() throws {
        let dir = try temporaryDirectory(self, "bert-config")
        let url = dir.appendingPathComponent("config.json")
        func config(_ fields: String) throws -> Error? {
            try Data(("{\"vocab_size\": 40, \"hidden_size\": 16, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
                + "\"intermediate_size\": 32" + fields + "}").utf8).write(to: url)
            do { _ = try BertConfig(huggingFaceConfig: url); return nil } catch { return error }
        }
        XCTAssertNil(try config(", \"model_type\": \"bert\""))
        XCTAssertEqual(try config(", \"model_type\": \"roberta\"") as? ModelError,
                       .unsupportedArchitecture(file: url.path, key: "model_type", value: "roberta"))
        XCTAssertEqual(try config(", \"model_type\": \"bert\", \"position_embedding_type\": \"relative_key\"") as? ModelError,
                       .unsupportedFeature(file: url.path, key: "position_embedding_type", value: "relative_key"))
        XCTAssertEqual(try config(", \"model_type\": \"bert\", \"hidden_act\": \"swish\"") as? ModelError,
                       .unsupportedFeature(file: url.path, key: "hidden_act", value: "swish"))
        XCTAssertEqual(try config(", \"model_type\": \"bert\", \"num_attention_heads\": 5") as? ModelError,
                       .invalidValue(file: url.path, key: "num_attention_heads", reason: "5 does not divide hidden_size 16"))
        // Weights with only the embedding tables: the first missing tensor is named.
        _ = try config(", \"model_type\": \"bert\"")
        var rng = RandomGenerator(seed: 1)
        let model = try BertModel(randomWeights: BertConfig(vocabSize: 40, hiddenSize: 16, layerCount: 2, headCount: 4, intermediateSize: 32,
                                                            maxPositions: 512), rng: &rng)
        var entries: [SafeTensorsEntry] = [.float("embeddings.word_embeddings.weight", model.wordEmbeddings.value),
                                           .float("embeddings.position_embeddings.weight", model.positionEmbeddings.value)]
        entries.append(.float("embeddings.token_type_embeddings.weight", model.tokenTypeEmbeddings.value))
        try SafeTensorsWriter.write(entries, metadata: ["format": "pt"], to: dir.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try BertModel.load(directory: dir)) { error in
            XCTAssertEqual(error as? ModelError, .missingTensor(file: dir.path, tensor: "encoder.layer.0.attention.self.query.weight"))
        }
    }
}
