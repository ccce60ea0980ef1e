// The GGUF architectures LoRAKit reads (general.architecture) and what differs between them for the loader and
// the adapter format: the metadata key prefix, and whether llama.cpp's converter permuted the q/k rows.
//   llama (also Mistral and SmolLM checkpoints, which llama.cpp converts as llama): "normal" rope on adjacent
//        pairs (2i, 2i+1), so convert_hf_to_gguf permutes q/k rows (and LoRA B rows) out of HF's rotate_half order.
//   qwen2, qwen3: NeoX rope, which is rotate_half itself: rows stay in Hugging Face order. qwen3 adds a per-head
//        RMSNorm on q and k (blk.N.attn_q_norm / attn_k_norm) and may set head_dim apart from hidden/heads.

/// A GGUF model architecture LoRAKit can load.
public struct GGUFArchitecture: Equatable, Sendable {
    /// general.architecture, also the prefix of its hyper-parameter keys (`qwen2.block_count`).
    public let name: String
    /// q/k weight rows (and biases, and LoRA B rows) are in llama.cpp's interleaved rope order in the file.
    public let permutesQueryKeyRows: Bool

    public static let supported: [GGUFArchitecture] = [
        GGUFArchitecture(name: "llama", permutesQueryKeyRows: true),
        GGUFArchitecture(name: "qwen2", permutesQueryKeyRows: false),
        GGUFArchitecture(name: "qwen3", permutesQueryKeyRows: false),
    ]
    public static var supportedNames: [String] { supported.map(\.name) }

    public static func named(_ name: String) -> GGUFArchitecture? { supported.first { $0.name == name } }

    /// The GGUF architecture llama.cpp's converter produces for a Hugging Face model_type.
    public static func forHuggingFaceModelType(_ type: String) -> GGUFArchitecture? {
        switch type {
        case "llama", "mistral": return named("llama")
        default: return named(type)
        }
    }
}
