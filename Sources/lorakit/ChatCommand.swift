import ArgumentParser
import Foundation
import Models
import Tokenizers

/// `lorakit chat`: a conversation on standard input, one user message per line, until end of input.
struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Chat with a model: each input line is a user message; replies stream to standard output. "
            + "Works with piped input (reads to end of file). Lines /reset (forget the conversation) and /exit are commands.")

    @OptionGroup var generation: GenerationArguments
    @Option(help: "System message (default: the template's own, if any).") var system: String?

    @OptionGroup var deviceOption: DeviceOption

    func run() throws {
        try deviceOption.requireCPUPath(command: "chat")
        let (generator, loaded) = try generation.makeGenerator()
        let template = try generation.chatTemplate(loaded)
        let options = generation.options(endOfTurn: template, tokenizer: generator.tokenizer)
        let interactive = isatty(STDIN_FILENO) != 0
        let start: [ChatMessage] = system.map { [.system($0)] } ?? []
        var history = start
        while true {
            if interactive { FileHandle.standardError.write(Data("> ".utf8)) }
            guard let line = readLine(strippingNewline: true) else { break }
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if text == "/exit" { break }
            if text == "/reset" { history = start; continue }
            history.append(.user(line))
            let ids = encodeChat(template.render(history), tokenizer: generator.tokenizer)
            let result = try generation.streamReply(generator, prompt: ids, options: options)
            print()
            history.append(.assistant(result.text))
        }
    }
}
