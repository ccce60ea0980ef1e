// Batched mixed-adapter generation on a random tiny Llama with three LoRA adapters (different ranks and targets)
// and "__base__": every decode step of `forwardBatch` equals the same sequence run alone with its adapter active
// (dense base to 1e-6 relative, Q4_1/Q8_0 bases bit for bit), for prompts of different lengths and rows leaving the
// batch; `BatchGenerator` gives each row exactly the tokens, text and stop reason of `Generator` alone, greedy and
// sampled, whatever else is in the batch; bad input is a typed error that changes nothing; a DoRA adapter runs alone.
import XCTest
import TensorCore
import Autograd
import Formats
import PEFT
import Models
import Tokenizers
import TestSupport

final class BatchGeneratorTests: XCTestCase {
    static let config = LlamaConfig(vocabSize: 64, hiddenSize: 64, intermediateSize: 96, layerCount: 2, headCount: 4,
                                    kvHeadCount: 2, ropeTheta: 10_000, rmsNormEps: 1e-5, contextLength: 96,
                                    tieWordEmbeddings: false)
    static let base = AdaptedLinear.baseAdapterName

    /// One printable character per id (a–z, A–Z, 0–9, "!", "#"), no merges: text is the ids spelled out ("#" also
    /// stands in for bytes outside the vocabulary).
    static let tokenizer: BPETokenizer = {
        let chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#".map(String.init)
        return try! BPETokenizer(vocabulary: chars, mergePairs: [], preTokenizer: try! PreTokenizer(ggufName: "gpt2"),
                                 specialTokenIDs: SpecialTokenIDs(unknown: 63), addBOS: false, source: "test")
    }()

    /// The random model (weights quantized to `type` when given) with LoRA adapters a (r 2, all linear), b (r 4, all
    /// linear) and c (r 3, q/v only), each with random A and B so every adapter changes the logits.
    func makeModel(quantized type: GGMLType? = nil) throws -> LlamaModel {
        var rng = RandomGenerator(seed: 5)
        var model = try LlamaModel(randomWeights: Self.config, rng: &rng)
        for (name, p) in model.namedParameters() where name.hasSuffix("norm.weight") || name.hasSuffix("layernorm.weight") {
            p.value = Tensor.add(p.value, rng.normal(p.shape, std: 0.1))
        }
        if let type { model = try Self.quantize(model, as: type) }
        for (name, rank, targets) in [("a", 2, ModuleSelector.allLinear), ("b", 4, .allLinear), ("c", 3, .names(["q_proj", "v_proj"]))] {
            _ = try model.addLoRA(LoRAConfig(r: rank, loraAlpha: Double(2 * rank), targetModules: targets), name: name, rng: &rng)
            for (_, p) in model.adapterParameters(name) { p.value = rng.normal(p.shape, std: 0.3) }
        }
        return model
    }

    /// The same model with every linear weight, the embedding and the head as ggml blocks of `type`.
    static func quantize(_ m: LlamaModel, as type: GGMLType) throws -> LlamaModel {
        func q(_ w: Tensor, _ name: String) throws -> QuantizedMatrix {
            try QuantizedMatrix(name: name, type: type, rows: w.shape[0], columns: w.shape[1], bytes: GGMLQuantizer.encode(w, as: type))
        }
        func linear(_ l: AdaptedLinear) throws -> AdaptedLinear {
            try AdaptedLinear(path: l.path, quantizedWeight: q(l.weight.value, l.path), bias: l.bias)
        }
        let layers = try m.layers.map { layer in
            let a = layer.attention, f = layer.mlp
            return LlamaDecoderLayer(inputNorm: layer.inputNorm,
                                     attention: LlamaAttention(qProj: try linear(a.qProj), kProj: try linear(a.kProj), vProj: try linear(a.vProj), oProj: try linear(a.oProj)),
                                     postAttentionNorm: layer.postAttentionNorm,
                                     mlp: LlamaMLP(gateProj: try linear(f.gateProj), upProj: try linear(f.upProj), downProj: try linear(f.downProj)))
        }
        guard case .dense(let table) = m.embedding, let head = m.lmHead else { throw XCTSkip("expected a dense untied model") }
        let quantized = try LlamaModel(config: m.config, embedding: .quantized(q(table.value, "embed")), layers: layers, norm: m.norm,
                                       lmHead: try linear(head))
        XCTAssertTrue(quantized.adaptedLinears.allSatisfy(\.isQuantized))
        return quantized
    }

    /// Makes `name` the only adapter in effect ("__base__": adapters off), as a single-adapter run would.
    func activate(_ model: LlamaModel, _ name: String) throws {
        model.setAdaptersDisabled(name == Self.base)
        if name != Self.base { try model.setActiveAdapters([name]) }
    }

