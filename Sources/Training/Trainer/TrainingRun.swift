// A whole `lorakit train` run once the model is loaded: read and tokenise the splits, report what was cut or
// dropped, train, and plot the losses. Model loading stays with the caller (the CLI), so this needs no family.
import Collectives
import Foundation
import PEFT
import Tokenizers

/// The splits of a data directory, read and tokenised, with the chat template used to render them.
public struct PreparedTrainingData {
    public let splits: TrainingDataSplits
    public let train: TokenizedDataset
    public let valid: TokenizedDataset?
    /// The model's template (or the --chat-format override); nil when it is unusable and no split needs it.
    public let chatTemplate: ChatTemplate?

    /// Reads `dataPath` (valid.jsonl required when `requireValid`), renders {"messages"} examples with the model's
    /// `chatTemplate` (or `chatFormat`), tokenises, and reports sizes and what was cut or dropped to `progress`.
    public init(dataPath: URL, tokenizer: any Tokenizer, chatTemplate: String?, chatFormat: String?, encoding: EncodingOptions,
                requireValid: Bool, progress: ProgressLine?) throws {
        splits = try TrainingDataSplits.load(dataPath, requireValid: requireValid)
        let usesChat = [splits.train, splits.valid].contains { $0?.examples.first?.formatName == "messages" }
        if usesChat {  // a chat dataset needs a usable template: report why there is none
            self.chatTemplate = try ChatTemplate(template: chatTemplate, formatOverride: chatFormat)
        } else {
            self.chatTemplate = try? ChatTemplate(template: chatTemplate, formatOverride: chatFormat)
        }
        let encoder = try ExampleEncoder(tokenizer: tokenizer, chatTemplate: self.chatTemplate, options: encoding)
        train = try TokenizedDataset(file: splits.train, encoder: encoder)
        valid = try splits.valid.map { try TokenizedDataset(file: $0, encoder: encoder) }
        for (name, data) in [("train", train), ("valid", valid)] {
            guard let data else { progress?.print("note: no valid.jsonl in \(dataPath.path): no evaluation"); continue }
            let total = data.examples.count + data.droppedCount
            progress?.print("\(name): \(data.examples.count) examples, \(data.tokenCount) tokens, \(data.targetCount) learnt")
            if data.truncatedCount > 0 {
                progress?.print("warning: \(data.truncatedCount) of \(total) \(name) examples are longer than --max-length \(encoding.maxLength) and were cut")
            }
            if data.droppedCount > 0 {
                progress?.print("warning: \(data.droppedCount) of \(total) \(name) examples have nothing to learn within --max-length and were left out")
            }
        }
    }
}

public enum TrainingRun {
    /// Trains `model` as `plan` says; `chatTemplate` is the model's Jinja template (used for {"messages"} data).
    /// With several ranks in `collective` (data parallelism) only rank 0 prints and writes files.
    @discardableResult
    public static func execute(_ plan: TrainingRunPlan, model: any TrainableLanguageModel, tokenizer: any Tokenizer,
                               chatTemplate: String?, progress: ProgressLine?,
                               collective: any Collective = SingleProcessCollective()) throws -> TrainingSummary {
        let progress = collective.isRoot ? progress : nil
        let data = try PreparedTrainingData(dataPath: plan.dataPath, tokenizer: tokenizer, chatTemplate: chatTemplate,
                                            chatFormat: plan.chatFormat, encoding: plan.encoding, requireValid: false, progress: progress)
        let trainer = try Trainer(model: model, method: plan.method, trainData: data.train, validData: data.valid,
                                  paddingID: tokenizer.batchPaddingID, configuration: plan.trainer)
        trainer.progress = progress
        trainer.collective = collective
        let summary = try trainer.run(resumeFrom: plan.resume)
        if summary.adapterDirectory != nil && collective.isRoot {
            let plot = plan.trainer.outputDirectory.appendingPathComponent("loss.svg")
            try LossPlot.write(metricsFile: summary.metricsFile, to: plot, title: "\(plan.method.displayName) training loss")
            progress?.print("Loss plot: \(plot.path)")
            if let ranks = summary.adaLoRARanks, case .adalora(let config, _) = trainer.method {
                try writeRankReport(ranks, initRank: config.initR, metricsFile: summary.metricsFile,
                                    directory: plan.trainer.outputDirectory, progress: progress)
            }
        }
        return summary
    }

    /// AdaLoRA's final rank table (printed), ranks.svg and rank_history.svg in `directory`.
    public static func writeRankReport(_ ranks: [RankAllocator.ModuleRank], initRank: Int, metricsFile: URL, directory: URL,
                                       progress: ProgressLine?) throws {
        let map = AdaLoRARankMap(ranks)
        progress?.print("Final AdaLoRA ranks (kept triplets of init_r \(initRank); total \(map.total)):\n" + map.table())
        let ranksURL = directory.appendingPathComponent("ranks.svg")
        try map.heatmap(initRank: initRank).write(to: ranksURL)
        let historyURL = directory.appendingPathComponent("rank_history.svg")
        try AdaLoRARankLog.historyHeatmap(metricsFile: metricsFile, initRank: initRank).write(to: historyURL)
        progress?.print("Rank plots: \(ranksURL.path), \(historyURL.path)")
    }
}
