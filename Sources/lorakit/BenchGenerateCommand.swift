import ArgumentParser
import Foundation
import Models
import TensorCore
import Training

/// `lorakit bench generate`: prefill and decode speed of a model, and its memory.
struct BenchGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Prefill tokens/s (one prompt), decode tokens/s (batch 1), peak RSS and weight bytes, as JSON.")

    @Option(help: "A .gguf file or a Hugging Face model directory.") var model: String
    @Option(help: "Prompt length for the prefill measurement.") var promptTokens: Int = 512
    @Option(help: "Tokens generated for the decode measurement.") var newTokens: Int = 256
    @Option(help: "Timed repetitions of the prefill (the best is reported).") var repeats: Int = 3
    @Option(help: "llama.cpp's llama-bench executable: also measure it on the same GGUF with the same thread count and report ratios.")
    var llamaBench: String?

    func validate() throws {
        guard promptTokens > 0, newTokens > 0, repeats > 0 else {
            throw ValidationError("--prompt-tokens, --new-tokens and --repeats must be positive")
        }
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
