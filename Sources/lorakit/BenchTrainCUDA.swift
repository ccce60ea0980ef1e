import ArgumentParser
import CUDA
import DeviceModels
import Foundation
import Models
import PEFT
import TensorCore

/// `lorakit bench train --device cuda`: the device training step (forward, loss, backward, clipping, AdamW) in
/// bf16 with fp32 accumulation and fp32 adapter masters, timed with CUDA events.
extension BenchTrain {
    func runOnCUDA() throws {
        try BLAS.ensureAvailable()
        let ctx = try CUDAContext.shared()
        var rows: [[String: Any]] = []
        for variant in variantList {
            let targets: [String]
            switch variant {
            case "lora-qv", "lora-qv-quantized": targets = ["q_proj", "v_proj"]
            case "lora-all": targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
            default:
                rows.append(["variant": variant, "skipped": "not on the CUDA path yet (AdaLoRA and recomputation run on the CPU only)"]); continue
            }
            let model: LlamaModel, name: String
            var rng = RandomGenerator(seed: 0)
            if let shape = randomShape {
                guard let m = try LlamaShapes.randomModel(shape) else { throw ValidationError("unknown --random-shape \(shape) (known: \(LlamaShapes.named.keys.sorted().joined(separator: ", ")))") }
                model = m; name = "random-init \(shape)"
            } else {
                model = try ModelLoader.load(URL(fileURLWithPath: self.model)).model; name = self.model
            }
            _ = try model.addLoRA(LoRAConfig(r: rank, loraAlpha: Double(2 * rank), loraDropout: 0.05, targetModules: .names(targets)), rng: &rng)
            let device = try LlamaDeviceModel(model, context: ctx, precision: .bfloat16, keepQuantized: variant.hasSuffix("quantized"))
            let vocab = UInt64(model.config.vocabSize)
            let ids = (0..<self.rows).map { _ in (0..<length).map { _ in Int32(rng.nextUInt64() % vocab) } }
            var times: [Double] = [], loss: Float = 0, step = 0
            for i in 0..<(warmupSteps + steps) {
                step += 1
                let ms = try ctx.timed {
                    loss = try device.lossAndGradients(ids: ids, training: true, rng: &rng)
                    try device.optimizerStep(learningRate: 1e-4, step: step)
                }
                if i >= warmupSteps { times.append(ms) }
            }
            let median = times.sorted()[times.count / 2]
            let memory = try ctx.memoryInfo()
            rows.append(["variant": variant, "model": name, "device": ctx.device.name, "precision": "bf16 (fp32 accumulate, fp32 adapter masters)",
                         "batch": [self.rows, length], "rank": rank, "step_ms_median": median, "step_ms": times,
                         "tokens_per_second": Double(self.rows * length) / (median / 1000), "final_loss": loss,
                         "weight_and_adapter_bytes": device.weightBytes, "device_memory_used_gib": Double(memory.total - memory.free) / Double(1 << 30),
                         "gemm": ctx.usesCuBLAS ? "cublas" : "fallback kernel"])
            ctx.releaseCachedMemory()
        }
        print(String(decoding: try JSONSerialization.data(withJSONObject: ["device": "cuda", "results": rows], options: [.sortedKeys, .prettyPrinted]), as: UTF8.self))
    }
}
