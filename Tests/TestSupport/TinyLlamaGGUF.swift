// A writer of small GGUF files (v3, F32 tensors) for tests, and the pieces of a Llama GGUF as llama.cpp's converter
// lays it out: blk.N.* tensor names, q/k rows permuted into the interleaved rope order, and a byte-level BPE
// tokenizer (tokenizer.ggml.*) with control tokens, merges and a ChatML template. Together with the tiny Hugging
// Face fixture (peft/base_llama) it gives a GGUF whose logits are known (io.safetensors base_out).
import Foundation
import TensorCore

/// GGUF metadata values of the kinds these tests need.
public enum GGUFTestValue {
    case u32(UInt32), i32(Int32), f32(Float), bool(Bool), string(String), strings([String]), i32s([Int32])
}

public enum GGUFTestWriter {
    /// Writes a GGUF v3 file with `metadata` and F32 `tensors` ([rows, cols] row-major; stored with GGUF's
    /// reversed dimension order), tensor data aligned to 32 bytes.
    public static func write(metadata: [(String, GGUFTestValue)], tensors: [(String, Tensor)], to url: URL) throws {
        var bytes: [UInt8] = Array("GGUF".utf8)
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }
        u32(3); u64(UInt64(tensors.count)); u64(UInt64(metadata.count))
        for (key, value) in metadata {
            string(key)
            switch value {
            case .u32(let v): u32(4); u32(v)
            case .i32(let v): u32(5); u32(UInt32(bitPattern: v))
            case .f32(let v): u32(6); u32(v.bitPattern)
            case .bool(let v): u32(7); bytes.append(v ? 1 : 0)
            case .string(let s): u32(8); string(s)
            case .strings(let list): u32(9); u32(8); u64(UInt64(list.count)); list.forEach(string)
            case .i32s(let list): u32(9); u32(5); u64(UInt64(list.count)); list.forEach { u32(UInt32(bitPattern: $0)) }
            }
        }
        var offset = 0
        for (name, tensor) in tensors {
            string(name)
            u32(UInt32(tensor.shape.count))
            for d in tensor.shape.reversed() { u64(UInt64(d)) }
            u32(0)  // GGML_TYPE_F32
            u64(UInt64(offset))
            offset += (tensor.count * 4 + 31) / 32 * 32
        }
        while bytes.count % 32 != 0 { bytes.append(0) }
        for (_, tensor) in tensors {
            tensor.withUnsafeBufferPointer { bytes += UnsafeRawBufferPointer($0) }
            while bytes.count % 32 != 0 { bytes.append(0) }
        }
        try Data(bytes).write(to: url)
    }
}

public enum TinyLlamaGGUF {
    /// Hugging Face tensor names → llama.cpp names, with attn_q/attn_k rows permuted as convert_hf_to_gguf does
    /// (HF row h·D + j·D/2 + i goes to GGUF row h·D + 2i + j).
    public static func ggufTensors(_ hf: [String: Tensor], heads: Int, kvHeads: Int) -> [(String, Tensor)] {
        let names = ["self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                     "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                     "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"]
        var out: [(String, Tensor)] = []
        for (name, tensor) in hf.sorted(by: { $0.key < $1.key }) {
            switch name {
            case "model.embed_tokens.weight": out.append(("token_embd.weight", tensor)); continue
            case "model.norm.weight": out.append(("output_norm.weight", tensor)); continue
            case "lm_head.weight": out.append(("output.weight", tensor)); continue
            default: break
            }
            let parts = name.split(separator: ".").map(String.init)  // model.layers.N.<module...>.weight
            precondition(parts.count >= 5 && parts[1] == "layers", "unexpected tensor \(name)")
            let module = parts[3..<(parts.count - 1)].joined(separator: ".")
            guard let gguf = names[module] else { preconditionFailure("unexpected tensor \(name)") }
            var t = tensor
            if gguf == "attn_q" || gguf == "attn_k" { t = interleaveRopeRows(t, heads: gguf == "attn_q" ? heads : kvHeads) }
            out.append(("blk.\(parts[2]).\(gguf).\(parts.last!)", t))
        }
        return out
    }

    static func interleaveRopeRows(_ t: Tensor, heads: Int) -> Tensor {
        let rows = t.shape[0], cols = t.shape[1], d = rows / heads, half = d / 2
        let values = t.array
        var out = [Float](repeating: 0, count: values.count)
        for h in 0..<heads { for j in 0..<2 { for i in 0..<half {
            let hfRow = h * d + j * half + i, ggufRow = h * d + 2 * i + j
            for c in 0..<cols { out[ggufRow * cols + c] = values[hfRow * cols + c] }
        } } }
        return Tensor(out, shape: t.shape)
    }

