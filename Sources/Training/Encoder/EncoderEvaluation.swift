// Task metrics of a fine-tuned encoder: classification accuracy (argmax of the logits) and retrieval recall@k /
// MRR (every anchor against every distinct positive of the split, by cosine similarity of the sentence
// embeddings). Both run without a graph (frozen weights record nothing) in batches.
import Foundation
import Autograd
import Models
import TensorCore
import Tokenizers

public struct ClassificationMetrics: Equatable, Sendable {
    public let examples: Int
    public let correct: Int
    public var accuracy: Double { examples > 0 ? Double(correct) / Double(examples) : 0 }
    /// Mean cross-entropy of the true classes.
    public let loss: Double
    /// Predicted class id of each example, in file order.
    public let predictions: [Int]
    /// Logits [examples][classes], in file order.
    public let logits: [[Float]]
}

public struct RetrievalMetrics: Equatable, Sendable {
    public let queries: Int
    /// Distinct positives ranked for each anchor.
    public let candidates: Int
    public let recallAt1: Double, recallAt5: Double
    /// Mean reciprocal rank of the true positive.
    public let meanReciprocalRank: Double
}

public enum EncoderEvaluation {
    /// Accuracy of `classifier` on `file`, whose labels must be in `labels`.
    public static func classification(_ classifier: BertSequenceClassifier, tokenizer: WordPieceTokenizer, file: ClassificationDataFile,
                                      labels: LabelSet, maxLength: Int, batchSize: Int = 32) throws -> ClassificationMetrics {
        let ids = try file.classIDs(labels)
        var rng = RandomGenerator(seed: 0)
        var correct = 0, lossSum = 0.0, predictions: [Int] = [], allLogits: [[Float]] = []
        for start in stride(from: 0, to: file.examples.count, by: max(batchSize, 1)) {
            let range = start..<min(start + max(batchSize, 1), file.examples.count)
            let encoded = tokenizer.batch(range.map { tokenizer.encoding(file.examples[$0].text, pair: file.examples[$0].pair, maxLength: maxLength) })
            let logits = try classifier.logits(EncoderBatch(ids: encoded.ids, typeIDs: encoded.typeIDs, attentionMask: encoded.attentionMask),
                                               training: false, rng: &rng).value
            let k = logits.shape[1]
            for (row, i) in range.enumerated() {
                var best = 0, maxLogit = -Float.infinity
                for c in 0..<k where logits[row, c] > maxLogit { maxLogit = logits[row, c]; best = c }
                var sumExp = 0.0
                for c in 0..<k { sumExp += exp(Double(logits[row, c] - maxLogit)) }
                lossSum += log(sumExp) - Double(logits[row, ids[i]] - maxLogit)
                predictions.append(best)
                allLogits.append((0..<k).map { logits[row, $0] })
                if best == ids[i] { correct += 1 }
            }
        }
        return ClassificationMetrics(examples: ids.count, correct: correct, loss: lossSum / Double(max(ids.count, 1)),
                                     predictions: predictions, logits: allLogits)
    }

