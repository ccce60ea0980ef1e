// Generated demo tasks for BERT encoders, each small enough to fine-tune in a few minutes on two cores:
//   classification  negation-aware sentiment: "the soup was not bland" is positive. Mean-pooled base embeddings
//                   put a sentence and its negation close together, so the label is the polarity XOR the negation
//                   that a frozen encoder hides; LoRA on the attention layers learns to expose it.
//   retrieval       dates: anchor "the fifth of March 2021" (any form of the date demo), positive "2021-03-05",
//                   ranked among every ISO date of the split. The base model matches digits but not month names
//                   or ordinal words to numbers; splits hold disjoint dates.
// Both are seeded and their splits disjoint.
import Foundation
import Models
import TensorCore
import Tokenizers

public struct NegationSentimentTask: Sendable {
    public var seed: UInt64
    public init(seed: UInt64 = 0) { self.seed = seed }

    static let subjects = ["the soup", "the movie", "the hotel room", "our waiter", "the concert", "this phone", "the book",
                           "the new update", "the coffee", "the train ride", "the lecture", "her performance", "the museum",
                           "the pizza", "the software", "his advice", "the game", "the weather", "the service", "the show"]
    static let positive = ["good", "great", "excellent", "delightful", "wonderful", "pleasant", "superb", "enjoyable",
                           "impressive", "fantastic", "lovely", "charming"]
    static let negative = ["bad", "awful", "terrible", "dreadful", "boring", "disappointing", "horrible", "dull",
                           "mediocre", "annoying", "poor", "unpleasant"]
    static let verbs = ["was", "is", "seemed", "felt", "looked"]
    static let negations = ["not", "never", "hardly", "not at all", "by no means"]
    static let intensifiers = ["", "really ", "truly ", "very ", "quite "]

    /// (text, label) with label "positive" or "negative"; half the sentences are negated.
    public func examples(_ count: Int, rng: inout RandomGenerator) -> [(text: String, label: String)] {
        func pick<T>(_ list: [T]) -> T { list[Int(rng.nextUInt64() % UInt64(list.count))] }
        return (0..<count).map { _ in
            let praise = rng.nextUInt64() % 2 == 0, negated = rng.nextUInt64() % 2 == 0
            let adjective = pick(praise ? Self.positive : Self.negative)
            let subject = pick(Self.subjects), verb = pick(Self.verbs)
            let text: String
            if negated {
                let negation = pick(Self.negations)
                text = negation == "not at all" ? "\(subject) \(verb) not \(adjective) at all" : "\(subject) \(verb) \(negation) \(adjective)"
            } else {
                text = "\(subject) \(verb) \(pick(Self.intensifiers))\(adjective)"
            }
            return (text.prefix(1).uppercased() + text.dropFirst() + ".", praise != negated ? "positive" : "negative")
        }
    }

    /// train/valid/test JSONL ({"text", "label"}) in `directory`; no sentence of valid or test is in train.
    public func write(to directory: URL, train: Int, valid: Int, test: Int) throws -> [URL] {
        var rng = RandomGenerator(seed: seed)
        var seen = Set<String>()
        func split(_ n: Int) -> [(text: String, label: String)] {
            var out: [(text: String, label: String)] = []
            var attempts = 0
            while out.count < n && attempts < n * 50 {
                attempts += 1
                for e in examples(1, rng: &rng) where seen.insert(e.text).inserted { out.append(e) }
            }
            return out
        }
        let splits = [("train", split(train)), ("valid", split(valid)), ("test", split(test))]
        return try splits.map { name, rows in
            try EncoderDemoFiles.write(rows.map { ["text": $0.text, "label": $0.label] }, to: directory.appendingPathComponent("\(name).jsonl"))
        }
    }
}

public struct DateRetrievalTask: Sendable {
    public var seed: UInt64
    public init(seed: UInt64 = 0) { self.seed = seed }