    /// Llama hyper-parameters of the base_llama fixture (hidden 64, 2 layers, 4 heads, 2 kv heads, vocab 256).
    public static let baseLlamaMetadata: [(String, GGUFTestValue)] = [
        ("general.architecture", .string("llama")), ("general.name", .string("tiny llama")),
        ("llama.embedding_length", .u32(64)), ("llama.feed_forward_length", .u32(128)), ("llama.block_count", .u32(2)),
        ("llama.attention.head_count", .u32(4)), ("llama.attention.head_count_kv", .u32(2)),
        ("llama.rope.dimension_count", .u32(16)), ("llama.rope.freq_base", .f32(10_000)),
        ("llama.attention.layer_norm_rms_epsilon", .f32(1e-5)), ("llama.context_length", .u32(128)),
        ("llama.vocab_size", .u32(256)),
    ]

    /// Byte-level BPE vocabulary: three control tokens, the byte symbols of newline and printable ASCII, tokens
    /// made by `merges`, and unused slots up to base_llama's 256 rows.
    public static let vocabulary: (tokens: [String], types: [Int32], merges: [String]) = {
        var tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        var types: [Int32] = [3, 3, 3]
        func symbol(_ byte: UInt8) -> String {
            // GPT-2's byte alphabet: printable bytes stand for themselves, space → Ġ (U+0120), newline → Ċ (U+010A).
            switch byte {
            case 0x20: return "\u{0120}"
            case 0x0A: return "\u{010A}"
            default: return String(UnicodeScalar(byte))
            }
        }
        for byte in [UInt8(0x0A)] + Array(UInt8(0x20)...UInt8(0x7E)) { tokens.append(symbol(byte)); types.append(1) }
        let pairs = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("o", "n"), ("Ġ", "s"),
                     ("r", "e"), ("a", "t"), ("e", "n"), ("Ġ", "o"), ("Ġ", "w"), ("o", "r"), ("Ġs", "t"), ("a", "n"),
                     ("in", "g"), ("Ġa", "n"), ("Ġan", "d"), ("Ġw", "or"), ("Ġwor", "l"), ("Ġworl", "d"), ("l", "l"),
                     ("e", "ll"), ("H", "ell"), ("Hell", "o"), ("u", "s"), ("a", "s"), ("Ġ", "i"), ("Ġi", "s")]
        for (a, b) in pairs where !tokens.contains(a + b) { tokens.append(a + b); types.append(1) }
        // Reserved slots up to the embedding's 256 rows, so every id a (random) model can emit decodes.
        while tokens.count < 256 { tokens.append("<unused\(tokens.count)>"); types.append(5) }
        return (tokens, types, pairs.map { "\($0.0) \($0.1)" })
    }()

    /// ChatML, as SmolLM2 ships it (without the default system prompt).
    public static let chatTemplate = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

    /// tokenizer.ggml.* metadata for `vocabulary`: SmolLM's pre-tokenizer, BOS 1, EOS 2, unknown 0, padding 2.
    public static var tokenizerMetadata: [(String, GGUFTestValue)] {
        [("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("smollm")),
         ("tokenizer.ggml.tokens", .strings(vocabulary.tokens)), ("tokenizer.ggml.token_type", .i32s(vocabulary.types)),
         ("tokenizer.ggml.merges", .strings(vocabulary.merges)),
         ("tokenizer.ggml.bos_token_id", .u32(1)), ("tokenizer.ggml.eos_token_id", .u32(2)),
         ("tokenizer.ggml.unknown_token_id", .u32(0)), ("tokenizer.ggml.padding_token_id", .u32(2)),
         ("tokenizer.ggml.add_bos_token", .bool(false)), ("tokenizer.chat_template", .string(chatTemplate))]
    }

    /// Writes base_llama's weights (`hf`, Hugging Face names) as a Llama GGUF with the test tokenizer.
    public static func write(baseLlama hf: [String: Tensor], to url: URL) throws {
        try GGUFTestWriter.write(metadata: baseLlamaMetadata + tokenizerMetadata,
                                 tensors: ggufTensors(hf, heads: 4, kvHeads: 2), to: url)
    }
}