    func relative(_ a: Tensor, _ b: Tensor) -> Float { maxAbsDifference(a, b) / max(b.array.map(abs).max()!, 1e-30) }

    /// Prompts of lengths 3, 9, 1 and 12 (below and above the 8-row GEMM threshold), teacher-forced for 14 steps;
    /// row 1 leaves after 4 steps and row 3 after 9, so the batch shrinks from 4 rows to 2. Each step's logits of each
    /// row equal the single-sequence KV-cache run of that adapter alone.
    func checkBatchedDecodeMatchesSingleRuns(quantized type: GGMLType?, exact: Bool) throws {
        let model = try makeModel(quantized: type)
        let names = ["a", "b", Self.base, "c"]
        var rng = RandomGenerator(seed: 9)
        let prompts = [3, 9, 1, 12].map { n in (0..<n).map { _ in Int32(rng.nextUInt64() % 64) } }
        let fed = (0..<4).map { _ in (0..<14).map { _ in Int32(rng.nextUInt64() % 64) } }
        let steps = [14, 4, 14, 9]

        // Alone: each sequence with only its adapter active, through forward(tokens:cache:).
        var alone: [[Tensor]] = []
        for (i, name) in names.enumerated() {
            try activate(model, name)
            let cache = KVCache(config: model.config)
            var row = [try model.forward(tokens: prompts[i], cache: cache)]
            for t in 0..<steps[i] { row.append(try model.forward(tokens: [fed[i][t]], cache: cache)) }
            alone.append(row)
        }
        try activate(model, "a")  // something else active: the row names alone must decide

        let caches = names.map { _ in KVCache(config: model.config) }
        var worst: Float = 0
        for (i, name) in names.enumerated() {
            let logits = try model.withAdapterNames([name]) { try model.forward(tokens: prompts[i], cache: caches[i]) }
            XCTAssertEqual(logits.array, alone[i][0].array, "prefill \(name)")
        }
        for t in 0..<14 {
            let live = names.indices.filter { t < steps[$0] }
            let out = try model.withAdapterNames(live.map { names[$0] }) {
                try model.forwardBatch(tokens: live.map { fed[$0][t] }, caches: live.map { caches[$0] })
            }
            XCTAssertEqual(out.shape, [live.count, 64])
            for (k, i) in live.enumerated() {
                let row = Tensor(Array(out.array[(k * 64)..<((k + 1) * 64)]), shape: [64])
                if exact { XCTAssertEqual(row.array, alone[i][t + 1].array, "step \(t) row \(names[i])") }
                let r = relative(row, alone[i][t + 1])
                worst = max(worst, r)
                XCTAssertLessThanOrEqual(r, 1e-6, "step \(t) row \(names[i])")
            }
        }
        XCTAssertEqual(caches.map(\.length), zip(prompts, steps).map { $0.count + $1 })
        // The adapters matter: rows of different adapters on the same inputs differ by far more than the tolerance.
        try activate(model, "b")
        let other = KVCache(config: model.config)
        _ = try model.forward(tokens: prompts[0], cache: other)
        XCTAssertGreaterThan(relative(try model.forward(tokens: [fed[0][0]], cache: other), alone[0][1]), 1e-3)
        print("batched vs single, \(type.map(\.name) ?? "dense"): worst relative difference \(worst)")
    }

    func testBatchedDecodeMatchesSingleRunsDense() throws {
        try checkBatchedDecodeMatchesSingleRuns(quantized: nil, exact: false)
    }

    func testBatchedDecodeMatchesSingleRunsQ4_1() throws {
        try checkBatchedDecodeMatchesSingleRuns(quantized: .q4_1, exact: true)
    }

    func testBatchedDecodeMatchesSingleRunsQ8_0() throws {
        try checkBatchedDecodeMatchesSingleRuns(quantized: .q8_0, exact: true)
    }

    /// Each row of a BatchGenerator run, given `options` per row, against Generator on that prompt alone.
    func assertRowsMatchAlone(_ model: LlamaModel, _ sequences: [BatchSequence], file: StaticString = #filePath, line: UInt = #line) throws -> [GenerationResult] {
        let batch = BatchGenerator(model: model, tokenizer: Self.tokenizer, stopTokenIDs: [])
        var streamed = [String](repeating: "", count: sequences.count)
        let results = try batch.generate(sequences) { streamed[$0] += $1 }
        XCTAssertEqual(results.count, sequences.count, file: file, line: line)
        for (i, s) in sequences.enumerated() {
            try activate(model, s.adapter)
            let single = try Generator(model: model, tokenizer: Self.tokenizer, stopTokenIDs: []).generate(prompt: s.prompt, options: s.options)
            XCTAssertEqual(results[i].tokens, single.tokens, "row \(i) (\(s.adapter))", file: file, line: line)
            XCTAssertEqual(results[i].text, single.text, "row \(i) (\(s.adapter))", file: file, line: line)
            XCTAssertEqual(results[i].stopReason, single.stopReason, "row \(i) (\(s.adapter))", file: file, line: line)
            XCTAssertEqual(streamed[i], results[i].text, file: file, line: line)
            XCTAssertEqual(results[i].promptTokenCount, s.prompt.count, file: file, line: line)
        }
        return results
    }

