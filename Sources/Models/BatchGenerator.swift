// Batched mixed-adapter generation (PEFT's `adapter_names` in generate()): several prompts, each naming its adapter
// ("__base__" for none), decoded together. Each prompt is prefilled on its own KV cache with its own adapter; then
// every decode step runs the next token of all live sequences as one `forwardBatch` (the base weights are read once
// per step for the whole batch, each row adds its own adapter), and each row chooses its token with its own sampler.
// A sequence that ends (stop token, stop string, token limit, full context) leaves the batch; the rest go on.
//
// A row follows exactly the rules of `Generator.generate` for its prompt alone, and its sampler is seeded from its
// own options only, so its tokens do not depend on which other sequences share the batch. DoRA adapters cannot be
// mixed in a batch (as in PEFT: their norm needs the whole ΔW of one adapter); a sequence naming one is generated
// on its own, with that adapter made active for its run, and the others are batched as usual.
import Foundation
import TensorCore
import Tokenizers
import PEFT

/// One prompt of a batch: its tokens, the adapter it runs with, and its own stopping and sampling settings.
public struct BatchSequence: Sendable {
    public var prompt: [Int32]
    /// An adapter loaded on the model, or `AdaptedLinear.baseAdapterName` ("__base__") for the base model alone.
    public var adapter: String
    public var options: GenerationOptions

    public init(prompt: [Int32], adapter: String = AdaptedLinear.baseAdapterName, options: GenerationOptions = GenerationOptions()) {
        self.prompt = prompt; self.adapter = adapter; self.options = options
    }
}

/// Generates several sequences at once, one adapter per sequence. Keeps no state between calls (fresh caches).
public final class BatchGenerator {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    /// Ids that always end generation (EOS, end of turn).
    public let stopTokenIDs: Set<Int32>

    public init(model: LlamaModel, tokenizer: BPETokenizer, stopTokenIDs: Set<Int32>) {
        self.model = model; self.tokenizer = tokenizer; self.stopTokenIDs = stopTokenIDs
    }

    /// A batch generator for a loaded model; throws if the checkpoint has no tokenizer.
    public convenience init(_ loaded: LoadedModel) throws {
        let single = try Generator(loaded)
        self.init(model: single.model, tokenizer: single.tokenizer, stopTokenIDs: single.stopTokenIDs)
    }

    /// `prompts[i]` with adapter `adapters[i]`, all with the same options (so the same seed: each row samples as it
    /// would alone). Throws `PEFTError.invalidAdapterBatch` when the counts differ.
    public func generate(prompts: [[Int32]], adapters: [String], options: GenerationOptions = GenerationOptions(),
                         onText: (Int, String) throws -> Void = { _, _ in }) throws -> [GenerationResult] {
        guard prompts.count == adapters.count else {
            throw PEFTError.invalidAdapterBatch(reason: "\(prompts.count) prompts but \(adapters.count) adapter names; give one adapter name per prompt")
        }
        return try generate(zip(prompts, adapters).map { BatchSequence(prompt: $0, adapter: $1, options: options) }, onText: onText)
    }

