// The tokens that end a reply, as llama.cpp counts them ("end of generation"): the model's own EOS ids plus
// vocabulary entries whose text is a well-known end-of-turn or end-of-text marker. llama.cpp's --ignore-eos never
// chooses any of them, so a comparison with it must suppress the same set.
import Tokenizers

public enum EndOfGeneration {
    /// Marker texts that end generation in the chat formats LoRAKit reads (ChatML, Llama 3, Phi, Gemma, GPT-2 style).
    public static let markers = ["<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>",
                                 "<|end_of_text|>", "<EOT>"]

    /// `stopTokenIDs` (the model's EOS ids) and every vocabulary entry spelled as one of `markers`.
    public static func tokenIDs(tokenizer: BPETokenizer, stopTokenIDs: Set<Int32>) -> Set<Int32> {
        stopTokenIDs.union(markers.compactMap { tokenizer.tokenID(for: $0).map(Int32.init) })
    }
}
