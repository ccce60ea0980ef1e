import ArgumentParser
import Foundation
import Models
import PEFT
import TensorCore
import Tokenizers
import Training

/// `lorakit experiment …`: the LoRA paper's experiments, run on the user's model and data.
struct Experiment: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The LoRA paper's experiments on your model and data (rank sweep with subspace similarity).",
        subcommands: [RankSweepCommand.self])

    /// `lorakit experiment rank-sweep`: identical short runs that differ only in r (Table 6), then φ (Figure 3).
    struct RankSweepCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rank-sweep",
            abstract: "Train identical LoRA runs that differ only in r; valid loss, exact match, and φ between two ranks' A matrices.",
            discussion: """
                Every run uses the same seed, data order, steps, learning-rate schedule and targets. α follows \
                --scaling: fixed-alpha (the LoRA paper: α fixed, s = α/r), fixed-scale (s fixed, α = s·r) or rslora \
                (s = α/√r). Each run's A is drawn from its own random stream, so φ measures learnt directions, not a \
                shared initialisation. Without --data the date-normalisation demo task is written to OUT/data. \
                Run r writes its PEFT adapter to OUT/r<r>/; plots go to OUT/plots/, the full result to OUT/result.json.
                """)

        @Option(help: "Model: a .gguf file or a Hugging Face directory.") var model = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        @Option(help: "Data directory (train.jsonl, valid.jsonl, optional test.jsonl); default: the demo date task in OUT/data.")
        var data: String?
        @Option(help: "Comma-separated LoRA ranks.") var ranks = "1,2,4,8,64"
        @Option(help: "Comma-separated target modules.") var targets = "q_proj,v_proj"
        @Option(help: "Training steps per run.") var iters = 40
        @Option(help: "Examples per step.") var batchSize = 8
        @Option(help: "Peak learning rate.") var learningRate = 2e-3
        @Option(help: "Warm-up steps (default: iters/20, at least 1).") var warmup: Int?
        @Option(help: "Longest sequence in tokens.") var maxLength = 128
        @Option(help: "How α follows r: fixed-alpha, fixed-scale or rslora.") var scaling = "fixed-alpha"
        @Option(help: "α for fixed-alpha and rslora, s for fixed-scale.") var alpha = 16.0
        @Option(help: "LoRA dropout.") var dropout = 0.05
        @Option(help: "The two ranks compared by φ, \"low,high\" (default: 8,64 when swept, else smallest,largest).")
        var compare: String?
        @Option(help: "Score at most this many test examples by exact match (0: all).") var testLimit = 0
        @Option(help: "Test examples written for the demo task (without --data).") var testExamples = 100
        @Option(help: "Valid batches per evaluation (default: the whole valid split).") var evalBatches: Int?
        @Option(help: "Random seed.") var seed: UInt64 = 0
        @Option(help: "Output directory.") var out = "runs/rank-sweep"
        @Flag(help: "Skip greedy exact-match scoring.") var noExactMatch = false
        @Flag(help: "Print the result as JSON (progress goes to stderr).") var json = false

        func validate() throws {
            for (value, name) in [(iters, "--iters"), (batchSize, "--batch-size"), (maxLength, "--max-length"), (testExamples, "--test-examples")]
            where value < 1 {
                throw ValidationError("\(name) must be at least 1, got \(value)")
            }
            guard testLimit >= 0 else { throw ValidationError("--test-limit must be ≥ 0, got \(testLimit)") }
        }

        func sweepConfiguration() throws -> RankSweepConfiguration {
            var c = RankSweepConfiguration(outputDirectory: URL(fileURLWithPath: out))
            c.ranks = try RankSweepConfiguration.parseRanks(ranks)
            c.targets = ModuleSelector(commandLine: targets)
            switch scaling {
            case "fixed-alpha": c.scaling = .fixedAlpha(alpha)
            case "fixed-scale": c.scaling = .fixedScale(alpha)
            case "rslora": c.scaling = .rankStabilized(alpha: alpha)
            default: throw ValidationError("--scaling must be one of fixed-alpha, fixed-scale, rslora; got \(scaling)")
            }
            c.dropout = dropout
            if let compare {
                let pair = try RankSweepConfiguration.parseRanks(compare)
                guard pair.count == 2, pair[0] != pair[1] else { throw ValidationError("--compare takes two different ranks \"low,high\", got \(compare)") }
                c.similarityRanks = (pair.min()!, pair.max()!)
            }
            c.trainer.iterations = iters; c.trainer.batchSize = batchSize; c.trainer.learningRate = learningRate
            c.trainer.warmupSteps = warmup ?? max(1, iters / 20); c.trainer.seed = seed; c.trainer.evalBatches = evalBatches
            c.baseModelNameOrPath = model
            try c.validate()
            return c
        }

        func run() throws {
            try BLAS.ensureAvailable()
            // With --json, stdout carries only the result: progress goes to stderr.
            let stream = json ? FileHandle.standardError : FileHandle.standardOutput
            let write: (String) -> Void = { stream.write(Data($0.utf8)) }
            let say: (String) -> Void = { write($0 + "\n") }
            let configuration = try sweepConfiguration()
            let outDir = URL(fileURLWithPath: out)
            let dataDir: URL
            if let data { dataDir = URL(fileURLWithPath: data) } else {
                dataDir = outDir.appendingPathComponent("data")
                try DateNormalizationTask(seed: seed).write(to: dataDir, train: max(iters * batchSize, 200), valid: 64,
                                                            test: testExamples, format: .messages)
                say("Demo task: normalise written dates to ISO 8601; data in \(dataDir.path)")
            }

            let loaded = try ModelLoader.load(URL(fileURLWithPath: model))
            guard let tokenizer = loaded.tokenizer else { throw ValidationError("\(model): the model has no tokenizer") }
            let progress = ProgressLine(interactive: isatty(json ? STDERR_FILENO : STDOUT_FILENO) == 1, write: write)
            let prepared = try PreparedTrainingData(dataPath: dataDir, tokenizer: tokenizer, chatTemplate: loaded.chatTemplate, chatFormat: nil,
                                                    encoding: EncodingOptions(maxLength: maxLength), requireValid: true, progress: progress)
            let splits = prepared.splits, template = prepared.chatTemplate

            let experiment = try RankSweepExperiment(model: loaded.model, configuration: configuration, trainData: prepared.train,
                                                     validData: prepared.valid!, paddingID: tokenizer.batchPaddingID)
            experiment.progress = progress
            if !noExactMatch {
                if let test = splits.test {
                    var cases = try ExactMatch.cases(from: test)
                    if testLimit > 0 { cases = Array(cases.prefix(testLimit)) }
                    experiment.exactMatch = {
                        try ExactMatch.evaluate(model: loaded.model, tokenizer: tokenizer, chatTemplate: template,
                                                stopTokenIDs: loaded.stopTokenIDs, cases: cases)
                    }
                } else {
                    say("note: no test.jsonl in \(dataDir.path): no exact-match scores")
                }
            }
            let started = Date()
            let result = try experiment.run()
            let plots = try result.writePlots(to: outDir.appendingPathComponent("plots"))
            let jsonEncoder = JSONEncoder()
            jsonEncoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let jsonData = try jsonEncoder.encode(result)
            let resultURL = outDir.appendingPathComponent("result.json")
            try jsonData.write(to: resultURL, options: .atomic)
            if json {
                print(String(decoding: jsonData, as: UTF8.self))
                return
            }
            print("\n" + result.table())
            print(String(format: "whole sweep %.0f s; adapters in %@/r<r>, %d plots in %@, JSON in %@", Date().timeIntervalSince(started),
                         outDir.path, plots.count, outDir.appendingPathComponent("plots").path, resultURL.path))
        }
    }
}