    /// Generates every sequence; results in the order given. `onText(i, piece)` receives sequence i's text as it
    /// becomes final (pieces of different sequences interleave). Everything is validated before any work: an unknown
    /// adapter name is `PEFTError.unknownAdapter`, a merged adapter `PEFTError.invalidAdapterBatch`, a bad prompt or
    /// option a `ModelError` — each naming the adapter or setting.
    public func generate(_ sequences: [BatchSequence], onText: (Int, String) throws -> Void = { _, _ in }) throws -> [GenerationResult] {
        guard !sequences.isEmpty else { throw PEFTError.invalidAdapterBatch(reason: "no sequences given") }
        let base = AdaptedLinear.baseAdapterName
        let known = model.adapterNames
        for s in sequences where s.adapter != base && !known.contains(s.adapter) {
            throw PEFTError.unknownAdapter(s.adapter, available: known + [base])
        }
        let maxLength = model.config.contextLength
        var states: [SequenceDecoding] = []
        for s in sequences {
            try SequenceDecoding.validate(prompt: s.prompt, options: s.options, model: model, maxLength: maxLength)
            states.append(try SequenceDecoding(prompt: s.prompt, options: s.options, stopTokenIDs: stopTokenIDs, tokenizer: tokenizer))
        }
        let dora = Set(sequences.map(\.adapter).filter { name in model.adaptedLinears.contains { $0.adapter(named: name) is DoRABranch } })
        let batched = sequences.indices.filter { !dora.contains(sequences[$0].adapter) }
        // Refuses merged adapters (and anything else a mixed batch cannot take) before any work is done.
        if !batched.isEmpty { try model.withAdapterNames(batched.map { sequences[$0].adapter }) {} }

        var timings = [(prefill: Double, decode: Double)](repeating: (0, 0), count: sequences.count)
        try withAdaptersEnabled {
            if !batched.isEmpty {
                try decode(batched, sequences, &states, &timings, onText: onText) { names, body in try model.withAdapterNames(names, body) }
            }
            for i in sequences.indices where dora.contains(sequences[i].adapter) {
                // Alone, through the active-adapter path (which supports DoRA), as `generate --adapter` would run it.
                try model.setActiveAdapters([sequences[i].adapter])
                try decode([i], sequences, &states, &timings, onText: onText) { _, body in try body() }
            }
        }
        return sequences.indices.map { i in
            states[i].result(promptTokenCount: sequences[i].prompt.count, reusedPromptTokens: 0,
                             prefillSeconds: timings[i].prefill, decodeSeconds: timings[i].decode)
        }
    }

    /// Prefills sequences `rows` one by one, then decodes them together until each has ended. `scope(names, body)`
    /// runs a forward with those per-sequence adapter names in effect.
    private func decode(_ rows: [Int], _ sequences: [BatchSequence], _ states: inout [SequenceDecoding],
                        _ timings: inout [(prefill: Double, decode: Double)], onText: (Int, String) throws -> Void,
                        scope: ([String], () throws -> Tensor) throws -> Tensor) throws {
        let vocab = model.config.vocabSize
        var caches: [Int: KVCache] = [:]
        var logits: [Int: Tensor] = [:]
        for i in rows {
            // Room for exactly what this sequence can use (capped at the context, where it ends as "context full").
            let cache = KVCache(config: model.config, maxLength: sequences[i].prompt.count + min(sequences[i].options.maxNewTokens, model.config.contextLength))
            let start = DispatchTime.now().uptimeNanoseconds
            logits[i] = try scope([sequences[i].adapter]) { try model.forward(tokens: sequences[i].prompt, cache: cache) }
            timings[i].prefill = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            caches[i] = cache
        }
        let decodeStart = DispatchTime.now().uptimeNanoseconds
        var live = rows.filter { !states[$0].finished }
        while !live.isEmpty {
            var next: [Int32] = [], still: [Int] = []
            for i in live {
                let cache = caches[i]!
                if let token = try states[i].step(logits: logits[i]!, contextFull: cache.length >= cache.maxLength, emit: { try onText(i, $0) }) {
                    next.append(token); still.append(i)
                } else {
                    timings[i].decode = Double(DispatchTime.now().uptimeNanoseconds - decodeStart) / 1e9
                    caches[i] = nil  // ended: its rows leave the batch and its memory goes
                }
            }
            live = still
            guard !live.isEmpty else { break }
            let out = try scope(live.map { sequences[$0].adapter }) { try model.forwardBatch(tokens: next, caches: live.map { caches[$0]! }) }
            out.withUnsafeBufferPointer { all in
                for (k, i) in live.enumerated() { logits[i] = Tensor(Array(all[(k * vocab)..<((k + 1) * vocab)]), shape: [vocab]) }
            }
        }
    }

    /// Runs `body` with adapters enabled and restores every layer's active adapters and disabled flag afterwards
    /// (a mixed batch adds nothing while adapters are disabled; the DoRA fallback switches the active adapter).
    private func withAdaptersEnabled(_ body: () throws -> Void) throws {
        let layers = model.adaptedLinears
        let saved = layers.map { ($0.activeAdapterNames, $0.adaptersDisabled) }
        defer {
            for (layer, state) in zip(layers, saved) { layer.activeAdapterNames = state.0; layer.setAdaptersDisabled(state.1) }
        }
        for layer in layers where layer.adaptersDisabled { layer.setAdaptersDisabled(false) }
        try body()
    }
}
