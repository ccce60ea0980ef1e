// A model (adapter merged in, or none) saved as a GGUF file llama.cpp loads: llama.cpp tensor names, ggml dims,
// q/k rows (and biases) permuted back into llama.cpp's rope order for architecture llama, 1-D tensors in F32 and
// matrices in the chosen type (F32, F16, BF16, Q8_0, Q4_1, Q4_0, with ggml's reference rounding; a matrix whose
// rows are not whole blocks falls back to F16, as llama-quantize does). Metadata: a GGUF base's own keys (tokenizer,
// chat template, hyper-parameters) with general.file_type updated; for a Hugging Face base, hyper-parameters and
// tokenizer.ggml.* written from the config and tokenizer. Written atomically; never over a file without overwrite.
import Foundation
import TensorCore
import Autograd
import Formats
import PEFT
import Tokenizers

/// What a GGUF merge wrote.
public struct MergedGGUFSummary: Sendable {
    public let tensorCount: Int
    public let bytes: Int
    public let type: GGMLType
    public let mergedModules: [String]
    /// Matrices written as F16 because their rows are not whole blocks of `type`.
    public let f16Fallbacks: [String]
    /// Whether the file carries a tokenizer (tokenizer.ggml.*): llama.cpp refuses a model without one. A Hugging
    /// Face base without tokenizer.json gives a file without it.
    public let hasTokenizer: Bool
}

