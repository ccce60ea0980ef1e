import ArgumentParser

@main
struct LoRAKitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lorakit",
        abstract: "Parameter-efficient fine-tuning (LoRA, AdaLoRA) of real pretrained models.",
        subcommands: [Demo.self, Bench.self, Inspect.self, Analyze.self])
}
