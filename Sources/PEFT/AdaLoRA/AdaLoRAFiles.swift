// AdaLoRA adapters on disk in PEFT's format (spec §3.4, §4.2):
//   adapter_config.json        peft_type ADALORA, rank_pattern {"<module>.lora_E": [Bool] × init_r}
//   adapter_model.safetensors  base_model.model.<module>.lora_A [r_k, in], .lora_E [r_k, 1], .lora_B [out, r_k]
//                              (no ".weight"), r_k = Σ mask (0 gives zero-size tensors); ranknum is not saved
import Foundation
import TensorCore
import Autograd
import Formats

/// A loaded adapter's config, whichever method it is.
public enum LoadedAdapterConfig: Sendable {
    case lora(LoRAConfig)
    case adalora(AdaLoRAConfig)

    /// PEFT's peft_type: "LORA" or "ADALORA".
    public var peftType: String {
        switch self {
        case .lora: return "LORA"
        case .adalora: return "ADALORA"
        }
    }
}

extension AdapterFiles {
    /// Loads a PEFT adapter of any supported type (dispatching on `peft_type`: LORA or ADALORA).
    @discardableResult
    public static func load(into model: AdaptableModel, from directory: URL, as name: String = "default") throws -> LoadedAdapterConfig {
        let configURL = directory.appendingPathComponent(configName)
        guard FileManager.default.fileExists(atPath: configURL.path) else { throw PEFTError.file(path: configURL.path, reason: "not found") }
        let data: Data
        do { data = try Data(contentsOf: configURL) } catch {
            throw PEFTError.file(path: configURL.path, reason: "cannot read (\(error.localizedDescription))")
        }
        let object = try JSONValue.parseObject(data, source: configURL.path)
        guard let type = object["peft_type"]?.stringValue else {
            throw PEFTError.invalidConfig(field: "peft_type", reason: "\(configURL.path): missing; PEFT configs always name their method")
        }
        switch type {
        case "LORA": return .lora(try loadLoRA(into: model, from: directory, as: name))
        case "ADALORA": return .adalora(try loadAdaLoRA(into: model, from: directory, as: name))
        default: throw PEFTError.invalidConfig(field: "peft_type", reason: "\(configURL.path): '\(type)' is not supported (LORA, ADALORA)")
        }
    }

    /// Writes an AdaLoRA adapter. Tensors are sliced to `config.rankPattern` (use the allocator's `config`);
    /// without a pattern the full init_r tensors are written, as PEFT does before allocation ran.
    public static func saveAdaLoRA(_ model: AdaptableModel, adapter name: String = "default", config: AdaLoRAConfig,
                                   to directory: URL) throws {
        let modules = model.adaLoRABranches(name)
        guard !modules.isEmpty else { throw AdaLoRAError.noAdaLoRAModules(adapter: name) }
        let paths = Set(modules.map(\.path))
        for key in (config.rankPattern ?? [:]).keys.sorted() where !paths.contains(patternModule(key, adapter: name) ?? "") {
            throw AdaLoRAError.unknownPatternModule(key: key, modules: modules.map(\.path))
        }
        var entries: [SafeTensorsEntry] = []
        for (path, branch) in modules {
            var saved = branch
            if let mask = patternMask(config.rankPattern, module: path, adapter: name) {
                let kept = mask.filter { $0 }.count
                if branch.rank == mask.count && kept != mask.count {
                    saved = try branch.keeping(mask, module: path)
                } else if branch.rank != kept && branch.rank != mask.count {
                    throw AdaLoRAError.patternDisagreesWithTensor(module: path, keptByPattern: kept, maskLength: mask.count,
                                                                  tensor: path + ".lora_A", shape: branch.a.shape)
                }
            }
            for (suffix, v) in saved.namedParameters { entries.append(.float(keyPrefix + path + "." + suffix, v.value)) }
        }
        try writeFiles(entries, config: config.jsonObject(), to: directory)
    }

