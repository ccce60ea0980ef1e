// Exact-match accuracy of a language model with greedy decoding: the demo task's before/after number.
import Foundation
import Models
import Tokenizers

extension ExactMatch {
    /// Greedy-decodes an answer for every case (chat cases through `chatTemplate`, prompt/completion cases as
    /// plain text) and compares first lines. `maxNewTokens` bounds each answer (an ISO date is ~10 tokens).
    public static func evaluate(model: LlamaModel, tokenizer: BPETokenizer, chatTemplate: ChatTemplate?,
                                stopTokenIDs: Set<Int32>, cases: [ExactMatchCase], maxNewTokens: Int = 16,
                                onResult: ((Int, ExactMatchCase, String) -> Void)? = nil) throws -> ExactMatchReport {
        let generator = Generator(model: model, tokenizer: tokenizer, stopTokenIDs: stopTokenIDs)
        var index = 0
        return try evaluate(cases) { testCase in
            let text: String
            if let messages = testCase.messages {
                guard let chatTemplate else {
                    throw TrainingError.invalidOption(name: "chat template", reason: "chat test cases need the model's chat template")
                }
                text = chatTemplate.render(messages, addGenerationPrompt: true)
            } else {
                text = testCase.prompt
            }
            let ids = tokenizer.encode(text, addSpecialTokens: testCase.messages == nil, parseSpecialTokens: true).map { Int32($0) }
            let options = GenerationOptions(maxNewTokens: maxNewTokens, stopStrings: ["\n"])
            let output = try generator.generate(prompt: ids, options: options).text
            onResult?(index, testCase, output)
            index += 1
            return output
        }
    }
}
