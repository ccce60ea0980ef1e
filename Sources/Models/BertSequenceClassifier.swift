// BertForSequenceClassification: the encoder (module paths under "bert.") → pooler (tanh dense on [CLS]) →
// classifier [labels, hidden]. The classifier is an `AdaptedLinear` named "classifier", so a LoRA config with
// modules_to_save ["classifier"] trains a full copy of it beside the adapters and saves it as PEFT does
// (`base_model.model.classifier.weight` / `.bias`); PEFT's task type SEQ_CLS expects exactly that.
import Foundation
import TensorCore
import Autograd
import PEFT

public final class BertSequenceClassifier: AdaptableModel {
    public let encoder: BertModel
    /// [labels, hidden] + bias [labels]; a fresh head is N(0, 0.02) with zero bias (Hugging Face's initialisation).
    public let classifier: AdaptedLinear
    /// Label names by class id.
    public let labels: [String]

    /// A classifier over `encoder` (whose prefix must be "bert.") with the given head.
    public init(encoder: BertModel, classifier: AdaptedLinear, labels: [String]) throws {
        guard encoder.prefix == "bert." else {
            throw ModelError.invalidArgument(name: "encoder", reason: "a sequence classifier's encoder has module paths under \"bert.\", got \"\(encoder.prefix)\"")
        }
        guard encoder.pooler != nil else { throw ModelError.missingTensor(file: "BertSequenceClassifier", tensor: "bert.pooler.dense.weight") }
        guard classifier.base.shape == [labels.count, encoder.config.hiddenSize], classifier.bias != nil else {
            throw ModelError.tensorShape(file: "BertSequenceClassifier", tensor: "classifier.weight",
                                         expected: [labels.count, encoder.config.hiddenSize], got: classifier.base.shape)
        }
        self.encoder = encoder; self.classifier = classifier; self.labels = labels
    }

    /// A classifier for `labels` on a pretrained encoder with a freshly initialised head (seeded).
    public convenience init(encoder: BertModel, labels: [String], rng: inout RandomGenerator) throws {
        guard labels.count >= 2 else { throw ModelError.invalidArgument(name: "labels", reason: "need at least 2 classes, got \(labels.count)") }
        let head = AdaptedLinear(path: "classifier", weight: Variable(rng.normal([labels.count, encoder.config.hiddenSize], std: 0.02)),
                                 bias: Variable(Tensor(zeros: [labels.count])))
        try self.init(encoder: encoder, classifier: head, labels: labels)
    }

    public var adaptedLinears: [AdaptedLinear] { encoder.adaptedLinears + [classifier] }
    public var outputHeadNames: Set<String> { ["classifier"] }

    /// Logits [rows, labels].
    public func logits(_ batch: EncoderBatch, training: Bool = false, rng: inout RandomGenerator) throws -> Variable {
        let hidden = try encoder.forward(batch, training: training, rng: &rng)
        let pooled = try encoder.pooled(hidden, rows: batch.rows, length: batch.length, training: training, rng: &rng)
        return classifier.forward(pooled, rng: &rng, training: training)
    }

    /// Mean cross-entropy of the logits against class ids [rows].
    public func loss(_ batch: EncoderBatch, labels targets: [Int32], training: Bool = true, rng: inout RandomGenerator) throws -> Variable {
        guard targets.count == batch.rows else {
            throw ModelError.invalidArgument(name: "labels", reason: "\(targets.count) labels for \(batch.rows) rows")
        }
        if let bad = targets.first(where: { $0 < 0 || Int($0) >= labels.count }) {
            throw ModelError.invalidArgument(name: "labels", reason: "class \(bad) is outside 0..<\(labels.count)")
        }
        return try crossEntropy(logits: logits(batch, training: training, rng: &rng), targets: targets)
    }
}