    /// Greedy, Q4_1 base: rows stop at different times — a token limit of 3, a stop token, a stop string, 20 tokens —
    /// and each row's tokens equal its adapter's run alone.
    func testGreedyRowsFinishingAtDifferentTimesEqualSingleRuns() throws {
        let model = try makeModel(quantized: .q4_1)
        let prompts: [[Int32]] = [[1, 2, 3], [10, 20, 30, 40, 50, 60, 7, 8, 9], [5], [33, 34, 35, 36, 37]]
        // Find a token that row 1 produces at step 4 alone, and a 2-character piece of row 2's text at steps 6–7.
        try activate(model, "b")
        let freeB = try Generator(model: model, tokenizer: Self.tokenizer, stopTokenIDs: []).generate(prompt: prompts[1], options: GenerationOptions(maxNewTokens: 20))
        try activate(model, Self.base)
        let freeBase = try Generator(model: model, tokenizer: Self.tokenizer, stopTokenIDs: []).generate(prompt: prompts[2], options: GenerationOptions(maxNewTokens: 20))
        let stopToken = freeB.tokens[4]
        let stopString = String(Array(freeBase.text)[6...7])
        let sequences = [
            BatchSequence(prompt: prompts[0], adapter: "a", options: GenerationOptions(maxNewTokens: 3)),
            BatchSequence(prompt: prompts[1], adapter: "b", options: GenerationOptions(maxNewTokens: 20, stopTokenIDs: [stopToken])),
            BatchSequence(prompt: prompts[2], adapter: Self.base, options: GenerationOptions(maxNewTokens: 20, stopStrings: [stopString])),
            BatchSequence(prompt: prompts[3], adapter: "c", options: GenerationOptions(maxNewTokens: 20)),
        ]
        let results = try assertRowsMatchAlone(model, sequences)
        XCTAssertEqual(results[0].tokens.count, 3)
        XCTAssertEqual(results[0].stopReason, .maxTokens)
        XCTAssertEqual(results[1].stopReason, .stopToken(stopToken))
        XCTAssertLessThanOrEqual(results[1].tokens.count, 5)
        XCTAssertEqual(results[2].stopReason, .stopString(stopString))
        XCTAssertFalse(results[2].text.contains(stopString))
        XCTAssertEqual(results[3].tokens.count, 20)
        // Different adapters on the same prompt give different greedy continuations (the rows really differ).
        let sameprompt = try BatchGenerator(model: model, tokenizer: Self.tokenizer, stopTokenIDs: [])
            .generate(prompts: [prompts[3], prompts[3], prompts[3]], adapters: ["a", "b", Self.base], options: GenerationOptions(maxNewTokens: 12))
        XCTAssertGreaterThan(Set(sameprompt.map(\.tokens)).count, 1)
    }

