// Fuzz targets for PEFT adapters: adapter_config.json alone (LoRA and AdaLoRA readers), and whole adapter
// directories loaded into a small base whose shapes are known, so a weight of the wrong shape must be refused.
import Foundation
import TensorCore
import Autograd
import PEFT

enum FuzzAdapters {
    static func config(_ bytes: [UInt8]) throws {
        let object = try JSONValue.parseObject(Data(bytes), source: "adapter_config.json")
        var accepted = false
        if let lora = try? LoRAConfig(json: object) {
            accepted = true
            // What we accept we can write back, and reading that back gives the same config.
            // Injected into a small base: the config's ranks size allocations, so absurd ones must be refused first.
            // (Only small ranks are really allocated; larger ones must be refused by the size check or are just slow.)
            if lora.r <= 512 && lora.rankPattern.allSatisfy({ $0.value <= 512 }) {
                var rng = RandomGenerator(seed: 2)
                _ = try? FuzzBaseModel().addLoRA(lora, rng: &rng)
            } else if lora.r.multipliedReportingOverflow(by: 24).overflow || lora.r * 24 > AdaptedLinear.maxAdapterParameters {
                let layer = FuzzBaseModel().layers[0]
                guard (try? AdaptedLinear.checkAdapterSize(rank: lora.r, layer: layer, field: "r")) == nil else {
                    throw FuzzInvariantViolation(target: "adapter-config", reason: "rank \(lora.r) passes the size check")
                }
            }
            let again = try LoRAConfig(json: lora.jsonObject())
            guard again.jsonObject() == lora.jsonObject() else {
                throw FuzzInvariantViolation(target: "adapter-config", reason: "LoRA config changes on a round trip")
            }
        }
        if let adalora = try? AdaLoRAConfig(json: object) {
            accepted = true
            if adalora.initR <= 512 {
                var rng = RandomGenerator(seed: 2)
                _ = try? FuzzBaseModel().addAdaLoRA(adalora, rng: &rng)
            }
            let again = try AdaLoRAConfig(json: adalora.jsonObject())
            guard again.jsonObject() == adalora.jsonObject() else {
                throw FuzzInvariantViolation(target: "adapter-config", reason: "AdaLoRA config changes on a round trip")
            }
        }
        // Neither reader accepted it: the typed error of the LoRA reader is the answer.
        if !accepted { _ = try LoRAConfig(json: object) }
    }

    /// Input: u16 little-endian config length, the adapter_config.json bytes, then adapter_model.safetensors.
    static func directory(_ bytes: [UInt8]) throws {
        guard bytes.count >= 2 else { return }
        let configLength = min(Int(bytes[0]) | Int(bytes[1]) << 8, bytes.count - 2)
        let directory = FuzzScratch.directory.appendingPathComponent("adapter")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data(bytes[2..<(2 + configLength)]).write(to: directory.appendingPathComponent(AdapterFiles.configName))
        try Data(bytes[(2 + configLength)...]).write(to: directory.appendingPathComponent(AdapterFiles.weightsName))
        let base = FuzzBaseModel()
        try AdapterFiles.load(into: base, from: directory)
        // The loaded adapter must fit its base: a forward pass keeps every layer's output shape.
        var rng = RandomGenerator(seed: 1)
        for layer in base.adaptedLinears {
            let x = Variable(Tensor(repeating: 0.5, shape: [2, layer.inFeatures]))
            let y = layer.forward(x, rng: &rng, training: false)
            guard y.shape == [2, layer.outFeatures] else {
                throw FuzzInvariantViolation(target: "adapter-directory", reason: "\(layer.path) gives \(y.shape)")
            }
        }
    }
}

/// A base with Llama module names and rectangular projections ([out, in] = [8, 16] and [16, 8]), so a
/// transposed or mis-sized adapter tensor cannot line up by accident.
final class FuzzBaseModel: AdaptableModel {
    let layers: [AdaptedLinear]
    init() {
        var rng = RandomGenerator(seed: 3)
        let shapes = [("self_attn.q_proj", 8, 16), ("self_attn.v_proj", 8, 16), ("mlp.down_proj", 16, 8)]
        layers = (0..<2).flatMap { index in shapes.map { name, out, input in
            AdaptedLinear(path: "model.layers.\(index).\(name)", weight: Variable(rng.normal([out, input], std: 0.1)))
        } }
    }
    var adaptedLinears: [AdaptedLinear] { layers }
}
