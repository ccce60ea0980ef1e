import ArgumentParser
import Foundation
import TensorCore
import Training

/// `lorakit demo encoder`: a generated BERT task (negation-aware sentiment, or date retrieval), base vs LoRA.
struct DemoEncoder: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encoder",
        abstract: "BERT demo: generated classification (negation-aware sentiment) or retrieval (dates → ISO) task, base vs LoRA accuracy / recall@1.")

    @Option(help: "classification or retrieval.") var task = "classification"
    @Option(help: "A Hugging Face BERT directory (default: $LORAKIT_MODELS/minilm or models/minilm).") var model: String?
    @Option(help: "Directory for the data, adapter and report.") var out = "demo-encoder"
    @Option(help: "Training examples.") var train = 800
    @Option(help: "Validation / test examples each.") var eval = 200
    @Option(help: "Optimizer steps.") var iters = 60
    @Option(help: "Examples per batch (retrieval: in-batch negatives per anchor + 1).") var batchSize = 32
    @Option(help: "LoRA rank.") var rank = 8
    @Option(help: "Peak learning rate.") var learningRate = 1e-3
    @Option(help: "Seed for data, initialisation and order.") var seed: UInt64 = 0
    @Flag(help: "Print machine-readable JSON at the end.") var json = false

    func run() throws {
        try BLAS.ensureAvailable()
        guard let kind = EncoderTask(rawValue: task) else { throw ValidationError("--task must be classification or retrieval, got \(task)") }
        let models = ProcessInfo.processInfo.environment["LORAKIT_MODELS"] ?? "models"
        var demo = EncoderDemo(task: kind, modelDirectory: URL(fileURLWithPath: model ?? "\(models)/minilm"), outputDirectory: URL(fileURLWithPath: out))
        demo.train = train; demo.valid = eval; demo.test = eval; demo.iterations = iters; demo.batchSize = batchSize
        demo.rank = rank; demo.learningRate = learningRate; demo.seed = seed
        let report = try demo.run(progress: ProgressLine())
        let metric = kind == .classification ? "accuracy" : "recall@1"
        let centroid = kind == .classification
        print("\n| split | base \(metric)\(centroid ? " (random head)" : "") |\(centroid ? " base embeddings, nearest centroid |" : "") LoRA \(metric) |")
        print(centroid ? "|---|---|---|---|" : "|---|---|---|")
        for split in ["valid", "test"] {
            guard let b = report.before[split], let a = report.after[split] else { continue }
            let middle = report.baseline[split].map { String(format: " %.1f%% |", 100 * $0.headline) } ?? ""
            print(String(format: "| %@ | %.1f%% |%@ %.1f%% |", split, 100 * b.headline, middle, 100 * a.headline))
        }
        print(String(format: "trained %d steps in %.0f s", report.summary.steps.count, report.trainSeconds))
        var object: [String: Any] = ["task": kind.rawValue, "train_seconds": report.trainSeconds, "steps": report.summary.steps.count]
        object["before"] = report.before.mapValues(\.json); object["after"] = report.after.mapValues(\.json)
        object["baseline_nearest_centroid"] = report.baseline.mapValues(\.json)
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: out).appendingPathComponent("report.json"), options: .atomic)
        if json { print(String(decoding: data, as: UTF8.self)) }
    }
}
