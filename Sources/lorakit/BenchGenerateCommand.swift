import ArgumentParser
import Foundation
import Models
import PEFT
import TensorCore
import Training

/// `lorakit bench generate`: prefill and decode speed of a model, and its memory.
struct BenchGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Prefill tokens/s (one prompt), decode tokens/s (batch 1; with --batch N also N sequences decoded together vs one after another), peak RSS and weight bytes, as JSON.")

    @Option(help: "A .gguf file or a Hugging Face model directory.") var model: String
    @Option(help: "Prompt length for the prefill measurement.") var promptTokens: Int = 512
    @Option(help: "Tokens generated for the decode measurement.") var newTokens: Int = 256
    @Option(help: "Timed repetitions of the prefill (the best is reported).") var repeats: Int = 3
    @Option(help: "Also time N sequences decoded together (one forward per step, each row with its own adapter) against the same N decoded one after another.")
    var batch: Int?
    @Option(help: "With --batch: give each of the N rows its own random LoRA adapter of this rank on all linear layers (0 = base model only).")
    var batchLoraRank: Int = 8
    @Option(help: "llama.cpp's llama-bench executable: also measure it on the same GGUF with the same thread count and report ratios.")
    var llamaBench: String?

    func validate() throws {
        guard promptTokens > 0, newTokens > 0, repeats > 0 else {
            throw ValidationError("--prompt-tokens, --new-tokens and --repeats must be positive")
        }
        if let batch, batch < 1 { throw ValidationError("--batch must be ≥ 1, got \(batch)") }
        if batchLoraRank < 0 { throw ValidationError("--batch-lora-rank must be ≥ 0, got \(batchLoraRank)") }
    }

    @OptionGroup var deviceOption: DeviceOption

    func run() throws {
        try deviceOption.requireCPUPath(command: "bench generate")
        try BLAS.ensureAvailable()
        let loadStart = Date()
        let loaded = try ModelLoader.load(URL(fileURLWithPath: model))
        let loadSeconds = Date().timeIntervalSince(loadStart)
        let m = loaded.model
        guard promptTokens + newTokens <= m.config.contextLength else {
            throw ValidationError("--prompt-tokens + --new-tokens = \(promptTokens + newTokens) exceeds the context length \(m.config.contextLength)")
        }
        // A fixed pseudo-random prompt of ordinary tokens (ids past the first 256 specials/bytes where possible).
        var rng = RandomGenerator(seed: 7)
        let low = min(256, m.config.vocabSize - 1)
        let prompt = (0..<promptTokens).map { _ in Int32(low + Int(rng.nextUInt64() % UInt64(m.config.vocabSize - low))) }

        var bestPrefill = Double.infinity
        var cache = KVCache(config: m.config)
        var logits = Tensor(zeros: [1])
        for _ in 0..<repeats {
            cache = KVCache(config: m.config)
            let start = DispatchTime.now().uptimeNanoseconds
            logits = try m.forward(tokens: prompt, cache: cache)
            bestPrefill = min(bestPrefill, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        // Decode as llama-bench's tg: greedy steps from a one-token context; then the same after the prompt.
        let fromEmpty = try decodeSeconds(m, cache: KVCache(config: m.config), first: prompt[0])
        let afterPrompt = try decodeSeconds(m, cache: cache, first: nil, logits: logits, history: prompt)
        let residentBytes = ProcessMemory.residentBytes(), peakResidentBytes = ProcessMemory.peakResidentBytes()
        let blas = BLAS.describe()
        let json: [String: Any] = [
            "benchmark": "generate", "model": loaded.source, "threads": blas.threads, "blas_kernel": blas.kernel,
            "load_seconds": (loadSeconds * 1000).rounded() / 1000,
            "prompt_tokens": promptTokens, "prefill_seconds": (bestPrefill * 1000).rounded() / 1000,
            "prefill_tokens_per_second": (Double(promptTokens) / bestPrefill * 10).rounded() / 10,
            "new_tokens": newTokens, "decode_seconds": (fromEmpty * 1000).rounded() / 1000,
            "decode_tokens_per_second": (Double(newTokens) / fromEmpty * 10).rounded() / 10,
            "decode_after_prompt_seconds": (afterPrompt * 1000).rounded() / 1000,
            "decode_after_prompt_tokens_per_second": (Double(newTokens) / afterPrompt * 10).rounded() / 10,
            "model_weight_bytes": m.weightBytes, "kv_cache_bytes": cache.byteCount,
            "rss_bytes": residentBytes, "peak_rss_bytes": peakResidentBytes,
        ]
        var report = json
        if let batch { report["batch"] = try batchReport(m, rows: batch, prompt: prompt) }
        if let llamaBench {
            let theirs = try LlamaBenchRunner(executable: llamaBench).run(model: model, promptTokens: promptTokens, newTokens: newTokens,
                                                                           threads: blas.threads, repeats: repeats)
            let prefill = Double(promptTokens) / bestPrefill, decode = Double(newTokens) / fromEmpty
            report["llama_bench"] = ["prefill_tokens_per_second": (theirs.prefillTokensPerSecond * 10).rounded() / 10,
                                     "decode_tokens_per_second": (theirs.decodeTokensPerSecond * 10).rounded() / 10,
                                     "threads": blas.threads, "build": theirs.build, "command": theirs.commandLine] as [String: Any]
            // > 1: LoRAKit is faster. llama-bench reports the mean of its repetitions, LoRAKit the best prefill.
            report["prefill_ratio_lorakit_over_llama_cpp"] = (prefill / theirs.prefillTokensPerSecond * 1000).rounded() / 1000
            report["decode_ratio_lorakit_over_llama_cpp"] = (decode / theirs.decodeTokensPerSecond * 1000).rounded() / 1000
        }
        let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    /// --batch N: `newTokens` greedy steps for N sequences (row i starts from prompt token i, with adapter i when
    /// --batch-lora-rank > 0), all rows in one `forwardBatch` per step, against the same N sequences decoded one
    /// after another with their adapter active. Also checks that both give the same tokens.
    func batchReport(_ m: LlamaModel, rows: Int, prompt: [Int32]) throws -> [String: Any] {
        var names = [String](repeating: AdaptedLinear.baseAdapterName, count: rows)
        if batchLoraRank > 0 {
            var rng = RandomGenerator(seed: 3)
            for i in 0..<rows {
                names[i] = "bench\(i)"
                _ = try m.addLoRA(LoRAConfig(r: batchLoraRank, loraAlpha: Double(2 * batchLoraRank), targetModules: .allLinear), name: names[i], rng: &rng)
                // B starts at zero; random B makes each adapter change the output, as a trained one would.
                for (name, p) in m.adapterParameters(names[i]) where name.contains("lora_B") {
                    p.value = rng.normal(p.shape, std: 0.01)
                }
            }
        }
        defer { if batchLoraRank > 0 { for name in names { try? m.deleteAdapter(name) } } }
        let first = (0..<rows).map { prompt[$0 % prompt.count] }
        var sampler = try Sampler(SamplingParameters())
        // Sequential: each sequence alone (its adapter active), one token per forward.
        var sequentialTokens: [[Int32]] = []
        var sequentialSeconds = 0.0
        for i in 0..<rows {
            m.setAdaptersDisabled(names[i] == AdaptedLinear.baseAdapterName)
            if names[i] != AdaptedLinear.baseAdapterName { try m.setActiveAdapters([names[i]]) }
            let cache = KVCache(config: m.config)
            var logits = try m.forward(tokens: [first[i]], cache: cache)
            var tokens: [Int32] = []
            let begin = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<newTokens {
                let next = sampler.sample(logits: logits, history: [])
                tokens.append(next)
                logits = try m.forward(tokens: [next], cache: cache)
            }
            sequentialSeconds += Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9
            sequentialTokens.append(tokens)
        }
        m.setAdaptersDisabled(false)
        // Batched: all rows in one forward per step, row i with adapter i.
        let caches = (0..<rows).map { _ in KVCache(config: m.config) }
        var last = try (0..<rows).map { i in try m.withAdapterNames([names[i]]) { try m.forward(tokens: [first[i]], cache: caches[i]) } }
        var batchTokens = [[Int32]](repeating: [], count: rows)
        let begin = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<newTokens {
            let next = (0..<rows).map { sampler.sample(logits: last[$0], history: []) }
            for i in 0..<rows { batchTokens[i].append(next[i]) }
            let out = try m.withAdapterNames(names) { try m.forwardBatch(tokens: next, caches: caches) }
            let v = m.config.vocabSize
            last = (0..<rows).map { Tensor(Array(out.array[($0 * v)..<(($0 + 1) * v)]), shape: [v]) }
        }
        let batchSeconds = Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9
        let total = Double(rows * newTokens)
        return ["rows": rows, "lora_rank_per_row": batchLoraRank, "tokens_per_row": newTokens,
                "batched_decode_seconds": (batchSeconds * 1000).rounded() / 1000,
                "batched_decode_tokens_per_second": (total / batchSeconds * 10).rounded() / 10,
                "sequential_decode_seconds": (sequentialSeconds * 1000).rounded() / 1000,
                "sequential_decode_tokens_per_second": (total / sequentialSeconds * 10).rounded() / 10,
                "speedup_batched_over_sequential": (sequentialSeconds / batchSeconds * 1000).rounded() / 1000,
                "batched_tokens_equal_sequential": batchTokens == sequentialTokens]
    }

    /// Seconds for `newTokens` greedy decode steps (each one token through the cache), starting from `first`
    /// (run first, untimed) or from given logits.
    func decodeSeconds(_ m: LlamaModel, cache: KVCache, first: Int32?, logits given: Tensor? = nil, history start: [Int32] = []) throws -> Double {
        var history = start
        var logits = given ?? Tensor(zeros: [1])
        if let first { logits = try m.forward(tokens: [first], cache: cache); history.append(first) }
        var sampler = try Sampler(SamplingParameters())
        let begin = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<newTokens {
            let next = sampler.sample(logits: logits, history: history)
            history.append(next)
            logits = try m.forward(tokens: [next], cache: cache)
        }
        return Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9
    }
}
