// What the GGUF LoRA adapter format needs to know about the base model: its architecture, head counts (for the
// q/k row permutation of lora_B) and, for every adaptable projection, its llama.cpp tensor name and ggml dims.
// Built from a GGUF base file (export) or from a loaded model (reading an adapter onto it).
import Foundation
import Formats

/// One adaptable base projection.
public struct GGUFLoRABaseModule: Sendable, Equatable {
    /// Hugging Face module path (`model.layers.0.self_attn.q_proj`).
    public let path: String
    /// llama.cpp weight name (`blk.0.attn_q.weight`).
    public let tensorName: String
    /// Weight [out, in] in PyTorch order; ggml dims are [in, out].
    public let outFeatures: Int, inFeatures: Int
    /// Rope head groups whose rows llama.cpp permutes (q: heads, k: kv heads), nil for every other projection.
    public let ropeHeads: Int?
}

/// The base model as the adapter format sees it.
public struct GGUFLoRABase: Sendable {
    public let architecture: GGUFArchitecture
    public let layerCount: Int
    /// File or directory named in errors.
    public let source: String
    /// Modules by llama.cpp tensor name and by Hugging Face path.
    public let modulesByTensor: [String: GGUFLoRABaseModule]
    public let modulesByPath: [String: GGUFLoRABaseModule]

    init(architecture: GGUFArchitecture, layerCount: Int, source: String, modules: [GGUFLoRABaseModule]) {
        self.architecture = architecture; self.layerCount = layerCount; self.source = source
        modulesByTensor = Dictionary(modules.map { ($0.tensorName, $0) }, uniquingKeysWith: { a, _ in a })
        modulesByPath = Dictionary(modules.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The projections of a GGUF base file, from its tensor table (no weights are read).
    public init(gguf file: GGUFFile) throws {
        let config = try LlamaConfig(gguf: file)
        guard let arch = GGUFArchitecture.named(config.architecture) else {
            throw GGUFAdapterError.unsupportedArchitecture(file: file.path, architecture: config.architecture)
        }
        var modules: [GGUFLoRABaseModule] = []
        for path in Self.projectionPaths(config) {
            guard let name = GGUFWeights.ggufName(path + ".weight"), let info = file.tensorInfo(name), info.dimensions.count == 2 else { continue }
            modules.append(GGUFLoRABaseModule(path: path, tensorName: name, outFeatures: info.dimensions[1], inFeatures: info.dimensions[0],
                                              ropeHeads: Self.ropeHeads(path, config, arch)))
        }
        self.init(architecture: arch, layerCount: config.layerCount, source: file.path, modules: modules)
    }

    /// The projections of a loaded model (its GGUF architecture from the config).
    public init(model: LlamaModel, source: String) throws {
        let config = model.config
        guard let arch = GGUFArchitecture.named(config.architecture) else {
            throw GGUFAdapterError.unsupportedArchitecture(file: source, architecture: config.architecture)
        }
        let modules = model.adaptedLinears.compactMap { l -> GGUFLoRABaseModule? in
            guard let name = GGUFWeights.ggufName(l.path + ".weight") else { return nil }
            return GGUFLoRABaseModule(path: l.path, tensorName: name, outFeatures: l.outFeatures, inFeatures: l.inFeatures,
                                      ropeHeads: Self.ropeHeads(l.path, config, arch))
        }
        self.init(architecture: arch, layerCount: config.layerCount, source: source, modules: modules)
    }

    static func projectionPaths(_ c: LlamaConfig) -> [String] {
        let names = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                     "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
        return (0..<c.layerCount).flatMap { i in names.map { "model.layers.\(i).\($0)" } } + ["lm_head"]
    }

    static func ropeHeads(_ path: String, _ c: LlamaConfig, _ arch: GGUFArchitecture) -> Int? {
        guard arch.permutesQueryKeyRows else { return nil }
        if path.hasSuffix("self_attn.q_proj") { return c.headCount }
        if path.hasSuffix("self_attn.k_proj") { return c.kvHeadCount }
        return nil
    }

    /// The llama.cpp name a module path would have, for errors about modules the base lacks.
    static func tensorName(forPath path: String) -> String? { GGUFWeights.ggufName(path + ".weight") }
}

extension GGUFLoRABase {
    /// The Hugging Face module path of a llama.cpp projection weight (`blk.3.attn_q.weight` → `model.layers.3.self_attn.q_proj`).
    public static func modulePath(forTensor name: String) -> String? {
        if name == "output.weight" { return "lm_head" }
        let parts = name.split(separator: ".").map(String.init)
        guard parts.count == 4, parts[0] == "blk", let layer = Int(parts[1]), parts[3] == "weight" else { return nil }
        let modules = ["attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
                       "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"]
        return modules[parts[2]].map { "model.layers.\(layer).\($0)" }
    }

    /// A base described by the adapter file itself (its architecture, and for each pair the module and dims the
    /// tensors imply), for analyses without the base model. q/k lora_B rows stay in llama.cpp's order: singular
    /// values and ranks do not depend on row order, but ΔW is not in Hugging Face row order.
    public init(adapterFile file: GGUFFile) throws {
        let name = file.metadata["general.architecture"]?.stringValue ?? ""
        let arch = GGUFArchitecture.named(name) ?? GGUFArchitecture(name: name, permutesQueryKeyRows: false)
        var modules: [GGUFLoRABaseModule] = []
        var layers = 0
        for t in file.tensors where t.name.hasSuffix(".lora_a") {
            let base = String(t.name.dropLast(7))
            guard let path = Self.modulePath(forTensor: base), let b = file.tensorInfo(base + ".lora_b"), t.dimensions.count == 2, b.dimensions.count == 2 else {
                throw GGUFAdapterError.unsupported(file: file.path, subject: t.name, reason: "not a llama.cpp projection LoRA (or its .lora_b is missing)")
            }
            if let layer = Int(path.split(separator: ".").dropFirst(2).first ?? "") { layers = max(layers, layer + 1) }
            modules.append(GGUFLoRABaseModule(path: path, tensorName: base, outFeatures: b.dimensions[1], inFeatures: t.dimensions[0], ropeHeads: nil))
        }
        self.init(architecture: GGUFArchitecture(name: arch.name, permutesQueryKeyRows: false), layerCount: layers, source: file.path, modules: modules)
    }
}
