// Generator on SmolLM2: stop strings are never emitted (not even in part), streamed pieces add up to the text,
// a repeated prompt reuses its cached prefix, chat replies stop at <|im_end|>, and over-long prompts are errors.
import XCTest
import TensorCore
import Models
import Tokenizers

final class GeneratorTests: XCTestCase {
    func testStopStringStreamingAndPrefixReuse() throws {
        let loaded = try SmolLM2.load()
        let generator = try Generator(loaded)
        let prompt = try SmolLM2.prompts()[0].ids
        // Greedy text is "\n\nIn this example, the sentence is a clever use of language…".
        var pieces: [String] = []
        let stopped = try generator.generate(prompt: prompt, options: GenerationOptions(maxNewTokens: 20, stopStrings: ["example,", "xyz"])) {
            pieces.append($0)
        }
        XCTAssertEqual(stopped.stopReason, .stopString("example,"))
        XCTAssertEqual(stopped.text, "\n\nIn this ")
        XCTAssertEqual(pieces.joined(), stopped.text)
        XCTAssertEqual(stopped.reusedPromptTokens, 0)
        // Same prompt again: all but the last prompt token come from the cache; same greedy tokens.
        let full = try generator.generate(prompt: prompt, options: GenerationOptions(maxNewTokens: 20)) { pieces.append($0) }
        XCTAssertEqual(full.reusedPromptTokens, prompt.count - 1)
        XCTAssertEqual(full.tokens, try SmolLM2.greedyRuns()[0].newIDs)
        XCTAssertEqual(full.text, "\n\nIn this example, the sentence is a clever use of language to create a humorous and relatable")
        XCTAssertEqual(full.stopReason, .maxTokens)
    }

    func testChatReplyStopsAtEndOfTurn() throws {
        let loaded = try SmolLM2.load()
        let generator = try Generator(loaded)
        let template = try ChatTemplate(template: XCTUnwrap(loaded.chatTemplate))
        let text = template.render([.user("What is the capital of France?")])
        let ids = generator.tokenizer.encode(text, addSpecialTokens: false, parseSpecialTokens: true).map { Int32($0) }
        XCTAssertEqual(ids, try SmolLM2.prompts()[5].ids)
        let reply = try generator.generate(prompt: ids, options: GenerationOptions(maxNewTokens: 30))
        XCTAssertEqual(reply.text, "The capital of France is Paris.")
        XCTAssertEqual(reply.stopReason, .stopToken(2))
    }

    /// `generate --ignore-eos`: SmolLM2's end-of-generation set is its EOS <|im_end|> (2) and <|endoftext|> (0), as
    /// llama.cpp finds it; suppressed, the chat reply runs past its end of turn to the token limit, and the greedy trace
    /// (what the llama.cpp comparison reads) chooses exactly the generator's tokens.
    func testIgnoringEndOfGenerationRunsToTheTokenLimit() throws {
        let loaded = try SmolLM2.load()
        let generator = try Generator(loaded)
        let endOfGeneration = EndOfGeneration.tokenIDs(tokenizer: generator.tokenizer, stopTokenIDs: generator.stopTokenIDs)
        XCTAssertEqual(endOfGeneration, [0, 2])
        let ids = try SmolLM2.prompts()[5].ids
        let reply = try generator.generate(prompt: ids, options: GenerationOptions(
            maxNewTokens: 12, sampling: SamplingParameters(suppressedTokenIDs: endOfGeneration)))
        XCTAssertEqual(reply.stopReason, .maxTokens)
        XCTAssertEqual(reply.tokens.count, 12)
        XCTAssertTrue(reply.text.hasPrefix("The capital of France is Paris."), reply.text)
        XCTAssertTrue(endOfGeneration.isDisjoint(with: reply.tokens))
        let trace = try GreedyTrace.run(model: generator.model, tokenizer: generator.tokenizer, prompt: ids, count: 12,
                                        suppressing: endOfGeneration)
        XCTAssertEqual(trace.map(\.id), reply.tokens)
        XCTAssertTrue(trace.allSatisfy { !endOfGeneration.contains($0.runnerUp) && $0.margin >= 0 })
        // Unsuppressed, the trace chooses the end of turn where the plain reply stops, after the same tokens.
        let natural = try generator.generate(prompt: ids, options: GenerationOptions(maxNewTokens: 12))
        XCTAssertEqual(natural.stopReason, .stopToken(2))
        let plain = try GreedyTrace.run(model: generator.model, tokenizer: generator.tokenizer, prompt: ids, count: 12)
        XCTAssertEqual(plain.map(\.id).firstIndex(of: 2), natural.tokens.count - 1)
        XCTAssertEqual(Array(plain.map(\.id).prefix(natural.tokens.count - 1)), Array(reply.tokens.prefix(natural.tokens.count - 1)))
    }

    func testPromptLongerThanContextIsAnError() throws {
        let loaded = try SmolLM2.load()
        let generator = try Generator(loaded)
        XCTAssertThrowsError(try generator.generate(prompt: [Int32](repeating: 28, count: 8193))) {
            XCTAssertEqual($0 as? ModelError, .contextOverflow(tokens: 8193, contextLength: 8192))
        }
        XCTAssertThrowsError(try generator.generate(prompt: [60_000])) { XCTAssertTrue("\($0)".contains("60000"), "\($0)") }
        XCTAssertThrowsError(try generator.generate(prompt: [1], options: GenerationOptions(stopStrings: [""]))) {
            XCTAssertTrue("\($0)".contains("stop"), "\($0)")
        }
    }
}
