import ArgumentParser
import Foundation
import Models
import PEFT
import TensorCore
import Tokenizers
import Training

/// `lorakit demo finetune`: the main job end to end. Writes the date-normalisation task, measures the base model's
/// exact-match accuracy, trains a LoRA (or AdaLoRA) adapter, and measures it again, with example generations.
struct DemoFineTune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune SmolLM2 with LoRA or AdaLoRA on the date-normalisation task; print test accuracy before and after.",
        discussion: """
            Compare LoRA and AdaLoRA at the same final budget: --targets q_proj,v_proj --rank 8 --out runs/lora, then \
            --targets q_proj,v_proj --method adalora --init-rank 12 --target-rank 8 --out runs/adalora (see docs/ADALORA.md).
            """)

    @Option(help: "Model: a .gguf file or a Hugging Face directory.") var model = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    @Option(help: "Output directory (data, adapter, checkpoints, metrics, loss.svg).") var out = "runs/dates"
    @Option(help: "Training steps.") var iters = 80
    @Option(help: "Examples per step.") var batchSize = 8
    @Option(help: "Peak learning rate.") var learningRate = 2e-3
    @Option(help: "Adapter method: lora or adalora.") var method = "lora"
    @Option(help: "LoRA rank.") var rank = 8
    @Flag(help: "Train DoRA instead of plain LoRA (same rank and targets).") var dora = false
    @Option(help: "LoRA+: lora_B learns at this multiple of the learning rate.") var loraplusLrRatio: Double?
    @Flag(help: "rsLoRA: scale the update by alpha / sqrt(r) instead of alpha / r.") var rslora = false
    @Option(name: .customLong("init"), help: "LoRA initialisation (PEFT init_lora_weights): default, gaussian, pissa, pissa_niter_<K>, olora.") var initMethod: String?
    @Option(help: "AdaLoRA: initial rank of every module.") var initRank = 12
    @Option(help: "AdaLoRA: target average rank (final budget = target rank × modules).") var targetRank = 8
    @Option(help: "LoRA alpha.") var alpha = 16.0
    @Option(help: "Comma-separated target modules.") var targets = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    @Option(help: "Test examples scored before and after.") var testExamples = 100
    @Option(help: "Random seed.") var seed = 0

    func run() throws {
        try BLAS.ensureAvailable()
        let start = Date()
        let outDir = URL(fileURLWithPath: out)
        let dataDir = outDir.appendingPathComponent("data")
        try DateNormalizationTask(seed: UInt64(seed)).write(to: dataDir, train: max(iters * batchSize, 200), valid: 64,
                                                            test: testExamples, format: .messages)
        print("Task: normalise written dates to ISO 8601 (\"the 5th of March, 2021\" → 2021-03-05); data in \(dataDir.path)")

        // Base model accuracy.
        let loaded = try ModelLoader.load(URL(fileURLWithPath: model))
        guard let tokenizer = loaded.tokenizer else { throw ValidationError("\(model): no tokenizer in the model file") }
        let template = try ChatTemplate(template: loaded.chatTemplate, formatOverride: nil)
        let cases = try ExactMatch.cases(from: TrainingDataFile.load(dataDir.appendingPathComponent("test.jsonl")))
        let before = try ExactMatch.evaluate(model: loaded.model, tokenizer: tokenizer, chatTemplate: template,
                                             stopTokenIDs: loaded.stopTokenIDs, cases: cases)
        print(String(format: "Base model test exact match: %d/%d = %.1f%%", before.correct, before.total, 100 * before.accuracy))

        // Train.
        var options = TrainingRunOptions()
        options.model = model; options.data = dataDir.path; options.out = outDir.appendingPathComponent("train").path
        options.method = method; options.alpha = alpha; options.targets = targets; options.iters = iters
        if method.lowercased() == "adalora" { options.initRank = initRank; options.targetRank = targetRank } else { options.rank = rank }
        options.batchSize = batchSize; options.learningRate = learningRate; options.warmup = max(1, iters / 20)
        options.evalEvery = max(1, iters / 3); options.saveEvery = iters; options.seed = seed
        options.maxLength = 128; options.overwrite = true
        options.dora = dora; options.loraplusLrRatio = loraplusLrRatio
        options.rslora = rslora; options.initLoraWeights = initMethod
        let plan = try options.resolved()
        let trainStart = Date()
        let summary = try TrainingRun.execute(plan, model: loaded.model, tokenizer: tokenizer, chatTemplate: loaded.chatTemplate,
                                              progress: ProgressLine())
        let trainSeconds = Date().timeIntervalSince(trainStart)

        // Adapted model accuracy (adapter still attached and active).
        let after = try ExactMatch.evaluate(model: loaded.model, tokenizer: tokenizer, chatTemplate: template,
                                            stopTokenIDs: loaded.stopTokenIDs, cases: cases)
        var label = plan.method.displayName == "LoRA" && plan.lora.useDoRA ? "DoRA" : plan.method.displayName
        let variants = [loraplusLrRatio.map { "LoRA+ ×" + String(format: "%g", $0) }, rslora ? "rsLoRA" : nil,
                        initMethod.map { "init \($0)" }].compactMap { $0 }
        if !variants.isEmpty { label += " (" + variants.joined(separator: ", ") + ")" }
        print(String(format: "\nTest exact match: base %.1f%% → ", 100 * before.accuracy) + label
            + String(format: " %.1f%% (%d/%d); training took %.0f s, whole demo %.0f s",
                     100 * after.accuracy, after.correct, after.total, trainSeconds, Date().timeIntervalSince(start)))
        if let adapter = summary.adapterDirectory { print("Adapter (PEFT format): \(adapter.path)") }
        print("\nExamples (input → base model | \(label)):")
        for i in 0..<min(3, cases.count) {
            let input = cases[i].prompt.replacingOccurrences(of: DateNormalizationTask().instruction + " ", with: "")
            print("  \(input) → \(ExactMatch.normalize(before.results[i].output).prefix(40)) | \(ExactMatch.normalize(after.results[i].output))  (expected \(cases[i].expected))")
        }
    }
}
