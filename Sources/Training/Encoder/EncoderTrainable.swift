// Encoder tasks as `TrainableLanguageModel`s, so the one `Trainer` (AdamW, schedules, accumulation, clipping,
// checkpoints, exact resume, metrics) trains them. Each example becomes a `TokenizedExample` whose labels carry
// what the loss needs, and the `TokenBatch` the sampler pads is read back here:
//   classification  ids = [CLS] text [SEP] (pair [SEP]); labels[1] = class id, so targets[row, 0] is the class
//   retrieval       ids = anchor ids ++ positive ids (each [CLS] … [SEP]); labels[len(anchor)] = 1, so the one
//                   target ≠ −100 sits on the anchor's last token and marks where the positive starts
// Each row then has exactly one target, and the trainer's per-target weighting is a per-example mean.
import Autograd
import Models
import PEFT
import TensorCore
import Tokenizers

/// Encoder examples ⇄ the token batches the trainer samples.
public enum EncoderExamples {
    /// Longest total length an example may have (the position table bounds it).
    public static func checkMaxLength(_ maxLength: Int, positions: Int) throws {
        guard maxLength >= 4 else { throw TrainingDataError.invalidOption(name: "max length", reason: "\(maxLength) is too short for [CLS] text [SEP]") }
        guard maxLength <= positions else {
            throw TrainingDataError.invalidOption(name: "max length", reason: "\(maxLength) exceeds the model's \(positions) positions")
        }
    }

    public static func classification(_ file: ClassificationDataFile, labels: LabelSet, tokenizer: WordPieceTokenizer,
                               maxLength: Int) throws -> TokenizedDataset {
        let ids = try file.classIDs(labels)
        var truncated = 0
        let examples = zip(file.examples, ids).map { example, classID -> TokenizedExample in
            let e = tokenizer.encoding(example.text, pair: example.pair, maxLength: maxLength)
            if e.truncated { truncated += 1 }
            var labels = [Int32](repeating: ignoredLabel, count: e.ids.count)
            labels[1] = Int32(classID)
            return TokenizedExample(ids: e.ids.map(Int32.init), labels: labels)
        }
        return TokenizedDataset(path: file.path, examples: examples, truncatedCount: truncated)
    }

    public static func retrieval(_ file: RetrievalDataFile, tokenizer: WordPieceTokenizer, maxLength: Int) throws -> TokenizedDataset {
        var truncated = 0
        let examples = file.pairs.map { pair -> TokenizedExample in
            let a = tokenizer.encoding(pair.anchor, maxLength: maxLength), p = tokenizer.encoding(pair.positive, maxLength: maxLength)
            if a.truncated || p.truncated { truncated += 1 }
            var labels = [Int32](repeating: ignoredLabel, count: a.ids.count + p.ids.count)
            labels[a.ids.count] = 1
            return TokenizedExample(ids: (a.ids + p.ids).map(Int32.init), labels: labels)
        }
        return TokenizedDataset(path: file.path, examples: examples, truncatedCount: truncated)
    }

    /// Row r of a batch: its real tokens (the mask's ones) and its one target's position.
    public static func rows(_ batch: TokenBatch) -> [(ids: [Int32], target: Int, label: Int32)] {
        let n = batch.length
        return (0..<batch.rows).map { r in
            let real = (0..<n).filter { batch.attentionMask[flat: r * n + $0] == 1 }.count
            let target = (0..<n).first { batch.targets[r * n + $0] != ignoredLabel } ?? 0
            return (Array(batch.inputIDs[(r * n)..<(r * n + real)]), target, batch.targets[r * n + target])
        }
    }