    /// A training-free baseline: each class is the mean of its training examples' unit embeddings, and an example
    /// is put in the class whose centroid is most cosine-similar (loss: cross-entropy of 20 · cosine, MNRL's scale).
    public static func nearestCentroid(_ encoder: BertModel, tokenizer: WordPieceTokenizer, train: ClassificationDataFile,
                                       file: ClassificationDataFile, labels: LabelSet, maxLength: Int, batchSize: Int = 32) throws -> ClassificationMetrics {
        let trainIDs = try train.classIDs(labels), ids = try file.classIDs(labels)
        let d = encoder.config.hiddenSize, k = labels.names.count
        let trainEmbeddings = try embed(train.examples.map(\.text), encoder: encoder, tokenizer: tokenizer, maxLength: maxLength, batchSize: batchSize)
        var centroids = [Float](repeating: 0, count: k * d)
        for (row, c) in trainIDs.enumerated() { for e in 0..<d { centroids[c * d + e] += trainEmbeddings[row, e] } }
        for c in 0..<k {
            let norm = max((0..<d).reduce(Float(0)) { $0 + centroids[c * d + $1] * centroids[c * d + $1] }.squareRoot(), 1e-12)
            for e in 0..<d { centroids[c * d + e] /= norm }
        }
        let embeddings = try embed(file.examples.map(\.text), encoder: encoder, tokenizer: tokenizer, maxLength: maxLength, batchSize: batchSize)
        var correct = 0, lossSum = 0.0, predictions: [Int] = [], logits: [[Float]] = []
        for (row, gold) in ids.enumerated() {
            let scores = (0..<k).map { c in 20 * (0..<d).reduce(Float(0)) { $0 + embeddings[row, $1] * centroids[c * d + $1] } }
            let best = scores.indices.max { scores[$0] < scores[$1] }!
            let m = scores[best]
            lossSum += log(scores.reduce(0.0) { $0 + exp(Double($1 - m)) }) - Double(scores[gold] - m)
            predictions.append(best); logits.append(scores)
            if best == gold { correct += 1 }
        }
        return ClassificationMetrics(examples: ids.count, correct: correct, loss: lossSum / Double(max(ids.count, 1)),
                                     predictions: predictions, logits: logits)
    }

    /// Unit sentence embeddings [texts, hidden] in batches.
    public static func embed(_ texts: [String], encoder: BertModel, tokenizer: WordPieceTokenizer, maxLength: Int,
                             batchSize: Int = 32) throws -> Tensor {
        var rng = RandomGenerator(seed: 0)
        var values: [Float] = []
        values.reserveCapacity(texts.count * encoder.config.hiddenSize)
        for start in stride(from: 0, to: texts.count, by: max(batchSize, 1)) {
            let chunk = Array(texts[start..<min(start + max(batchSize, 1), texts.count)])
            let encoded = tokenizer.batch(chunk, maxLength: maxLength)
            let e = try encoder.sentenceEmbeddings(EncoderBatch(ids: encoded.ids, typeIDs: encoded.typeIDs, attentionMask: encoded.attentionMask),
                                                   rng: &rng)
            e.value.withUnsafeBufferPointer { values += $0 }
        }
        return Tensor(values, shape: [texts.count, encoder.config.hiddenSize])
    }

    /// Recall@1, recall@5 and MRR of each anchor's positive among the split's distinct positives.
    public static func retrieval(_ encoder: BertModel, tokenizer: WordPieceTokenizer, file: RetrievalDataFile, maxLength: Int,
                                 batchSize: Int = 32) throws -> RetrievalMetrics {
        var candidates: [String] = [], index: [String: Int] = [:]
        for p in file.pairs where index[p.positive] == nil { index[p.positive] = candidates.count; candidates.append(p.positive) }
        let a = try embed(file.pairs.map(\.anchor), encoder: encoder, tokenizer: tokenizer, maxLength: maxLength, batchSize: batchSize)
        let c = try embed(candidates, encoder: encoder, tokenizer: tokenizer, maxLength: maxLength, batchSize: batchSize)
        let scores = try Tensor.checkedMatmul(a, c, transposeB: true)  // [queries, candidates]
        var hits1 = 0, hits5 = 0, reciprocal = 0.0
        for (q, pair) in file.pairs.enumerated() {
            let gold = index[pair.positive]!, goldScore = scores[q, gold]
            // Rank = 1 + candidates scoring higher (ties count against the query).
            var rank = 1
            for j in 0..<candidates.count where j != gold && scores[q, j] >= goldScore { rank += 1 }
            if rank == 1 { hits1 += 1 }
            if rank <= 5 { hits5 += 1 }
            reciprocal += 1 / Double(rank)
        }
        let n = Double(file.pairs.count)
        return RetrievalMetrics(queries: file.pairs.count, candidates: candidates.count, recallAt1: Double(hits1) / n,
                                recallAt5: Double(hits5) / n, meanReciprocalRank: reciprocal / n)
    }
}
