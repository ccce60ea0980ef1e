import ArgumentParser

@main
struct LoRAKitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lorakit",
        abstract: "Parameter-efficient fine-tuning (LoRA, AdaLoRA) of real pretrained models.",
        // One subcommand per line (and per file), so adding one never conflicts with another.
        subcommands: [
            Demo.self,
            Train.self,
            Eval.self,
            Inspect.self,
            Analyze.self,
            Experiment.self,
            Bench.self,
            Generate.self,
            Combine.self,
            Chat.self,
            Merge.self,
            Embed.self,
            Export.self,
            CUDACommand.self,
        ])
}