    /// Loads a PEFT AdaLoRA adapter: each module gets rank Σ mask from `rank_pattern` (init_r without an entry),
    /// ranknum = init_r, and every tensor shape is checked against that before anything is attached.
    @discardableResult
    public static func loadAdaLoRA(into model: AdaptableModel, from directory: URL, as name: String = "default") throws -> AdaLoRAConfig {
        let (configURL, weightsURL) = try existingFiles(in: directory)
        let config = try AdaLoRAConfig.load(from: configURL)
        try config.validate()
        let file = try SafeTensorsFile(contentsOf: weightsURL)
        let layers = try model.targetedLinears(config.lora)
        if layers.contains(where: { $0.adapter(named: name) != nil }) { throw PEFTError.adapterExists(name) }
        let paths = Set(layers.map(\.path))
        for key in (config.rankPattern ?? [:]).keys.sorted() where !paths.contains(patternModule(key, adapter: name) ?? "") {
            throw AdaLoRAError.unknownPatternModule(key: key, modules: layers.map(\.path))
        }
        var used = Set<String>()
        var branches: [(AdaptedLinear, AdaLoRABranch)] = []
        for layer in layers {
            let mask = patternMask(config.rankPattern, module: layer.path, adapter: name)
            let r = mask.map { $0.filter { $0 }.count } ?? config.initR
            func load(_ suffix: String, _ expected: [Int]) throws -> Variable {
                // PEFT drops the adapter name on save; accept files that kept it (".lora_A.default") too.
                let candidates = [keyPrefix + layer.path + "." + suffix, keyPrefix + layer.path + "." + suffix + ".\(name)"]
                guard let key = candidates.first(where: file.contains) else { throw PEFTError.missingTensor(candidates[0], file: weightsURL.path) }
                let shape = try file.info(key).shape
                guard shape == expected else {
                    if let mask {
                        throw AdaLoRAError.patternDisagreesWithTensor(module: layer.path, keptByPattern: r, maskLength: mask.count,
                                                                      tensor: key, shape: shape)
                    }
                    throw PEFTError.shapeMismatch(tensor: key, expected: expected, got: shape)
                }
                used.insert(key)
                let tensor = try file.tensor(key)
                if let bad = tensor.nonFiniteReport() { throw PEFTError.file(path: weightsURL.path, reason: "tensor '\(key)' holds \(bad)") }
                return Variable(tensor, requiresGrad: true, name: layer.path + "." + suffix)
            }
            let a = try load("lora_A", [r, layer.inFeatures])
            let e = try load("lora_E", [r, 1])
            let b = try load("lora_B", [layer.outFeatures, r])
            let branch = try AdaLoRABranch(a: a, e: e, b: b, scaling: Float(config.scaling), ranknum: Float(config.initR),
                                           dropout: Float(config.lora.loraDropout), module: layer.path)
            branches.append((layer, branch))
        }
        // Attach only once everything loaded: a bad file leaves the model as it was.
        for (layer, branch) in branches { try layer.addAdapter(name, branch) }
        let unused = file.names.filter { !used.contains($0) }
        if !unused.isEmpty { PEFTDiagnostics.warn("\(weightsURL.path): ignored \(unused.count) tensors not used by this model, e.g. \(unused[0])") }
        return config
    }

    /// The module path a rank_pattern key names: "<module>.lora_E", optionally with the adapter name after it.
    static func patternModule(_ key: String, adapter: String) -> String? {
        var k = key
        if k.hasSuffix("." + adapter) { k.removeLast(adapter.count + 1) }
        guard k.hasSuffix(".lora_E") else { return nil }
        k.removeLast(".lora_E".count)
        return k
    }

    static func patternMask(_ pattern: [String: [Bool]]?, module: String, adapter: String) -> [Bool]? {
        guard let pattern else { return nil }
        return pattern[module + ".lora_E"] ?? pattern[module + ".lora_E." + adapter]
    }
}