    /// train/valid/test JSONL ({"anchor": written date, "positive": ISO date}) with disjoint dates.
    public func write(to directory: URL, train: Int, valid: Int, test: Int) throws -> [URL] {
        let splits = try DateNormalizationTask(seed: seed).splits(train: train, valid: valid, test: test)
        return try [("train", splits.train), ("valid", splits.valid), ("test", splits.test)].map { name, rows in
            try EncoderDemoFiles.write(rows.map { ["anchor": $0.text, "positive": $0.date.iso] }, to: directory.appendingPathComponent("\(name).jsonl"))
        }
    }
}

enum EncoderDemoFiles {
    /// One JSON object per line, sorted keys, written atomically.
    static func write(_ rows: [[String: String]], to url: URL) throws -> URL {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        var text = ""
        for row in rows {
            let data = try JSONSerialization.data(withJSONObject: row, options: [.sortedKeys])
            text += String(decoding: data, as: UTF8.self) + "\n"
        }
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        try Data(text.utf8).write(to: temporary)
        guard rename(temporary.path, url.path) == 0 else { throw TrainingError.file(path: url.path, reason: "cannot move into place (errno \(errno))") }
        return url
    }
}

/// `lorakit demo encoder`: generate a task, measure the base model, train LoRA, measure again.
public struct EncoderDemo {
    public var task: EncoderTask
    public var modelDirectory: URL
    public var outputDirectory: URL
    public var train = 800, valid = 200, test = 200
    public var iterations = 60, batchSize = 32, rank = 8, learningRate = 1e-3
    public var seed: UInt64 = 0

    public init(task: EncoderTask, modelDirectory: URL, outputDirectory: URL) {
        self.task = task; self.modelDirectory = modelDirectory; self.outputDirectory = outputDirectory
    }

    /// Writes the data under outputDirectory/data, trains into outputDirectory/adapter; returns the run's report.
    public func run(progress: ProgressLine?) throws -> EncoderRunReport {
        let data = outputDirectory.appendingPathComponent("data")
        switch task {
        case .classification: _ = try NegationSentimentTask(seed: seed).write(to: data, train: train, valid: valid, test: test)
        case .retrieval: _ = try DateRetrievalTask(seed: seed).write(to: data, train: train, valid: valid, test: test)
        }
        // Classification's untrained model has a random head (chance accuracy); the fairer base is the frozen
        // encoder's own embeddings: nearest class centroid of the training examples.
        var centroid: [String: EncoderMetrics] = [:]
        if task == .classification {
            let tokenizer = try WordPieceTokenizer(huggingFaceTokenizer: modelDirectory.appendingPathComponent("tokenizer.json"))
            let encoder = try BertModel.load(directory: modelDirectory)
            let trainFile = try ClassificationDataFile.load(data.appendingPathComponent("train.jsonl"))
            let labels = try LabelSet(training: trainFile)
            for split in ["valid", "test"] {
                let file = try ClassificationDataFile.load(data.appendingPathComponent("\(split).jsonl"))
                centroid[split] = .classification(try EncoderEvaluation.nearestCentroid(encoder, tokenizer: tokenizer, train: trainFile, file: file,
                                                                                       labels: labels, maxLength: 64))
                progress?.print("base embeddings (nearest class centroid), \(split): \(centroid[split]!.summary)")
            }
        }
        var o = TrainingRunOptions()
        o.model = modelDirectory.path; o.data = data.path; o.out = outputDirectory.appendingPathComponent("adapter").path
        o.rank = rank; o.alpha = Double(2 * rank); o.dropout = 0.1; o.targets = "query,key,value,dense"
        o.iters = iterations; o.batchSize = batchSize; o.learningRate = learningRate; o.warmup = iterations / 10
        o.evalEvery = 0; o.saveEvery = 0; o.seed = Int(seed); o.overwrite = true; o.maxLength = 64
        o.weightDecay = 0.01
        var report = try EncoderTrainingRun.execute(options: o, task: task.rawValue, progress: progress)
        report.baseline = centroid
        return report
    }
}
