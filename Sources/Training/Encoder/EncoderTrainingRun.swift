// `lorakit train` on a BERT directory: sequence classification ({"text", "label"}) or retrieval
// ({"anchor", "positive"}), picked by --task or by the first training example. The same options, trainer,
// checkpoints and metrics as decoder training; what differs is the model wrapper (EncoderTrainable.swift), the
// PEFT config (classification saves the classifier as modules_to_save with task_type SEQ_CLS; retrieval is
// FEATURE_EXTRACTION on the bare BertModel), and the task metrics measured before and after training.
import Foundation
import Models
import PEFT
import TensorCore
import Tokenizers

/// A task metric of one split.
public enum EncoderMetrics: Equatable, Sendable {
    case classification(ClassificationMetrics)
    case retrieval(RetrievalMetrics)

    /// Accuracy or recall@1.
    public var headline: Double {
        switch self {
        case .classification(let m): return m.accuracy
        case .retrieval(let m): return m.recallAt1
        }
    }

    public var summary: String {
        switch self {
        case .classification(let m): return String(format: "accuracy %.1f%% (%d/%d), loss %.4f", 100 * m.accuracy, m.correct, m.examples, m.loss)
        case .retrieval(let m):
            return String(format: "recall@1 %.1f%%, recall@5 %.1f%%, MRR %.3f (%d queries, %d candidates)", 100 * m.recallAt1,
                          100 * m.recallAt5, m.meanReciprocalRank, m.queries, m.candidates)
        }
    }

    public var json: [String: Any] {
        switch self {
        case .classification(let m): return ["accuracy": m.accuracy, "correct": m.correct, "examples": m.examples, "loss": m.loss]
        case .retrieval(let m):
            return ["recall_at_1": m.recallAt1, "recall_at_5": m.recallAt5, "mrr": m.meanReciprocalRank, "queries": m.queries, "candidates": m.candidates]
        }
    }
}

/// What an encoder run measured.
public struct EncoderRunReport {
    public let task: EncoderTask
    /// Metrics of the untrained model (for classification: a fresh head) and of the trained one, per split.
    public let before: [String: EncoderMetrics], after: [String: EncoderMetrics]
    /// A training-free baseline where the caller measured one (the demo's nearest-centroid classifier).
    public var baseline: [String: EncoderMetrics] = [:]
    public let summary: TrainingSummary
    public let trainSeconds: Double
}

/// A loaded BERT directory: the model for a task and its tokenizer.
public struct EncoderTaskModel {
    public let task: EncoderTask
    public let tokenizer: WordPieceTokenizer
    /// Classification: the classifier; retrieval: nil.
    public let classifier: BertSequenceClassifier?
    public let encoder: BertModel
    public let labels: LabelSet?

    /// The model as the trainer sees it.
    public var trainable: any TrainableLanguageModel {
        let pad = Int32(tokenizer.padID)
        if let classifier { return SequenceClassificationTrainable(classifier: classifier, padID: pad, sepID: tokenizer.specialTokenIDs.eos.map(Int32.init)) }
        return ContrastiveEmbeddingTrainable(encoder: encoder, padID: pad)
    }

    /// Loads `directory` for `task`; a classifier gets a fresh head for `labels`, seeded by `seed`.
    public static func load(directory: URL, task: EncoderTask, labels: LabelSet?, seed: UInt64) throws -> EncoderTaskModel {
        let tokenizer = try WordPieceTokenizer(huggingFaceTokenizer: directory.appendingPathComponent("tokenizer.json"))
        switch task {
        case .classification:
            guard let labels else { throw TrainingError.invalidOption(name: "labels", reason: "classification needs the label set") }
            let encoder = try BertModel.load(directory: directory, prefix: "bert.")
            var rng = RandomGenerator(seed: seed).derived(0xC1A5)
            let classifier = try BertSequenceClassifier(encoder: encoder, labels: labels.names, rng: &rng)
            return EncoderTaskModel(task: task, tokenizer: tokenizer, classifier: classifier, encoder: encoder, labels: labels)
        case .retrieval:
            return EncoderTaskModel(task: task, tokenizer: tokenizer, classifier: nil, encoder: try BertModel.load(directory: directory), labels: nil)
        }
    }

    /// The task metric on a JSONL file.
    public func evaluate(_ url: URL, maxLength: Int, batchSize: Int = 32) throws -> EncoderMetrics {
        switch task {
        case .classification:
            return .classification(try EncoderEvaluation.classification(classifier!, tokenizer: tokenizer, file: ClassificationDataFile.load(url),
                                                                       labels: labels!, maxLength: maxLength, batchSize: batchSize))
        case .retrieval:
            return .retrieval(try EncoderEvaluation.retrieval(encoder, tokenizer: tokenizer, file: RetrievalDataFile.load(url),
                                                              maxLength: maxLength, batchSize: batchSize))
        }
    }

    /// The LoRA config for the task: classification trains and saves the classifier (modules_to_save, SEQ_CLS).
    public func peftConfig(_ base: LoRAConfig) -> LoRAConfig {
        var config = base
        switch task {
        case .classification: config.modulesToSave = ["classifier"]; config.taskType = "SEQ_CLS"
        case .retrieval: config.taskType = "FEATURE_EXTRACTION"
        }
        return config
    }
}

