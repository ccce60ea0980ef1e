import ArgumentParser
import Foundation
import Models
import PEFT
import TensorCore
import Tokenizers
import Training

/// `lorakit eval`: loss, perplexity and greedy exact-match accuracy of a model (optionally with an adapter) on a
/// JSONL file.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Loss, perplexity and greedy exact-match accuracy on a JSONL file ({\"prompt\",\"completion\"} or {\"messages\"}).")

    @Option(help: "Model: a .gguf file or a Hugging Face directory.") var model: String
    @Option(help: "JSONL file to evaluate.") var data: String
    @Option(help: "A PEFT LoRA or AdaLoRA adapter directory, or a llama.cpp GGUF LoRA file, to apply.") var adapter: String?
    @Option(help: "Rows per loss batch.") var batchSize = 8
    @Option(help: "Longest sequence in tokens (longer examples are cut).") var maxLength = 2048
    @Option(help: "Evaluate only the first N examples (0: all).") var limit = 0
    @Option(help: "Longest generated answer in tokens.") var maxTokens = 32
    @Option(help: "Chat layout override: chatml or llama3.") var chatFormat: String?
    @Flag(help: "Skip exact-match generation (loss and perplexity only).") var noExactMatch = false
    @Flag(help: "Print machine-readable JSON.") var json = false

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive, got \(batchSize)") }
        guard limit >= 0 else { throw ValidationError("--limit must be ≥ 0, got \(limit)") }
    }

    @OptionGroup var deviceOption: DeviceOption

    func run() throws {
        try deviceOption.requireCPUPath(command: "eval")
        try BLAS.ensureAvailable()
        if EncoderTrainingRun.isEncoderModel(model) {  // BERT: accuracy or recall@1 (EncoderEvalCommand.swift)
            try evaluateEncoder(model: model, data: data, adapter: adapter, batchSize: batchSize,
                                maxLength: maxLength == 2048 ? EncoderTrainingRun.defaultMaxLength : maxLength, limit: limit, json: json)
            return
        }
        let loaded = try ModelLoader.load(URL(fileURLWithPath: model))
        guard let tokenizer = loaded.tokenizer else { throw ValidationError("\(model): the model has no tokenizer") }
        if let adapter { _ = try ModelAdapters.load(into: loaded.model, from: URL(fileURLWithPath: adapter)) }
        var file = try TrainingDataFile.load(URL(fileURLWithPath: data))
        if limit > 0 && limit < file.examples.count {
            file = TrainingDataFile(path: file.path, examples: Array(file.examples.prefix(limit)),
                                    lineNumbers: Array(file.lineNumbers.prefix(limit)))
        }
        let template = try? ChatTemplate(template: loaded.chatTemplate, formatOverride: chatFormat)

        // Loss over the learnt positions (completions / assistant turns), token-weighted.
        let encoder = try ExampleEncoder(tokenizer: tokenizer, chatTemplate: template,
                                         options: EncodingOptions(maxLength: maxLength))
        let dataset = try TokenizedDataset(file: file, encoder: encoder)
        var rng = RandomGenerator(seed: 0)
        var lossSum = 0.0, targets = 0
        for batch in BatchSampler.sequentialBatches(dataset, batchRows: batchSize, paddingID: tokenizer.batchPaddingID) where batch.targetCount > 0 {
            let loss = try loaded.model.loss(batch: batch, training: false, rng: &rng).value.scalarValue
            lossSum += Double(loss) * Double(batch.targetCount); targets += batch.targetCount
        }
        let meanLoss = targets > 0 ? lossSum / Double(targets) : .nan
        var result: [String: Any] = ["examples": dataset.examples.count, "targets": targets,
                                     "loss": meanLoss, "perplexity": exp(meanLoss)]
        if !json { print(String(format: "%@: %d examples, loss %.4f, perplexity %.3f", data, dataset.examples.count, meanLoss, exp(meanLoss))) }
        if !noExactMatch {
            let cases = try ExactMatch.cases(from: file)
            let report = try ExactMatch.evaluate(model: loaded.model, tokenizer: tokenizer, chatTemplate: template,
                                                 stopTokenIDs: loaded.stopTokenIDs, cases: cases, maxNewTokens: maxTokens)
            result["exact_match"] = report.accuracy; result["exact_match_correct"] = report.correct
            if !json { print(String(format: "exact match (greedy): %d/%d = %.1f%%", report.correct, report.total, 100 * report.accuracy)) }
        }
        if json {
            let out = try JSONSerialization.data(withJSONObject: result, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: out, as: UTF8.self))
        }
    }
}
