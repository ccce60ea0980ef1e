// LlamaConfig → Hugging Face config.json: the inverse of `LlamaConfig(huggingFaceConfig:)`, so a model loaded
// from a GGUF file can be saved as a transformers checkpoint directory and read back with the same config.
import Foundation
import PEFT

extension LlamaConfig {
    /// config.json fields with Hugging Face names. `dtype` is the torch dtype name of the saved weights
    /// ("float32", "float16", "bfloat16"); `padTokenID` is written when given. Qwen 2's bias layout (biases on
    /// q/k/v but not o) has no Llama spelling and is written as model_type "qwen2"; everything else as "llama".
    public func huggingFaceConfigJSON(dtype: String, padTokenID: Int? = nil) -> [String: JSONValue] {
        let isQwen2 = qkvBias && !outputProjectionBias
        // Float32 constants as their shortest decimal (1e-05, not 9.999999747378752e-06).
        func number(_ value: Float) -> JSONValue { .number(Double("\(value)") ?? Double(value)) }
        var object: [String: JSONValue] = [
            "architectures": .array([.string(isQwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM")]),
            "model_type": .string(isQwen2 ? "qwen2" : "llama"),
            "hidden_act": .string("silu"),
            "hidden_size": .number(Double(hiddenSize)),
            "intermediate_size": .number(Double(intermediateSize)),
            "num_attention_heads": .number(Double(headCount)),
            "num_key_value_heads": .number(Double(kvHeadCount)),
            "num_hidden_layers": .number(Double(layerCount)),
            "head_dim": .number(Double(headDim)),
            "rms_norm_eps": number(rmsNormEps),
            "rope_theta": number(ropeTheta),
            // transformers 5 reads rope settings from rope_parameters, older versions rope_theta.
            "rope_parameters": .object(["rope_theta": number(ropeTheta), "rope_type": .string("default")]),
            "vocab_size": .number(Double(vocabSize)),
            "max_position_embeddings": .number(Double(contextLength)),
            "tie_word_embeddings": .bool(tieWordEmbeddings),
            "mlp_bias": .bool(mlpBias),
            "attention_dropout": .number(0),
            "initializer_range": .number(0.02),
            "use_cache": .bool(true),
            // transformers < 5 reads torch_dtype, 5 reads dtype.
            "torch_dtype": .string(dtype),
            "dtype": .string(dtype),
        ]
        if queryKeyNorm {  // Qwen 3: q/k norms; its biases follow attention_bias
            object["architectures"] = .array([.string("Qwen3ForCausalLM")])
            object["model_type"] = .string("qwen3")
            object["attention_bias"] = .bool(qkvBias)
            object["use_sliding_window"] = .bool(false)
        } else if isQwen2 {
            object["use_sliding_window"] = .bool(false)
        } else {
            object["attention_bias"] = .bool(qkvBias)
            object["pretraining_tp"] = .number(1)
        }
        return object.merging(huggingFaceSpecialTokenFields(padTokenID: padTokenID)) { $1 }
    }

    /// bos_token_id, eos_token_id (a number, or a list when there are several) and pad_token_id, where known:
    /// the fields config.json and generation_config.json share.
    func huggingFaceSpecialTokenFields(padTokenID: Int?) -> [String: JSONValue] {
        var object: [String: JSONValue] = [:]
        if let bosTokenID { object["bos_token_id"] = .number(Double(bosTokenID)) }
        switch eosTokenIDs.count {
        case 0: break
        case 1: object["eos_token_id"] = .number(Double(eosTokenIDs[0]))
        default: object["eos_token_id"] = .array(eosTokenIDs.map { .number(Double($0)) })
        }
        if let padTokenID { object["pad_token_id"] = .number(Double(padTokenID)) }
        return object
    }

    /// Whether `huggingFaceConfigJSON` can express this config exactly (o_proj bias without q/k/v bias cannot).
    public var hasHuggingFaceSpelling: Bool { !(outputProjectionBias && !qkvBias) }
}
