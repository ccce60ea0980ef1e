import ArgumentParser
import Foundation
import Models
import PEFT
import TensorCore
import Training

/// `lorakit bench train`: training-step speed and memory of LoRA / AdaLoRA on a real model, as JSON.
/// Each variant runs in its own child process (this executable with `--variant-only`), so every peak RSS is that
/// variant's alone; the parent measures sgemm once and reports all variants side by side (ratios in one run).
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training tokens/s, forward/backward/optimizer split, peak RSS and achieved GFLOP/s vs sgemm, as JSON.",
        discussion: """
            Variants: lora-qv (float32 base, LoRA on q_proj,v_proj), lora-all (all seven projections), \
            lora-qv-quantized (the GGUF base kept quantized, QLoRA-style), adalora-qv (AdaLoRA, init rank = --rank, \
            masking every step: its overhead over lora-qv is reported); a -recompute suffix (lora-qv-recompute, \
            lora-qv-quantized-recompute) turns on activation recomputation; dora-qv and dora-qv-quantized train DoRA on q_proj,v_proj. GFLOP/s count the model's FLOPs only, \
            not the recomputed forward.
            """)

    static let allVariants = ["lora-qv", "lora-all", "lora-qv-quantized", "adalora-qv", "lora-qv-recompute", "lora-qv-quantized-recompute",
                              "dora-qv", "dora-qv-quantized"]

    @Option(help: "A .gguf file or a Hugging Face model directory.") var model = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    @Option(help: "Comma-separated variants (\(allVariants.joined(separator: ", "))).") var variants = allVariants.joined(separator: ",")
    @Option(help: "Sequences per step.") var rows = 4
    @Option(help: "Tokens per sequence.") var length = 256
    @Option(help: "Adapter rank (AdaLoRA: initial rank).") var rank = 8
    @Option(help: "Untimed warm-up steps.") var warmupSteps = 1
    @Option(help: "Timed steps (the median is reported).") var steps = 3
    @Option(help: .hidden) var variantOnly: String?
    @Option(help: "With --device cuda: a random-init model shape instead of --model (smollm2-135m, tinyllama-1.1b).") var randomShape: String?

    func validate() throws {
        guard rows > 0, length > 1, rank > 0, steps > 0, warmupSteps >= 0 else {
            throw ValidationError("--rows, --rank and --steps must be positive, --length ≥ 2, --warmup-steps ≥ 0")
        }
        for v in variantList where !Self.allVariants.contains(v) {
            throw ValidationError("unknown variant \"\(v)\" (known: \(Self.allVariants.joined(separator: ", ")))")
        }
    }

    var variantList: [String] {
        (variantOnly.map { [$0] } ?? variants.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
    }

    @OptionGroup var deviceOption: DeviceOption

    func run() throws {
        if case .cuda = try deviceOption.resolve() { return try runOnCUDA() }
        if randomShape != nil { throw ValidationError("--random-shape needs --device cuda") }
        try BLAS.ensureAvailable()
        if let only = variantOnly {
            let row = try measure(variant: only)
            print(String(decoding: try JSONSerialization.data(withJSONObject: row, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        let sgemm = measureSGEMM()
        var results: [[String: Any]] = []
        for variant in variantList {
            var row = try runChild(variant: variant)
            if let achieved = row["gflops_achieved"] as? Double {
                row["fraction_of_sgemm"] = (achieved / sgemm.training * 1000).rounded() / 1000
            }
            results.append(row)
            FileHandle.standardError.write(Data("bench train: \(variant): \(row["tokens_per_second"] ?? "?") tokens/s\n".utf8))
        }
        let info = BLAS.describe()
        var json: [String: Any] = ["benchmark": "train", "model": model, "blas_kernel": info.kernel, "threads": info.threads,
                                   "rows": rows, "length": length, "rank": rank, "timed_steps": steps,
                                   "sgemm_gflops": ["m1024_n1536_k576": sgemm.training, "m2048_n2048_k2048": sgemm.square],
                                   "results": results]
        func step(_ name: String) -> Double? { results.first { $0["variant"] as? String == name }?["step_seconds"] as? Double }
        if let lora = step("lora-qv"), let ada = step("adalora-qv") {
            json["adalora_overhead"] = ((ada / lora - 1) * 1000).rounded() / 1000
        }
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    /// Runs one variant in a fresh process of this executable and parses its one-line JSON.
    func runChild(variant: String) throws -> [String: Any] {
        guard let executable = Bundle.main.executableURL else { throw ValidationError("cannot locate the lorakit executable") }
        let process = Process()
        process.executableURL = executable
        process.arguments = ["bench", "train", "--model", model, "--rows", String(rows), "--length", String(length),
                             "--rank", String(rank), "--warmup-steps", String(warmupSteps), "--steps", String(steps),
                             "--variant-only", variant]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let row = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ValidationError("variant \(variant) failed (exit status \(process.terminationStatus))")
        }
        return row
    }

    /// One variant in this process: load, add the adapter, time the steps.
    func measure(variant: String) throws -> [String: Any] {
        let quantized = variant.contains("-quantized"), recompute = variant.hasSuffix("-recompute")
        let loaded = try ModelLoader.load(URL(fileURLWithPath: model), options: ModelLoadOptions(keepQuantized: quantized))
        let m = loaded.model
        m.recomputesActivations = recompute
        let loadedRSS = ProcessMemory.peakResidentBytes()
        let targets: ModuleSelector = variant.hasPrefix("lora-all")
            ? .names(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]) : .names(["q_proj", "v_proj"])
        var lora = LoRAConfig(r: rank, loraAlpha: Double(2 * rank), loraDropout: 0.05, targetModules: targets)
        lora.useDoRA = variant.hasPrefix("dora")  // dora-qv: the row norm of W + s·B·A every step, the base product reused
        let method: AdapterMethod
        if variant.hasPrefix("adalora") {
            // Same init rank as LoRA; the allocator updates every step (deltaT 1) and masks until the last one.
            var config = AdaLoRAConfig(initR: rank, targetR: max(rank - 2, 1), tinit: 0, tfinal: 1, deltaT: 1)
            config.lora = lora
            method = .adalora(config)
        } else {
            method = .lora(lora)
        }
        let batch = TrainingStepBenchmark.randomBatch(rows: rows, length: length, vocabSize: m.config.vocabSize)
        let r = try TrainingStepBenchmark.run(model: m, method: method, batch: batch, warmupSteps: warmupSteps, steps: steps)
        let tokens = Double(r.tokensPerStep)
        let flops = m.config.trainingStepFLOPs(rows: rows, length: length, headRows: batch.targetCount,
                                               adapterFLOPs: 2 * tokens * Double(r.trainableParameters))
        func ms(_ s: Double) -> Double { (s * 1000).rounded() / 1000 }
        return ["variant": variant, "method": lora.useDoRA ? "dora" : method.name, "base": quantized ? "quantized" : "float32", "recompute_activations": recompute,
                "targets": variant.hasPrefix("lora-all") ? "all seven projections" : "q_proj,v_proj", "trainable_parameters": r.trainableParameters,
                "tokens_per_step": r.tokensPerStep, "tokens_per_second": (r.tokensPerSecond * 10).rounded() / 10,
                "step_seconds": ms(r.stepSeconds), "forward_seconds": ms(median(r.forwardSeconds)),
                "backward_seconds": ms(median(r.backwardSeconds)), "optimizer_seconds": ms(median(r.optimizerSeconds)),
                "gflop_per_step": (flops / 1e8).rounded() / 10, "gflops_achieved": (flops / r.stepSeconds / 1e8).rounded() / 10,
                "peak_rss_bytes": r.peakResidentBytes, "rss_after_load_bytes": loadedRSS, "loss_first": Double(r.losses.first ?? 0), "loss_last": Double(r.losses.last ?? 0)]
    }

    /// sgemm GFLOP/s at a training-shaped product ([1024, 576]·[576, 1536]) and at 2048³, ~1 s each.
    func measureSGEMM() -> (training: Double, square: Double) {
        func rate(_ m: Int, _ n: Int, _ k: Int) -> Double { (Bench.sgemmRate(m: m, n: n, k: k, seconds: 1).gflops * 10).rounded() / 10 }
        return (rate(1024, 1536, 576), rate(2048, 2048, 2048))
    }
}
