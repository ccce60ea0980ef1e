// The tokenizer as llama.cpp's tokenizer.ggml.* metadata (the inverse of BPETokenizer(gguf:)), for writing GGUF
// models from a Hugging Face checkpoint.
import Formats

extension BPETokenizer {
    /// tokenizer.ggml.model "gpt2" (byte-level BPE), tokens, token types, merges in rank order, pre-tokenizer name,
    /// special ids and the add_bos / add_eos flags.
    public var ggufMetadata: [(String, GGUFValue)] {
        let ranked = mergeTable.map { key, value in (rank: value >> 32, left: Int(key >> 32), right: Int(key & 0xFFFF_FFFF)) }
            .sorted { $0.rank < $1.rank }
        let pre = PreTokenizer.namesByRule.first { $0.0 == preTokenizer }?.1.first ?? "default"
        var out: [(String, GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string(pre)),
            ("tokenizer.ggml.tokens", .array(elementType: .string, values: tokens.map { .string($0) })),
            ("tokenizer.ggml.token_type", .array(elementType: .int32, values: tokenTypes.map { .int32($0.rawValue) })),
            ("tokenizer.ggml.merges", .array(elementType: .string, values: ranked.map { .string(tokens[$0.left] + " " + tokens[$0.right]) })),
        ]
        let ids: [(String, Int?)] = [("bos", specialTokenIDs.bos), ("eos", specialTokenIDs.eos),
                                      ("unknown", specialTokenIDs.unknown), ("padding", specialTokenIDs.padding)]
        for (name, id) in ids { if let id { out.append(("tokenizer.ggml.\(name)_token_id", .uint32(UInt32(id)))) } }
        out.append(("tokenizer.ggml.add_bos_token", .bool(addsBOS)))
        out.append(("tokenizer.ggml.add_eos_token", .bool(addsEOS)))
        return out
    }
}
