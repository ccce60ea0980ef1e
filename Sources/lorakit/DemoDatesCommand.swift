import ArgumentParser
import Foundation
import Training

/// `lorakit demo dates`: writes the date-normalisation task's splits.
struct DemoDates: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dates",
        abstract: "Write the date-normalisation task (\"the 5th of March, 2021\" → 2021-03-05) as train/valid/test JSONL.",
        discussion: "Dates are drawn from 1950–2049 and are disjoint across splits; the same seed and counts give the same files.")
    @Option(help: "Directory for train.jsonl, valid.jsonl and test.jsonl.") var out: String
    @Option(help: "Training examples.") var train = 2000
    @Option(help: "Validation examples.") var valid = 200
    @Option(help: "Test examples.") var test = 200
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "messages (chat turns, for chat models) or completion ({\"prompt\", \"completion\"}).") var format = "messages"

    func run() throws {
        guard let dataFormat = DemoDataFormat(rawValue: format) else {
            throw ValidationError("--format must be one of \(DemoDataFormat.allCases.map(\.rawValue).joined(separator: ", ")), got \(format)")
        }
        let task = DateNormalizationTask(seed: seed)
        let urls = try task.write(to: URL(fileURLWithPath: out), train: train, valid: valid, test: test, format: dataFormat)
        for (url, count) in zip(urls, [train, valid, test]) { print("\(url.path): \(count) examples") }
        print("\(DateForm.allCases.count) written forms, e.g.:")
        for example in try task.splits(train: min(train, 5), valid: 0, test: 0).train {
            print("  \(example.text)  →  \(example.answer)")
        }
    }
}
