import ArgumentParser
import Foundation
import Models
import Tokenizers

/// `lorakit generate`: one completion (or one chat reply with --chat), streamed to standard output.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from a prompt, streaming it to standard output.")

    @OptionGroup var generation: GenerationArguments
    @Option(help: "The prompt text.") var prompt: String
    @Flag(help: "Wrap the prompt as a user message in the model's chat template.") var chat = false
    @Option(help: "System message for --chat (default: the template's own, if any).") var system: String?

    func validate() throws {
        if system != nil && !chat { throw ValidationError("--system needs --chat") }
    }

    @OptionGroup var deviceOption: DeviceOption

    func run() throws {
        try deviceOption.requireCPUPath(command: "generate")
        let (generator, loaded) = try generation.makeGenerator()
        let tokenizer = generator.tokenizer
        var template: ChatTemplate?
        let ids: [Int32]
        if chat {
            let t = try generation.chatTemplate(loaded)
            template = t
            let messages = (system.map { [ChatMessage.system($0)] } ?? []) + [.user(prompt)]
            ids = encodeChat(t.render(messages), tokenizer: tokenizer)
        } else {
            ids = tokenizer.encode(prompt).map { Int32($0) }
        }
        _ = try generation.streamReply(generator, prompt: ids, options: generation.options(endOfTurn: template, tokenizer: tokenizer))
        print()
    }
}
