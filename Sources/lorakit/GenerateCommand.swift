import ArgumentParser
import Foundation
import Models
import Tokenizers
import Formats

/// `lorakit generate`: one completion (or one chat reply with --chat), streamed to standard output.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from a prompt, streaming it to standard output.")

    @OptionGroup var generation: GenerationArguments
    @Option(help: "The prompt text; repeat for several prompts (each gets its own reply).") var prompt: [String]
    @Option(help: "Adapter for each prompt, in order (a name from --adapter NAME=DIR, or __base__ for none); with as many --adapter as --prompt and no --use, prompt i uses adapter i.") var use: [String] = []
    @Flag(help: "Wrap the prompt as a user message in the model's chat template.") var chat = false
    @Option(help: "System message for --chat (default: the template's own, if any).") var system: String?
    @Option(help: "With --temperature 0: write each greedy token's id, logit and runner-up margin to this JSON file (exactly --max-tokens tokens, no early stop).")
    var trace: String?

    func validate() throws {
        if system != nil && !chat { throw ValidationError("--system needs --chat") }
        if trace != nil && generation.temperature != 0 { throw ValidationError("--trace needs --temperature 0 (greedy)") }
        if trace != nil && prompt.count != 1 { throw ValidationError("--trace takes exactly one --prompt") }
        if prompt.isEmpty { throw ValidationError("give at least one --prompt") }
        if !use.isEmpty && use.count != prompt.count {
            throw ValidationError("--use names \(use.count) adapters for \(prompt.count) prompts; give one per prompt")
        }
    }

    /// The adapter each prompt runs with (nil: the active one as loaded).
    func adapterPerPrompt(_ names: [String]) throws -> [String?] {
        if !use.isEmpty {
            for name in use where name != "__base__" && !names.contains(name) {
                throw ValidationError("--use \(name): no such adapter (have: \((names + ["__base__"]).joined(separator: ", ")))")
            }
            return use
        }
        if names.count > 1 {
            guard names.count == prompt.count else {
                throw ValidationError("\(names.count) adapters for \(prompt.count) prompts: give --use NAME for each prompt")
            }
            return names
        }
        return prompt.map { _ in nil }
    }

    @OptionGroup var deviceOption: DeviceOption

    func run() throws {
        try deviceOption.requireCPUPath(command: "generate")
        let (generator, loaded) = try generation.makeGenerator()
        let tokenizer = generator.tokenizer
        let perPrompt = try adapterPerPrompt(try generation.adapters.map(\.name))
        var template: ChatTemplate?
        if chat { template = try generation.chatTemplate(loaded) }
        for (i, text) in prompt.enumerated() {
            let ids: [Int32]
            if let template {
                let messages = (system.map { [ChatMessage.system($0)] } ?? []) + [.user(text)]
                ids = encodeChat(template.render(messages), tokenizer: tokenizer)
            } else {
                ids = tokenizer.encode(text).map { Int32($0) }
            }
            var run = generator
            if let name = perPrompt[i] {
                // Each sequence with its own adapter (PEFT's adapter_names); a fresh KV cache, so no prefix computed
                // under another adapter is reused.
                loaded.model.setAdaptersDisabled(name == "__base__")
                if name != "__base__" { try loaded.model.setActiveAdapters([name]) }
                run = Generator(model: generator.model, tokenizer: tokenizer, stopTokenIDs: generator.stopTokenIDs)
            }
            if let trace {
                let steps = try GreedyTrace.run(model: run.model, tokenizer: tokenizer, prompt: ids, count: generation.maxTokens)
                print(steps.map(\.piece).joined())
                try AtomicFile.write(GreedyTrace.json(prompt: ids, steps: steps), to: URL(fileURLWithPath: trace))
                continue
            }
            // Streamed pieces go straight to the file handle, so the header and newline must too (print buffers).
            if prompt.count > 1 { FileHandle.standardOutput.write(Data("[\(perPrompt[i] ?? "prompt \(i + 1)")] ".utf8)) }
            _ = try generation.streamReply(run, prompt: ids, options: generation.options(endOfTurn: template, tokenizer: tokenizer))
            FileHandle.standardOutput.write(Data("\n".utf8))
        }
    }
}
