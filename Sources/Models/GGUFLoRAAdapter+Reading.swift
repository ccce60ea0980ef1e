// Reading llama.cpp LoRA adapters (from LoRAKit or from convert_lora_to_gguf.py) back into PEFT form: validated
// against the base, q/k lora_B rows put back in Hugging Face order, the PEFT config restored or inferred.
import Foundation
import TensorCore
import Autograd
import Formats
import PEFT

extension GGUFLoRAAdapter {
    /// Reads `url` against `base` with the checks llama.cpp makes (type keys, architecture, pairing, base tensor
    /// names and dims), returning PEFT-layout factors and config.
    public static func read(_ url: URL, base: GGUFLoRABase) throws -> GGUFLoRAContents {
        let file = try GGUFFile(url: url)
        let path = file.path
        func requireString(_ key: String, _ expected: String?) throws -> String {
            guard let value = file.metadata[key] else { throw GGUFAdapterError.notALoRAAdapter(file: path, key: key, found: "missing") }
            guard let s = value.stringValue else { throw GGUFAdapterError.notALoRAAdapter(file: path, key: key, found: "of type \(value.type), not string") }
            if let expected, s != expected { throw GGUFAdapterError.notALoRAAdapter(file: path, key: key, found: "\"\(s)\", not \"\(expected)\"") }
            return s
        }
        _ = try requireString("general.type", "adapter")
        _ = try requireString("adapter.type", "lora")
        let architecture = try requireString("general.architecture", nil)
        guard architecture == base.architecture.name else {
            throw GGUFAdapterError.architectureMismatch(file: path, adapter: architecture, base: base.architecture.name, baseFile: base.source)
        }
        var alpha: Float = 0
        if let raw = file.metadata["adapter.lora.alpha"] {
            // llama.cpp aborts on any other type, so such a file is refused rather than read.
            guard case let .float32(v) = raw else { throw GGUFAdapterError.notALoRAAdapter(file: path, key: "adapter.lora.alpha", found: "of type \(raw.type), not f32") }
            alpha = v
        }

        var aNames: [String] = [], bNames = Set<String>()
        for t in file.tensors {
            if t.name.hasSuffix(".lora_a") { aNames.append(t.name) }
            else if t.name.hasSuffix(".lora_b") { bNames.insert(t.name) }
            else if t.name.hasSuffix("_norm.weight") { continue }   // mergekit norms: llama.cpp ignores them too
            else { throw GGUFAdapterError.unexpectedTensor(file: path, tensor: t.name) }
        }
        let aBases = Set(aNames.map { String($0.dropLast(7)) })
        if let lonely = bNames.sorted().first(where: { !aBases.contains(String($0.dropLast(7))) }) {
            throw GGUFAdapterError.missingPair(file: path, tensor: lonely, missing: String(lonely.dropLast(7)) + ".lora_a")
        }
        var pairs: [GGUFLoRAPair] = []
        for aName in aNames {
            let baseName = String(aName.dropLast(7)), bName = baseName + ".lora_b"
            guard bNames.contains(bName) else { throw GGUFAdapterError.missingPair(file: path, tensor: aName, missing: bName) }
            guard let module = base.modulesByTensor[baseName] else {
                throw GGUFAdapterError.missingBaseTensor(file: path, tensor: aName, baseTensor: baseName, baseFile: base.source, baseLayers: base.layerCount)
            }
            let aInfo = try file.requireTensorInfo(aName), bInfo = try file.requireTensorInfo(bName)
            let r = bInfo.dimensions.first ?? 0
            guard aInfo.dimensions == [module.inFeatures, r] else {
                throw GGUFAdapterError.shapeMismatch(file: path, tensor: aName, expected: [module.inFeatures, r], got: aInfo.dimensions, baseTensor: baseName)
            }
            guard bInfo.dimensions == [r, module.outFeatures] else {
                throw GGUFAdapterError.shapeMismatch(file: path, tensor: bName, expected: [r, module.outFeatures], got: bInfo.dimensions, baseTensor: baseName)
            }
            let a = try file.tensor(aName)               // [r, in]
            var b = try file.tensor(bName)               // [out, r]
            if let heads = module.ropeHeads { b = GGUFWeights.reorderRows(b, GGUFWeights.huggingFaceRowOrder(rows: b.shape[0], heads: heads)) }
            pairs.append(GGUFLoRAPair(module: module.path, a: a, b: b))
        }
        guard !pairs.isEmpty else { throw GGUFAdapterError.unsupported(file: path, subject: "tensors", reason: "no .lora_a/.lora_b pairs") }

        let storedText = file.metadata[peftConfigKey]?.stringValue
        let config: LoRAConfig
        if let storedText {
            config = try LoRAConfig(json: try JSONValue.parseObject(Data(storedText.utf8), source: path + ": " + peftConfigKey), source: path + ": " + peftConfigKey)
            try config.validate()
            let scaleInB = file.metadata[scaleInBKey]?.boolValue ?? false
            pairs = try pairs.map { pair in
                let resolved = try config.resolved(for: pair.module)
                guard resolved.r == pair.a.shape[0] else {
                    throw GGUFAdapterError.unsupported(file: path, subject: pair.module, reason: "rank \(pair.a.shape[0]) differs from the stored config's r = \(resolved.r)")
                }
                guard scaleInB, resolved.scaling != 0 else { return pair }
                let inverse = Float(1 / resolved.scaling)
                let b = pair.b.withUnsafeBufferPointer { src in Tensor(shape: pair.b.shape) { for i in 0..<src.count { $0[i] = src[i] * inverse } } }
                return GGUFLoRAPair(module: pair.module, a: pair.a, b: b)
            }
        } else {
            config = inferredConfig(pairs, alpha: alpha)
        }
        return GGUFLoRAContents(config: config, storedConfigJSON: storedText, pairs: pairs, alpha: alpha)
    }

