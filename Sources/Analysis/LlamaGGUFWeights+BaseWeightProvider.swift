// A GGUF Llama model as the base of an amplification analysis: W for each adapted module in Hugging Face layout
// (dequantized, q/k rows un-permuted by the model loader's code), so ΔW = s·B·A of a PEFT adapter lines up with it.
import Foundation
import TensorCore
import Models

extension LlamaGGUFWeights: BaseWeightProvider {
    /// The dequantized weight [out, in] of `module` in Hugging Face layout; nil when the file has no such tensor.
    public func baseWeight(forModule module: String) throws -> Tensor? {
        guard let w = try weight(ofModule: module) else { return nil }
        if let bad = firstNonFiniteIndex(w) {
            throw AnalysisError.nonFinite(module: module, tensor: "base weight '\(baseWeightName(forModule: module))' in \(file.path)", index: bad)
        }
        return w
    }

    /// The GGUF tensor read for `module`, with its Hugging Face name: `blk.0.attn_q.weight (model.layers.0.self_attn.q_proj.weight)`.
    public func baseWeightName(forModule module: String) -> String {
        let hf = module + ".weight"
        return ggufName(forHuggingFaceName: hf).map { "\($0) (\(hf))" } ?? hf
    }
}