    /// Rows right-padded with `padID` into an encoder batch; type ids 1 after the first [SEP] (`sepID`), as the
    /// pair template writes them.
    public static func batch(_ rows: [[Int32]], padID: Int32, sepID: Int32?) -> EncoderBatch {
        let width = rows.map(\.count).max() ?? 0
        var ids: [[Int32]] = [], types: [[Int32]] = [], mask: [[Int32]] = []
        for row in rows {
            let fill = width - row.count
            ids.append(row + Array(repeating: padID, count: fill))
            mask.append(Array(repeating: 1, count: row.count) + Array(repeating: 0, count: fill))
            var t = [Int32](repeating: 0, count: width)
            if let sepID, let first = row.firstIndex(of: sepID) { for i in (first + 1)..<row.count { t[i] = 1 } }
            types.append(t)
        }
        return EncoderBatch(ids: ids, typeIDs: types, attentionMask: mask)
    }
}

/// BertForSequenceClassification trained through LoRA + the classifier as modules_to_save.
public final class SequenceClassificationTrainable: TrainableLanguageModel {
    public let classifier: BertSequenceClassifier
    public let padID: Int32, sepID: Int32?

    public init(classifier: BertSequenceClassifier, padID: Int32, sepID: Int32?) {
        self.classifier = classifier; self.padID = padID; self.sepID = sepID
    }

    public var adaptedLinears: [AdaptedLinear] { classifier.adaptedLinears }
    public var outputHeadNames: Set<String> { classifier.outputHeadNames }
    public var recomputesActivations: Bool {
        get { classifier.encoder.recomputesActivations }
        set { classifier.encoder.recomputesActivations = newValue }
    }

    public func loss(batch: TokenBatch, training: Bool, rng: inout RandomGenerator) throws -> Variable {
        let rows = EncoderExamples.rows(batch)
        let input = EncoderExamples.batch(rows.map(\.ids), padID: padID, sepID: sepID)
        return try classifier.loss(input, labels: rows.map(\.label), training: training, rng: &rng)
    }
}

/// A sentence encoder (mean pooling + L2 normalisation) trained with MultipleNegativesRankingLoss: for a batch of
/// (anchor, positive) pairs, the cross-entropy of scale · cos(anchor_i, positive_j) over j with target j = i, so
/// every other positive in the batch is a negative (sentence-transformers' semantics, scale 20).
public final class ContrastiveEmbeddingTrainable: TrainableLanguageModel {
    public let encoder: BertModel
    public let scale: Float
    public let padID: Int32

    public init(encoder: BertModel, padID: Int32, scale: Float = 20) {
        self.encoder = encoder; self.padID = padID; self.scale = scale
    }

    public var adaptedLinears: [AdaptedLinear] { encoder.adaptedLinears }
    public var outputHeadNames: Set<String> { encoder.outputHeadNames }
    public var recomputesActivations: Bool {
        get { encoder.recomputesActivations }
        set { encoder.recomputesActivations = newValue }
    }

    public func loss(batch: TokenBatch, training: Bool, rng: inout RandomGenerator) throws -> Variable {
        let rows = EncoderExamples.rows(batch)
        let anchors = rows.map { Array($0.ids[...$0.target]) }, positives = rows.map { Array($0.ids[($0.target + 1)...]) }
        let a = try encoder.sentenceEmbeddings(EncoderExamples.batch(anchors, padID: padID, sepID: nil), training: training, rng: &rng)
        let p = try encoder.sentenceEmbeddings(EncoderExamples.batch(positives, padID: padID, sepID: nil), training: training, rng: &rng)
        return try multipleNegativesRankingLoss(anchors: a, positives: p, scale: scale)
    }
}

/// Mean over i of −log softmax_j(scale · ⟨a_i, p_j⟩)[i] for unit rows a [B, d], p [B, d] (cosine similarities).
public func multipleNegativesRankingLoss(anchors: Variable, positives: Variable, scale: Float = 20) throws -> Variable {
    let scores = Autograd.scale(matmul(anchors, positives, transposeB: true), by: scale)  // [B, B]
    return try crossEntropy(logits: scores, targets: (0..<anchors.shape[0]).map(Int32.init))
}