    /// Sampling (temperature, top-k, top-p): a row draws the same tokens alone, in a batch of four and in a batch of
    /// two in another order — its sampler depends on its own options only. Dense and Q8_0 bases.
    func testSampledRowsDoNotDependOnTheBatch() throws {
        for type in [nil, GGMLType.q8_0] {
            let model = try makeModel(quantized: type)
            let sampling = SamplingParameters(temperature: 1.3, topK: 40, topP: 0.95, repetitionPenalty: 1.1, seed: 11)
            let options = GenerationOptions(maxNewTokens: 16, sampling: sampling)
            let prompts: [[Int32]] = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11, 12, 13], [14], [15, 16]]
            let names = ["a", "b", "c", Self.base]
            let four = try assertRowsMatchAlone(model, zip(prompts, names).map { BatchSequence(prompt: $0, adapter: $1, options: options) })
            let two = try BatchGenerator(model: model, tokenizer: Self.tokenizer, stopTokenIDs: [])
                .generate(prompts: [prompts[3], prompts[1]], adapters: [Self.base, "b"], options: options)
            XCTAssertEqual(two[0].tokens, four[3].tokens)
            XCTAssertEqual(two[1].tokens, four[1].tokens)
            // Sampling is really random here: another seed changes some row.
            var other = options; other.sampling.seed = 12
            let reseeded = try BatchGenerator(model: model, tokenizer: Self.tokenizer, stopTokenIDs: [])
                .generate(prompts: prompts, adapters: names, options: other)
            XCTAssertNotEqual(reseeded.map(\.tokens), four.map(\.tokens))
        }
    }

    /// Unknown names, mismatched counts and merged adapters are typed errors; the model's adapter state is unchanged
    /// by errors and by successful batches.
    func testBadInputIsATypedErrorAndStateIsRestored() throws {
        let model = try makeModel()
        let batch = BatchGenerator(model: model, tokenizer: Self.tokenizer, stopTokenIDs: [])
        try model.setActiveAdapters(["b"])
        XCTAssertThrowsError(try batch.generate(prompts: [[1], [2]], adapters: ["a", "nope"])) { e in
            XCTAssertEqual(e as? PEFTError, .unknownAdapter("nope", available: ["a", "b", "c", Self.base]))
        }
        XCTAssertThrowsError(try batch.generate(prompts: [[1], [2], [3]], adapters: ["a", "b"])) { e in
            guard case PEFTError.invalidAdapterBatch(let reason) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(reason.contains("3 prompts but 2 adapter names"), reason)
        }
        XCTAssertThrowsError(try batch.generate([])) { e in
            guard case PEFTError.invalidAdapterBatch = e else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try batch.generate(prompts: [[1], []], adapters: ["a", "b"])) { e in
            XCTAssertEqual(e as? ModelError, .invalidArgument(name: "prompt", reason: "empty prompt"))
        }
        XCTAssertThrowsError(try batch.generate(prompts: [[1], [99]], adapters: ["a", "b"])) { e in XCTAssertTrue("\(e)".contains("99"), "\(e)") }
        XCTAssertThrowsError(try model.forwardBatch(tokens: [1, 2], caches: [KVCache(config: model.config)])) { e in
            guard case ModelError.invalidArgument(name: "caches", _) = e else { return XCTFail("\(e)") }
        }
        let shared = KVCache(config: model.config)
        XCTAssertThrowsError(try model.forwardBatch(tokens: [1, 2], caches: [shared, shared])) { e in
            guard case ModelError.invalidArgument(name: "caches", _) = e else { return XCTFail("\(e)") }
        }
        XCTAssertEqual(shared.length, 0)
        // A successful batch with adapters disabled beforehand: rows still get their adapters; state comes back.
        model.setAdaptersDisabled(true)
        let before = model.adaptedLinears.map(\.activeAdapterNames)
        let results = try batch.generate(prompts: [[1, 2], [1, 2]], adapters: ["a", Self.base], options: GenerationOptions(maxNewTokens: 6))
        XCTAssertTrue(model.adaptedLinears.allSatisfy(\.adaptersDisabled))
        XCTAssertEqual(model.adaptedLinears.map(\.activeAdapterNames), before)
        XCTAssertTrue(before.contains(["b"]))
        model.setAdaptersDisabled(false)
        try activate(model, "a")
        let aloneA = try Generator(model: model, tokenizer: Self.tokenizer, stopTokenIDs: []).generate(prompt: [1, 2], options: GenerationOptions(maxNewTokens: 6))
        XCTAssertEqual(results[0].tokens, aloneA.tokens)
        try model.setActiveAdapters(["c"]); try model.mergeAdapters()
        XCTAssertThrowsError(try batch.generate(prompts: [[1], [2]], adapters: ["a", "b"])) { e in
            guard case PEFTError.invalidAdapterBatch(let reason) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(reason.contains("'c' is merged"), reason)
        }
    }

    /// A DoRA adapter cannot share a mixed batch (PEFT refuses it); the batch generator runs its sequence alone
    /// with that adapter active and batches the rest, so every row still equals its run alone.
    func testDoRASequenceRunsAloneBesideTheBatch() throws {
        let model = try makeModel()
        var rng = RandomGenerator(seed: 3)
        var config = LoRAConfig(r: 2, loraAlpha: 4, targetModules: .names(["q_proj", "v_proj", "down_proj"]))
        config.useDoRA = true
        _ = try model.addLoRA(config, name: "d", rng: &rng)
        for (_, p) in model.adapterParameters("d") { p.value = Tensor.add(p.value, rng.normal(p.shape, std: 0.3)) }
        XCTAssertThrowsError(try model.withAdapterNames(["d", "a"]) {}) { e in
            guard case PEFTError.doraUnsupported(adapter: "d", module: _, reason: _) = e else { return XCTFail("\(e)") }
        }
        try model.setActiveAdapters(["a"])
        let options = GenerationOptions(maxNewTokens: 8)
        let results = try assertRowsMatchAlone(model, [BatchSequence(prompt: [3, 4], adapter: "d", options: options),
                                                       BatchSequence(prompt: [3, 4], adapter: "a", options: options),
                                                       BatchSequence(prompt: [5, 6, 7], adapter: Self.base, options: options)])
        XCTAssertNotEqual(results[0].tokens, results[1].tokens)
    }
}
