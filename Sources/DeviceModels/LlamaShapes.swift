// Named Llama shapes for random-init runs (benchmarks and parity checks on machines without the checkpoint).
import Models
import TensorCore

public enum LlamaShapes {
    public static let named: [String: LlamaConfig] = [
        // SmolLM2-135M: 30 layers, hidden 576, 9 query / 3 kv heads of 64, tied embeddings, rope base 100 000.
        "smollm2-135m": LlamaConfig(vocabSize: 49_152, hiddenSize: 576, intermediateSize: 1536, layerCount: 30, headCount: 9, kvHeadCount: 3,
                                    ropeTheta: 100_000, rmsNormEps: 1e-5, contextLength: 8192, tieWordEmbeddings: true),
        // TinyLlama-1.1B: 22 layers, hidden 2048, 32 query / 4 kv heads of 64, untied head.
        "tinyllama-1.1b": LlamaConfig(vocabSize: 32_000, hiddenSize: 2048, intermediateSize: 5632, layerCount: 22, headCount: 32, kvHeadCount: 4,
                                      ropeTheta: 10_000, rmsNormEps: 1e-5, contextLength: 2048),
    ]

    /// A random-init model of shape `name`, or nil for an unknown name.
    public static func randomModel(_ name: String, seed: UInt64 = 0) throws -> LlamaModel? {
        guard let config = named[name] else { return nil }
        var rng = RandomGenerator(seed: seed)
        return try LlamaModel(randomWeights: config, rng: &rng)
    }
}
