// Adapters on disk in Hugging Face PEFT's format, so they move both ways between LoRAKit and PEFT:
//   adapter_config.json        PEFT field names, sorted keys
//   adapter_model.safetensors  base_model.model.<module>.lora_A.weight [r, in], lora_B.weight [out, r], F32
import Foundation
import TensorCore
import Autograd
import Formats

public enum AdapterFiles {
    public static let configName = "adapter_config.json"
    public static let weightsName = "adapter_model.safetensors"
    static let keyPrefix = "base_model.model."

    /// Writes one adapter. Each file is written to a temporary name and renamed, so an interrupted save never
    /// leaves a half-written adapter and never destroys the previous one.
    public static func saveLoRA(_ model: AdaptableModel, adapter name: String = "default", config: LoRAConfig, to directory: URL) throws {
        let params = model.adapterParameters(name)
        guard !params.isEmpty else { throw PEFTError.unknownAdapter(name, available: model.adapterNames) }
        try writeFiles(params.map { SafeTensorsEntry.float(keyPrefix + $0.0, $0.1.value) }, config: config.jsonObject(), to: directory)
    }

    /// Loads a PEFT LoRA adapter onto the model as adapter `name`. Unknown keys are reported and ignored, like PEFT.
    @discardableResult
    public static func loadLoRA(into model: AdaptableModel, from directory: URL, as name: String = "default") throws -> LoRAConfig {
        let (configURL, weightsURL) = try existingFiles(in: directory)
        let config = try LoRAConfig.load(from: configURL)
        try config.validate()
        let file = try SafeTensorsFile(contentsOf: weightsURL)
        let layers = try model.targetedLinears(config)
        if layers.contains(where: { $0.adapter(named: name) != nil }) { throw PEFTError.adapterExists(name) }
        var used = Set<String>()
        var branches: [(AdaptedLinear, AdapterBranch)] = []
        for layer in layers {
            func load(_ suffix: String) throws -> Tensor {
                // PEFT drops the adapter name on save; accept files that kept it (".default.weight") too.
                let candidates = [keyPrefix + layer.path + "." + suffix + ".weight", keyPrefix + layer.path + "." + suffix + ".\(name).weight"]
                guard let key = candidates.first(where: file.contains) else { throw PEFTError.missingTensor(candidates[0], file: weightsURL.path) }
                used.insert(key)
                let tensor = try file.tensor(key)
                if let bad = tensor.nonFiniteReport() { throw PEFTError.file(path: weightsURL.path, reason: "tensor '\(key)' holds \(bad)") }
                return tensor
            }
            let a = try load("lora_A"), b = try load("lora_B")
            let (r, alpha, _) = try config.resolved(for: layer.path)
            guard a.shape == [r, layer.inFeatures] else { throw PEFTError.shapeMismatch(tensor: keyPrefix + layer.path + ".lora_A.weight", expected: [r, layer.inFeatures], got: a.shape) }
            guard b.shape == [layer.outFeatures, r] else { throw PEFTError.shapeMismatch(tensor: keyPrefix + layer.path + ".lora_B.weight", expected: [layer.outFeatures, r], got: b.shape) }
            let branch = try LoRABranch(a: Variable(a, requiresGrad: true, name: layer.path + ".lora_A.weight"),
                                        b: Variable(b, requiresGrad: true, name: layer.path + ".lora_B.weight"),
                                        alpha: alpha, useRSLoRA: config.useRSLoRA, dropout: Float(config.loraDropout))
            if config.useDoRA {
                // PEFT saves `…lora_magnitude_vector` (the `.weight` of its module stripped); accept the other spellings too.
                let stem = keyPrefix + layer.path + ".lora_magnitude_vector"
                let candidates = [stem, stem + ".weight", stem + ".\(name).weight"]
                guard let key = candidates.first(where: file.contains) else { throw PEFTError.missingTensor(stem, file: weightsURL.path) }
                used.insert(key)
                let m = try file.tensor(key)
                guard m.shape == [layer.outFeatures] else { throw PEFTError.shapeMismatch(tensor: key, expected: [layer.outFeatures], got: m.shape) }
                branches.append((layer, try DoRABranch(lora: branch, magnitude: Variable(m, requiresGrad: true, name: layer.path + ".lora_magnitude_vector"), layer: layer)))
            } else {
                branches.append((layer, branch))
            }
        }
        // modules_to_save: full trained copies saved under the layer's own name ("<path>.weight", "<path>.bias").
        var copies: [(AdaptedLinear, ModulesToSaveBranch)] = []
        for layer in try model.modulesToSave(config.modulesToSave ?? []) {
            let key = keyPrefix + layer.path + ".weight", biasKey = keyPrefix + layer.path + ".bias"
            guard file.contains(key) else { throw PEFTError.missingTensor(key, file: weightsURL.path) }
            if layer.bias != nil && !file.contains(biasKey) { throw PEFTError.missingTensor(biasKey, file: weightsURL.path) }
            used.insert(key)
            if layer.bias != nil { used.insert(biasKey) }
            copies.append((layer, try ModulesToSaveBranch(layer: layer, weight: try file.tensor(key),
                                                          bias: layer.bias != nil ? try file.tensor(biasKey) : nil)))
        }
        // Attach only once everything loaded: a bad file leaves the model as it was.
        for (layer, branch) in branches { try layer.addAdapter(name, branch) }
        for (layer, branch) in copies { try layer.addAdapter(name, branch) }
        let unused = file.names.filter { !used.contains($0) }
        if !unused.isEmpty { PEFTDiagnostics.warn("\(weightsURL.path): ignored \(unused.count) tensors not used by this model, e.g. \(unused[0])") }
        return config
    }

    /// The adapter's two files (safetensors weights with PEFT's `{"format": "pt"}` metadata, then the config),
    /// each replaced atomically.
    static func writeFiles(_ entries: [SafeTensorsEntry], config: [String: JSONValue], to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try SafeTensorsWriter.write(entries, metadata: ["format": "pt"], to: directory.appendingPathComponent(weightsName))
        let configURL = directory.appendingPathComponent(configName)
        do { try AtomicFile.write(JSONValue.serialize(config), to: configURL) } catch let error as AtomicFileError {
            throw PEFTError.file(path: error.path, reason: "cannot write (\(error.reason))")
        }
    }

    /// The config and weights files of an adapter directory; a clear error names the one that is missing.
    static func existingFiles(in directory: URL) throws -> (config: URL, weights: URL) {
        let configURL = directory.appendingPathComponent(configName), weightsURL = directory.appendingPathComponent(weightsName)
        for url in [configURL, weightsURL] where !FileManager.default.fileExists(atPath: url.path) {
            throw PEFTError.file(path: url.path, reason: "not found")
        }
        return (configURL, weightsURL)
    }
}