public enum EncoderTrainingRun {
    /// Whether `path` is a Hugging Face directory of a BERT model.
    public static func isEncoderModel(_ path: String) -> Bool {
        BertConfig.isBert(URL(fileURLWithPath: path).appendingPathComponent("config.json"))
    }

    /// Default sequence length for encoder training and evaluation (all-MiniLM-L6-v2's tokenizer.json truncation).
    public static let defaultMaxLength = 128

    /// Trains as `options` say; `task` nil: from the data. Encoder defaults: --targets query,value, --max-length 128.
    @discardableResult
    public static func execute(options given: TrainingRunOptions, task requested: String?, progress: ProgressLine?) throws -> EncoderRunReport {
        var options = given
        if options.targets == nil { options.targets = "query,value" }
        if options.maxLength == nil { options.maxLength = defaultMaxLength }
        guard options.packing != true else {
            throw TrainingError.invalidOption(name: "--packing", reason: "encoder examples are never packed (each row is one example)")
        }
        let plan = try options.resolved()
        guard case .lora(let lora) = plan.method else {
            throw TrainingError.invalidOption(name: "--method", reason: "encoder fine-tuning supports LoRA only")
        }
        let (train, valid, test) = try splitFiles(plan.dataPath)
        let task: EncoderTask
        if let requested {
            guard let t = EncoderTask(rawValue: requested.lowercased()) else {
                throw TrainingError.invalidOption(name: "--task", reason: "\"\(requested)\" is not one of classification, retrieval")
            }
            task = t
        } else {
            task = try EncoderJSONL.task(of: train)
        }
        let maxLength = plan.encoding.maxLength
        let modelURL = URL(fileURLWithPath: plan.modelPath)

        // Data first: a bad label fails before the model loads.
        var labels: LabelSet? = nil
        let trainData: TokenizedDataset, validData: TokenizedDataset?
        let tokenizer = try WordPieceTokenizer(huggingFaceTokenizer: modelURL.appendingPathComponent("tokenizer.json"))
        switch task {
        case .classification:
            let file = try ClassificationDataFile.load(train)
            let set = try LabelSet(training: file)
            labels = set
            trainData = try EncoderExamples.classification(file, labels: set, tokenizer: tokenizer, maxLength: maxLength)
            validData = try valid.map { try EncoderExamples.classification(ClassificationDataFile.load($0), labels: set, tokenizer: tokenizer, maxLength: maxLength) }
            if let test { _ = try ClassificationDataFile.load(test).classIDs(set) }
        case .retrieval:
            trainData = try EncoderExamples.retrieval(RetrievalDataFile.load(train), tokenizer: tokenizer, maxLength: maxLength)
            validData = try valid.map { try EncoderExamples.retrieval(RetrievalDataFile.load($0), tokenizer: tokenizer, maxLength: maxLength) }
        }
        let model = try EncoderTaskModel.load(directory: modelURL, task: task, labels: labels, seed: plan.trainer.seed)
        try EncoderExamples.checkMaxLength(maxLength, positions: model.encoder.config.maxPositions)
        progress?.print("\(task.rawValue): \(trainData.examples.count) training examples (\(trainData.truncatedCount) truncated to \(maxLength) tokens)"
            + (labels.map { "; \($0.names.count) classes: \($0.names.joined(separator: ", "))" } ?? ""))

        let evaluated = [("valid", valid), ("test", test)].compactMap { name, url in url.map { (name, $0) } }
        var before: [String: EncoderMetrics] = [:], after: [String: EncoderMetrics] = [:]
        if plan.resume == nil {
            for (name, url) in evaluated {
                before[name] = try model.evaluate(url, maxLength: maxLength)
                progress?.print("before training, \(name): \(before[name]!.summary)")
            }
        }
        let trainer = try Trainer(model: model.trainable, method: .lora(model.peftConfig(lora)), trainData: trainData, validData: validData,
                                  paddingID: Int32(tokenizer.padID), configuration: plan.trainer)
        trainer.progress = progress
        let started = Date()
        let summary = try trainer.run(resumeFrom: plan.resume)
        let seconds = Date().timeIntervalSince(started)
        if summary.adapterDirectory != nil {
            try labels?.write(to: plan.trainer.outputDirectory)
            for (name, url) in evaluated {
                after[name] = try model.evaluate(url, maxLength: maxLength)
                progress?.print("after training, \(name): \(after[name]!.summary)")
            }
            let plot = plan.trainer.outputDirectory.appendingPathComponent("loss.svg")
            try LossPlot.write(metricsFile: summary.metricsFile, to: plot, title: "LoRA \(task.rawValue) loss")
        }
        return EncoderRunReport(task: task, before: before, after: after, baseline: [:], summary: summary, trainSeconds: seconds)
    }

    /// train.jsonl (required), valid.jsonl and test.jsonl of a directory, or a single file as the training split.
    static func splitFiles(_ url: URL) throws -> (URL, URL?, URL?) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else { throw TrainingDataError.missingFile(path: url.path) }
        guard isDirectory.boolValue else { return (url, nil, nil) }
        func optional(_ name: String) -> URL? {
            let u = url.appendingPathComponent(name)
            return FileManager.default.fileExists(atPath: u.path) ? u : nil
        }
        guard let train = optional("train.jsonl") else { throw TrainingDataError.missingFile(path: url.appendingPathComponent("train.jsonl").path) }
        return (train, optional("valid.jsonl"), optional("test.jsonl"))
    }
}