public enum MergedGGUFWriter {
    /// Types `merge --to gguf --type` accepts.
    public static let types: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_1, .q4_0]

    /// llama.cpp's general.file_type (LLAMA_FTYPE_*) for a file whose matrices are `type`.
    static func fileType(_ type: GGMLType) -> UInt32 {
        switch type {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 7
        case .bf16: return 32
        default: return 1
        }
    }

    /// Loads `model`, merges `adapter` (PEFT directory or GGUF LoRA; nil: none) and writes a GGUF at `url`.
    public static func merge(model: URL, adapter: URL?, to url: URL, type: GGMLType, overwrite: Bool = false) throws -> MergedGGUFSummary {
        if !overwrite, FileManager.default.fileExists(atPath: url.path) {
            throw MergedModelError.outputNotEmpty(path: url.path)
        }
        guard url.standardizedFileURL.path != model.standardizedFileURL.path else { throw MergedModelError.outputIsSource(path: url.path) }
        let loaded = try ModelLoader.load(model, options: ModelLoadOptions(keepQuantized: false))
        var merged: [String] = []
        if let adapter {
            try ModelAdapters.load(into: loaded.model, from: adapter)
            try loaded.model.mergeAdapters(safe: true)
            merged = loaded.model.adaptedLinears.filter { !$0.mergedAdapterNames.isEmpty }.map(\.path)
        }
        return try write(loaded, to: url, type: type, overwrite: overwrite, mergedModules: merged)
    }

    /// Writes `loaded` (weights dense: load with keepQuantized false) as a GGUF file.
    public static func write(_ loaded: LoadedModel, to url: URL, type: GGMLType, overwrite: Bool = false,
                             mergedModules: [String] = []) throws -> MergedGGUFSummary {
        guard types.contains(type) else {
            throw MergedModelError.unsupportedConfig(reason: "GGUF type \(type.name) (use one of \(types.map { $0.name.lowercased() }.joined(separator: ", ")))")
        }
        let model = loaded.model, c = model.config
        guard let arch = GGUFArchitecture.named(c.architecture) else {
            throw GGUFAdapterError.unsupportedArchitecture(file: loaded.source, architecture: c.architecture)
        }
        var writer = try GGUFWriter()
        let source = URL(fileURLWithPath: loaded.source)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: source.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            let base = try GGUFFile(url: source)
            writer.copyMetadata(from: base) { $0 == "general.alignment" || $0 == "general.file_type" || $0 == "general.quantization_version" }
        } else {
            for (k, v) in hyperParameters(c, arch: arch) { writer.set(k, v) }
            if let tokenizer = loaded.tokenizer {
                for (k, v) in tokenizer.ggufMetadata { writer.set(k, v) }
                if let template = loaded.chatTemplate { writer.set("tokenizer.chat_template", .string(template)) }
            }
        }
        writer.set("general.file_type", .uint32(fileType(type)))
        writer.set("general.quantization_version", .uint32(2))

        var fallbacks: [String] = []
        func matrix(_ name: String, _ value: Tensor, ropeHeads: Int? = nil) throws {
            var t = value
            if arch.permutesQueryKeyRows, let heads = ropeHeads { t = GGUFWeights.reorderRows(t, GGUFLoRAAdapter.ggufRowOrder(rows: t.shape[0], heads: heads)) }
            let fits = t.shape[1] % type.blockSize == 0
            if !fits { fallbacks.append(name) }
            try writer.addTensor(name: name, t, as: fits ? type : .f16)
        }
        func vector(_ name: String, _ value: Tensor, ropeHeads: Int? = nil) throws {
            var t = value.reshaped([value.count])
            if arch.permutesQueryKeyRows, let heads = ropeHeads {
                t = GGUFWeights.reorderRows(t.reshaped([t.count, 1]), GGUFLoRAAdapter.ggufRowOrder(rows: t.count, heads: heads)).reshaped([t.count])
            }
            try writer.addTensor(name: name, t, as: .f32)
        }
        func linear(_ gguf: String, _ l: AdaptedLinear, ropeHeads: Int? = nil) throws {
            try matrix(gguf + ".weight", l.base.denseValue, ropeHeads: ropeHeads)
            if let b = l.bias { try vector(gguf + ".bias", b.value, ropeHeads: ropeHeads) }
        }
        try matrix("token_embd.weight", model.embedding.denseValue)
        for (i, layer) in model.layers.enumerated() {
            let p = "blk.\(i)."
            try vector(p + "attn_norm.weight", layer.inputNorm.value)
            try linear(p + "attn_q", layer.attention.qProj, ropeHeads: c.headCount)
            try linear(p + "attn_k", layer.attention.kProj, ropeHeads: c.kvHeadCount)
            try linear(p + "attn_v", layer.attention.vProj)
            try linear(p + "attn_output", layer.attention.oProj)
            for (name, norm) in queryKeyNorms(layer) { try vector(p + name + ".weight", norm.value) }
            try vector(p + "ffn_norm.weight", layer.postAttentionNorm.value)
            try linear(p + "ffn_gate", layer.mlp.gateProj)
            try linear(p + "ffn_up", layer.mlp.upProj)
            try linear(p + "ffn_down", layer.mlp.downProj)
        }
        try vector("output_norm.weight", model.norm.value)
        if let head = model.lmHead { try matrix("output.weight", head.base.denseValue) }
        try writer.write(to: url, overwrite: overwrite)
        let bytes = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
        return MergedGGUFSummary(tensorCount: writer.tensors.count, bytes: bytes, type: type, mergedModules: mergedModules, f16Fallbacks: fallbacks,
                                 hasTokenizer: writer.metadata["tokenizer.ggml.model"] != nil)
    }

    /// `<arch>.*` hyper-parameters as llama.cpp's converter writes them.
    static func hyperParameters(_ c: LlamaConfig, arch: GGUFArchitecture) -> [(String, GGUFValue)] {
        let p = arch.name
        var out: [(String, GGUFValue)] = [
            ("general.architecture", .string(p)),
            ("\(p).context_length", .uint32(UInt32(c.contextLength))),
            ("\(p).embedding_length", .uint32(UInt32(c.hiddenSize))),
            ("\(p).feed_forward_length", .uint32(UInt32(c.intermediateSize))),
            ("\(p).block_count", .uint32(UInt32(c.layerCount))),
            ("\(p).attention.head_count", .uint32(UInt32(c.headCount))),
            ("\(p).attention.head_count_kv", .uint32(UInt32(c.kvHeadCount))),
            ("\(p).rope.freq_base", .float32(c.ropeTheta)),
            ("\(p).attention.layer_norm_rms_epsilon", .float32(c.rmsNormEps)),
            ("\(p).rope.dimension_count", .uint32(UInt32(c.headDim))),
            ("\(p).vocab_size", .uint32(UInt32(c.vocabSize))),
        ]
        if c.headDim * c.headCount != c.hiddenSize || c.queryKeyNorm {
            out += [("\(p).attention.key_length", .uint32(UInt32(c.headDim))), ("\(p).attention.value_length", .uint32(UInt32(c.headDim)))]
        }
        return out
    }
}

extension MergedGGUFWriter {
    /// Qwen 3's per-head q/k norms of a layer with their llama.cpp names (none for other families).
    static func queryKeyNorms(_ layer: LlamaDecoderLayer) -> [(String, Variable)] {
        [("attn_q_norm", layer.attention.queryNorm), ("attn_k_norm", layer.attention.keyNorm)].compactMap { name, v in v.map { (name, $0) } }
    }
}
