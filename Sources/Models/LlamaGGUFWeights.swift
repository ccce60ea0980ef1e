// Dense Float32 weight matrices of a Llama-family GGUF file, addressed by Hugging Face module path and laid out as
// Hugging Face lays them out: quantized blocks dequantized, attn_q/attn_k rows put back from llama.cpp's
// interleaved-rope order. This is what an adapter's ΔW is added to, so analyses (amplification) can compare W
// with ΔW from the GGUF alone, without building the whole model. The name map and the row permutation are the
// model loader's (GGUFWeights), not a second copy.
import Foundation
import TensorCore
import Formats

/// Base weights of a GGUF Llama model, one matrix at a time, in Hugging Face names and layout.
public final class LlamaGGUFWeights: @unchecked Sendable {
    /// The GGUF file read.
    public let file: GGUFFile
    /// The model's hyper-parameters (head counts decide the q/k row permutation).
    public let config: LlamaConfig
    private let reader: GGUFWeights

    /// Opens `url`; throws `ModelError` when it is not a Llama-family GGUF file.
    public convenience init(url: URL) throws { try self.init(file: GGUFFile(url: url)) }

    /// Reads the Llama hyper-parameters of `file`; throws `ModelError` for another architecture or missing keys.
    public init(file: GGUFFile) throws {
        self.file = file
        config = try LlamaConfig(gguf: file)
        reader = GGUFWeights(file: file, keepQuantized: false,
                             permutesQueryKeyRows: GGUFArchitecture.named(config.architecture)?.permutesQueryKeyRows ?? true)
    }

    /// llama.cpp's tensor name for a Hugging Face weight name (`model.layers.3.self_attn.q_proj.weight` →
    /// `blk.3.attn_q.weight`); nil for names GGUF has no counterpart for. A tied `lm_head` maps to `token_embd`.
    public func ggufName(forHuggingFaceName name: String) -> String? {
        GGUFWeights.ggufName(storedName(name))
    }

    /// The weight [out, in] of linear `module` (`model.layers.0.self_attn.q_proj`, `lm_head`, …) or the embedding
    /// [vocab, hidden] for `model.embed_tokens`, dequantized to Float32 with q/k rows in Hugging Face order;
    /// nil when the file has no such tensor. Throws for a tensor that is not a matrix or has an unknown type.
    public func weight(ofModule module: String) throws -> Tensor? {
        let name = storedName(module + ".weight")
        guard reader.contains(name) else { return nil }
        return try reader.matrix(name, ropeHeads: ropeHeads(ofModule: module)).denseValue
    }

    /// The Hugging Face name whose tensor the file stores: a tied model keeps lm_head in the embedding.
    private func storedName(_ name: String) -> String {
        name == "lm_head.weight" && config.tieWordEmbeddings ? "model.embed_tokens.weight" : name
    }

    /// Heads whose rows llama.cpp permuted for its rope: query heads for q_proj, key/value heads for k_proj (as
    /// `LlamaModel(config:weights:)` passes them), nil for every other matrix.
    func ropeHeads(ofModule module: String) -> Int? {
        if module.hasSuffix("self_attn.q_proj") { return config.headCount }
        if module.hasSuffix("self_attn.k_proj") { return config.kvHeadCount }
        return nil
    }
}
