import ArgumentParser
import CUDA
import DeviceModels
import Foundation
import Models
import PEFT
import TensorCore

extension CUDACommand {
    /// `lorakit cuda parity`: the model-level check of the CUDA path against the CPU path on the same weights
    /// and batch (LoRA on q_proj, v_proj with non-zero B so the adapters count): loss in fp32 (≤ 1e-4 relative)
    /// and bf16 (≤ 1e-2), the training loss with dropout 0.05 (identical masks) and the adapter gradients
    /// (cosine ≥ 0.999, overall and per tensor), and greedy tokens in fp32 (identical).
    struct Parity: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Model-level CUDA vs CPU parity (loss fp32/bf16, training loss with dropout, adapter-gradient cosine, greedy tokens) as JSON; needs a GPU; exit 1 on a failure.")
        @Option(help: "A .gguf file or a Hugging Face model directory.") var model = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        @Option(help: "A random-init shape instead of --model (smollm2-135m, tinyllama-1.1b).") var randomShape: String?
        @Option(help: "Sequences in the batch.") var rows = 2
        @Option(help: "Tokens per sequence.") var length = 128
        @Option(help: "Greedy tokens to compare (fp32).") var tokens = 20
        @Option(help: "Seed of the token ids and adapter weights.") var seed: UInt64 = 7

        func run() throws {
            try BLAS.ensureAvailable()
            let ctx = try CUDAContext.shared()
            let m: LlamaModel
            if let randomShape {
                guard let r = try LlamaShapes.randomModel(randomShape, seed: seed) else { throw ValidationError("unknown --random-shape \(randomShape)") }
                m = r
            } else {
                m = try ModelLoader.load(URL(fileURLWithPath: model)).model
            }
            var rng = RandomGenerator(seed: seed)
            _ = try m.addLoRA(LoRAConfig(r: 8, loraAlpha: 16, loraDropout: 0.05, targetModules: .names(["q_proj", "v_proj"])), rng: &rng)
            for linear in m.adaptedLinears {
                if let lora = linear.adapter(named: "default") as? LoRABranch { lora.b.value = rng.normal(lora.b.shape, std: 0.02) }
            }
            let vocab = UInt64(m.config.vocabSize)
            let ids = (0..<rows).map { _ in (0..<length).map { _ in Int32(rng.nextUInt64() % vocab) } }
            var cpuRNG = RandomGenerator(seed: 0)
            let cpuStart = Date()
            let cpuLoss = try m.loss(ids: ids, training: false, rng: &cpuRNG).value.scalarValue
            let cpuSeconds = Date().timeIntervalSince(cpuStart)
            // CPU training loss and adapter gradients, dropout on, from stream position 0 of seed 11.
            var cpuTrainRNG = RandomGenerator(seed: 11)
            let cpuTrain = try m.loss(ids: ids, training: true, rng: &cpuTrainRNG)
            cpuTrain.backward()
            var cpuGrads: [Tensor] = []
            for layer in m.layers {
                for l in [layer.attention.qProj, layer.attention.kProj, layer.attention.vProj, layer.attention.oProj, layer.mlp.gateProj, layer.mlp.upProj, layer.mlp.downProj] {
                    if let lora = l.adapter(named: "default") as? LoRABranch {
                        cpuGrads.append(lora.a.grad ?? Tensor(zeros: lora.a.shape)); cpuGrads.append(lora.b.grad ?? Tensor(zeros: lora.b.shape))
                    }
                }
            }
            var results: [[String: Any]] = []
            var failed = 0
            for (precision, tolerance) in [(DeviceElementType.float32, 1e-4), (.bfloat16, 1e-2)] {
                let device = try LlamaDeviceModel(m, context: ctx, precision: precision)
                var loss: Float = 0
                let ms = try ctx.timed { loss = try device.loss(ids: ids) }
                let rel = Double(abs(loss - cpuLoss)) / Double(max(abs(cpuLoss), 1e-6))
                if rel > tolerance { failed += 1 }
                results.append(["check": "loss", "precision": precision.rawValue, "cpu": cpuLoss, "cuda": loss, "rel_error": rel,
                                "tolerance": tolerance, "passed": rel <= tolerance, "cuda_ms": ms, "cpu_seconds": cpuSeconds,
                                "weight_bytes": device.weightBytes])
                var gpuTrainRNG = RandomGenerator(seed: 11)
                var trainLoss: Float = 0
                let stepMs = try ctx.timed { trainLoss = try device.lossAndGradients(ids: ids, training: true, rng: &gpuTrainRNG) }
                let trainRel = Double(abs(trainLoss - cpuTrain.value.scalarValue)) / Double(max(abs(cpuTrain.value.scalarValue), 1e-6))
                var dot = 0.0, nc = 0.0, ng = 0.0, worst = 1.0
                for (t, cpu) in zip(device.adapterTensors.flatMap { [$0.gradA, $0.gradB] }, cpuGrads) {
                    let gpu = try t.toTensor()
                    var d = 0.0, a = 0.0, b = 0.0
                    for i in 0..<cpu.count { let x = Double(cpu[flat: i]), y = Double(gpu[flat: i]); d += x * y; a += x * x; b += y * y }
                    dot += d; nc += a; ng += b
                    worst = min(worst, a == 0 && b == 0 ? 1 : d / max((a * b).squareRoot(), 1e-30))
                }
                let cosine = dot / max((nc * ng).squareRoot(), 1e-30)
                let gradsPass = cosine >= 0.999 && worst >= 0.999 && device.adapterTensors.count * 2 == cpuGrads.count
                if trainRel > tolerance { failed += 1 }
                if !gradsPass { failed += 1 }
                results.append(["check": "train_loss_dropout", "precision": precision.rawValue, "cpu": cpuTrain.value.scalarValue, "cuda": trainLoss,
                                "rel_error": trainRel, "tolerance": tolerance, "passed": trainRel <= tolerance, "cuda_step_ms": stepMs])
                results.append(["check": "adapter_gradients", "precision": precision.rawValue, "cosine": cosine, "min_tensor_cosine": worst,
                                "tensors": cpuGrads.count, "threshold": 0.999, "passed": gradsPass])
                if precision == .float32 && tokens > 0 {
                    let prompt = Array(ids[0].prefix(16))
                    let gpuTokens = try device.greedyTokens(prompt: prompt, count: tokens)
                    var cpuTokens: [Int32] = [], seq = prompt
                    for _ in 0..<tokens {
                        let logits = try m.logits(ids: [seq])
                        let v = m.config.vocabSize, last = seq.count - 1
                        var best = 0
                        logits.withUnsafeBufferPointer { p in for j in 1..<v where p[last * v + j] > p[last * v + best] { best = j } }
                        cpuTokens.append(Int32(best)); seq.append(Int32(best))
                    }
                    let same = cpuTokens == gpuTokens
                    if !same { failed += 1 }
                    results.append(["check": "greedy_tokens", "precision": "float32", "cpu": cpuTokens.map(Int.init), "cuda": gpuTokens.map(Int.init), "passed": same])
                }
            }
            try CUDACommand.printJSON(["device": ctx.device.name, "model": randomShape.map { "random-init \($0)" } ?? model, "batch": [rows, length], "gemm": ctx.usesCuBLAS ? "cublas" : "fallback kernel",
                                       "failed": failed, "results": results])
            if failed > 0 { throw ExitCode(1) }
        }
    }
}