    /// A PEFT config for an adapter from another tool: the most common rank as r, other ranks in rank_pattern;
    /// lora_alpha = the file's alpha (alpha 0 means scale 1, i.e. alpha = r for each module); target_modules the
    /// projection names when every adapted layer has the same set, else the full module paths.
    static func inferredConfig(_ pairs: [GGUFLoRAPair], alpha: Float) -> LoRAConfig {
        let ranks = pairs.map { $0.a.shape[0] }
        let counts = Dictionary(ranks.map { ($0, 1) }, uniquingKeysWith: +)
        let r = counts.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }!.key
        var config = LoRAConfig(r: r, loraAlpha: alpha != 0 ? Double(alpha) : Double(r))
        for (pair, rank) in zip(pairs, ranks) where rank != r {
            config.rankPattern.append((pair.module, rank))
            if alpha == 0 { config.alphaPattern.append((pair.module, Double(rank))) }
        }
        func leaf(_ path: String) -> String { String(path.split(separator: ".").last ?? "") }
        func layer(_ path: String) -> String { path.split(separator: ".").dropLast().joined(separator: ".") }
        let leaves = Set(pairs.map { leaf($0.module) })
        var byLayer: [String: Set<String>] = [:]
        for p in pairs { byLayer[layer(p.module), default: []].insert(leaf(p.module)) }
        // Leaf names would also match layers the adapter skips; full paths target exactly the adapted modules.
        let layerPaths = Set(pairs.map { layer($0.module) })
        let uniform = byLayer.values.allSatisfy { $0 == leaves } && layerPaths.count == layerCountGuess(pairs)
        config.targetModules = .names(uniform ? leaves.sorted() : pairs.map(\.module))
        return config
    }

    /// Decoder layers an adapter touches when it covers all of them: 1 + the highest layer index seen.
    private static func layerCountGuess(_ pairs: [GGUFLoRAPair]) -> Int {
        let indices = pairs.compactMap { p -> Int? in
            let parts = p.module.split(separator: ".")
            return parts.count > 2 && parts[1] == "layers" ? Int(parts[2]) : nil
        }
        return (indices.max() ?? -1) + 1 + (pairs.contains { $0.module == "lm_head" } ? 1 : 0)
    }

    /// Attaches a GGUF adapter to `model` as adapter `name` (all or nothing). Returns the PEFT config.
    @discardableResult
    public static func load(into model: LlamaModel, from url: URL, as name: String = "default") throws -> LoRAConfig {
        let contents = try read(url, base: try GGUFLoRABase(model: model, source: "the loaded model"))
        var branches: [(AdaptedLinear, LoRABranch)] = []
        for pair in contents.pairs {
            guard let layer = model.linear(at: pair.module) else {
                throw PEFTError.unknownModule(pair.module, available: model.adaptedLinears.map(\.path))
            }
            guard layer.adapter(named: name) == nil else { throw PEFTError.adapterExists(name) }
            let resolved = try contents.config.resolved(for: pair.module)
            branches.append((layer, try LoRABranch(a: Variable(pair.a, requiresGrad: true, name: pair.module + ".lora_A.weight"),
                                                   b: Variable(pair.b, requiresGrad: true, name: pair.module + ".lora_B.weight"),
                                                   alpha: resolved.alpha, useRSLoRA: contents.config.useRSLoRA,
                                                   dropout: Float(contents.config.loraDropout))))
        }
        for (layer, branch) in branches { try layer.addAdapter(name, branch) }
        return contents.config
    }

    /// Writes a GGUF adapter back as a PEFT adapter directory (adapter_config.json: the stored original when
    /// LoRAKit wrote the file, else the inferred config; adapter_model.safetensors: F32 factors).
    public static func convertToPEFT(_ url: URL, base: GGUFLoRABase, to directory: URL, overwrite: Bool = false) throws -> GGUFLoRAContents {
        let contents = try read(url, base: base)
        let fm = FileManager.default
        if fm.fileExists(atPath: directory.path), !overwrite, !((try? fm.contentsOfDirectory(atPath: directory.path))?.isEmpty ?? false) {
            throw GGUFAdapterError.unsupported(file: directory.path, subject: "output", reason: "exists and is not empty; pass --overwrite to replace it")
        }
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        let entries = contents.pairs.flatMap { p in
            [SafeTensorsEntry.float(keyPrefix + p.module + ".lora_A.weight", p.a), SafeTensorsEntry.float(keyPrefix + p.module + ".lora_B.weight", p.b)]
        }
        try SafeTensorsWriter.write(entries, metadata: ["format": "pt"], to: directory.appendingPathComponent(AdapterFiles.weightsName))
        let configData = try contents.storedConfigJSON.map { Data($0.utf8) } ?? JSONValue.serialize(contents.config.jsonObject())
        try AtomicFile.write(configData, to: directory.appendingPathComponent(AdapterFiles.configName))
        return contents
    }
}

/// Adapters from any file LoRAKit reads: a PEFT directory (LoRA or AdaLoRA) or a llama.cpp GGUF LoRA file.
public enum ModelAdapters {
    /// Whether `url` names a GGUF adapter file rather than a PEFT directory.
    public static func isGGUF(_ url: URL) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && !isDirectory.boolValue
            && (url.pathExtension.lowercased() == "gguf" || (try? FileHandle(forReadingFrom: url).read(upToCount: 4)) == Data("GGUF".utf8))
    }

    /// Loads the adapter at `url` onto `model` as adapter `name`.
    @discardableResult
    public static func load(into model: LlamaModel, from url: URL, as name: String = "default") throws -> LoadedAdapterConfig {
        if isGGUF(url) { return .lora(try GGUFLoRAAdapter.load(into: model, from: url, as: name)) }
        return try AdapterFiles.load(into: model, from: url, as: name)
    }
}
