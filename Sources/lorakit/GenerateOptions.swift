import ArgumentParser
import Foundation
import Models
import PEFT
import Tokenizers
import TensorCore

/// Options shared by `generate` and `chat`: the model, an optional adapter, sampling and stopping.
struct GenerationArguments: ParsableArguments {
    @Option(help: "A .gguf file or a Hugging Face model directory (config.json, *.safetensors, tokenizer.json).")
    var model: String
    @Option(help: "A PEFT LoRA, DoRA or AdaLoRA adapter directory (adapter_config.json, adapter_model.safetensors) or a llama.cpp GGUF LoRA file to apply; NAME=PATH names it. Repeat to load several (the first is active; generate --use picks one per prompt, all prompts decoded as one batch).")
    var adapter: [String] = []
    @Option(help: "Chat layout when the model's template is missing or to override it: chatml or llama3.")
    var chatFormat: String?
    @Option(help: "Most tokens to generate per reply.") var maxTokens: Int = 256
    @Option(help: "Sampling temperature; 0 = greedy (deterministic).") var temperature: Float = 0.7
    @Option(help: "Keep the k most likely tokens (0 = off).") var topK: Int = 50
    @Option(help: "Nucleus sampling: keep the most likely tokens up to this probability (1 = off).") var topP: Float = 0.9
    @Option(help: "Penalty on tokens already in the text (1 = off; Hugging Face semantics).") var repetitionPenalty: Float = 1.0
    @Option(help: "Random seed for sampling.") var seed: UInt64 = 0
    @Option(parsing: .upToNextOption, help: "Strings that end generation (not printed).") var stop: [String] = []
    @Flag(help: "Print prompt/generation speed to standard error.") var stats = false

    func validate() throws {
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens must be ≥ 0, got \(maxTokens)") }
        do { try sampling.validate() } catch { throw ValidationError("\(error)") }
        if stop.contains("") { throw ValidationError("--stop strings must not be empty") }
    }

    var sampling: SamplingParameters {
        SamplingParameters(temperature: temperature, topK: topK, topP: topP, repetitionPenalty: repetitionPenalty, seed: seed)
    }

    /// Loads the model (and adapter) and makes a generator.
    func makeGenerator() throws -> (Generator, LoadedModel) {
        try BLAS.ensureAvailable()
        let loaded = try ModelLoader.load(URL(fileURLWithPath: model))
        let named = try adapters
        for (name, path) in named {
            // PEFT LoRA/DoRA/AdaLoRA directory (by peft_type), or a llama.cpp GGUF LoRA file
            try ModelAdapters.load(into: loaded.model, from: URL(fileURLWithPath: path), as: name)
        }
        if let first = named.first { try loaded.model.setActiveAdapters([first.name]) }
        return (try Generator(loaded), loaded)
    }

    /// --adapter values as (name, directory): "NAME=DIR", or a bare DIR named "default" (then "adapter1", …).
    var adapters: [(name: String, directory: String)] {
        get throws {
            var result: [(name: String, directory: String)] = []
            for (i, value) in adapter.enumerated() {
                var entry = (name: i == 0 ? "default" : "adapter\(i)", directory: value)
                if let eq = value.firstIndex(of: "="), !FileManager.default.fileExists(atPath: value) {
                    entry = (String(value[..<eq]), String(value[value.index(after: eq)...]))
                }
                guard !entry.name.isEmpty, !entry.directory.isEmpty else { throw ValidationError("--adapter \(value): use NAME=DIR or DIR") }
                guard entry.name != "__base__" else { throw ValidationError("--adapter \(value): __base__ means \"no adapter\"; choose another name") }
                if result.contains(where: { $0.name == entry.name }) { throw ValidationError("--adapter \(value): the name '\(entry.name)' is used twice") }
                result.append(entry)
            }
            return result
        }
    }

    /// The chat template: the model's, or the --chat-format layout.
    func chatTemplate(_ loaded: LoadedModel) throws -> ChatTemplate {
        try ChatTemplate(template: loaded.chatTemplate, formatOverride: chatFormat)
    }

    /// Options for one reply; in chat mode the template's end-of-turn token also stops generation.
    func options(endOfTurn template: ChatTemplate?, tokenizer: BPETokenizer) -> GenerationOptions {
        var stops: Set<Int32> = []
        if let template {
            let marker = template.format == .chatML ? "<|im_end|>" : "<|eot_id|>"
            if let id = tokenizer.tokenID(for: marker) { stops.insert(Int32(id)) }
        }
        return GenerationOptions(maxNewTokens: maxTokens, sampling: sampling, stopStrings: stop, stopTokenIDs: stops)
    }

    /// Streams one reply to standard output; returns the result.
    func streamReply(_ generator: Generator, prompt: [Int32], options: GenerationOptions) throws -> GenerationResult {
        let result = try generator.generate(prompt: prompt, options: options) { piece in
            FileHandle.standardOutput.write(Data(piece.utf8))
        }
        if stats { printStats(result) }
        return result
    }

    /// Prompt/generation speed of one reply on standard error (in a batch, decode time is the batch's until the row ended).
    func printStats(_ result: GenerationResult) {
        fflush(stdout)  // after the reply print() may still hold, so each stats line follows its own reply
        let decoded = max(result.tokens.count - 1, 0)
        let message = String(format: "[prompt %d tokens (%d cached) in %.3f s; %d tokens in %.3f s, %.1f tokens/s; stop: %@]\n",
                             result.promptTokenCount, result.reusedPromptTokens, result.prefillSeconds, result.tokens.count,
                             result.decodeSeconds, result.decodeSeconds > 0 ? Double(decoded) / result.decodeSeconds : 0,
                             "\(result.stopReason)")
        FileHandle.standardError.write(Data(message.utf8))
    }
}

/// Ids of a rendered chat (the text carries its own special tokens: no BOS added, control tokens parsed).
func encodeChat(_ text: String, tokenizer: BPETokenizer) -> [Int32] {
    tokenizer.encode(text, addSpecialTokens: false, parseSpecialTokens: true).map { Int32($0) }
}
