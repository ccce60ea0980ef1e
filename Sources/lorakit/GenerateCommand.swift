import ArgumentParser
import Foundation
import Models
import Tokenizers
import Formats

/// `lorakit generate`: one completion (or one chat reply with --chat), streamed to standard output; several
/// prompts are generated together as one batch, each with its own adapter, and printed in prompt order.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from a prompt, streaming it to standard output (several prompts: one batch, one adapter each).")

    @OptionGroup var generation: GenerationArguments
    @Option(help: "The prompt text; repeat for several prompts (each gets its own reply).") var prompt: [String]
    @Option(help: "Adapter for each prompt, in order (a name from --adapter NAME=DIR, or __base__ for none); with as many --adapter as --prompt and no --use, prompt i uses adapter i.") var use: [String] = []
    @Flag(help: "Wrap the prompt as a user message in the model's chat template.") var chat = false
    @Option(help: "System message for --chat (default: the template's own, if any).") var system: String?
    @Option(help: "With --temperature 0: write each greedy token's id, logit and runner-up margin to this JSON file (exactly --max-tokens tokens, no early stop).")
    var trace: String?
    @Flag(name: .customLong("ignore-eos"), help: "Never choose an end-of-generation token (the model's EOS and end-of-turn markers), as llama.cpp's --ignore-eos: every reply runs to --max-tokens.")
    var ignoreEOS = false

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
        let ids = prompt.map { text -> [Int32] in
            guard let template else { return tokenizer.encode(text).map { Int32($0) } }
            let messages = (system.map { [ChatMessage.system($0)] } ?? []) + [.user(text)]
            return encodeChat(template.render(messages), tokenizer: tokenizer)
        }
        var options = generation.options(endOfTurn: template, tokenizer: tokenizer)
        if ignoreEOS {
            options.sampling.suppressedTokenIDs = EndOfGeneration.tokenIDs(tokenizer: tokenizer, stopTokenIDs: generator.stopTokenIDs.union(options.stopTokenIDs))
        }
        guard prompt.count == 1 else {
            // Several prompts: one batch, each row with its own adapter (PEFT's adapter_names) and its own sampler
            // seeded with --seed, so every reply equals a run of that prompt alone; printed in prompt order.
            let active = try generation.adapters.first.map(\.name) ?? "__base__"
            let batch = BatchGenerator(model: generator.model, tokenizer: tokenizer, stopTokenIDs: generator.stopTokenIDs)
            let results = try batch.generate(zip(ids, perPrompt).map { BatchSequence(prompt: $0, adapter: $1 ?? active, options: options) })
            for (i, result) in results.enumerated() {
                print("[\(perPrompt[i] ?? "prompt \(i + 1)")] " + result.text)
                if generation.stats { generation.printStats(result) }
            }
            return
        }
        if let name = perPrompt[0] {
            loaded.model.setAdaptersDisabled(name == "__base__")
            if name != "__base__" { try loaded.model.setActiveAdapters([name]) }
        }
        if let trace {
            let steps = try GreedyTrace.run(model: generator.model, tokenizer: tokenizer, prompt: ids[0], count: generation.maxTokens,
                                             suppressing: options.sampling.suppressedTokenIDs)
            print(steps.map(\.piece).joined())
            try AtomicFile.write(GreedyTrace.json(prompt: ids[0], steps: steps), to: URL(fileURLWithPath: trace))
            return
        }
        // Streamed pieces go straight to the file handle, so the newline must too (print buffers).
        _ = try generation.streamReply(generator, prompt: ids[0], options: options)
        FileHandle.standardOutput.write(Data("\n".utf8))
    }
}
