// A PEFT adapter read straight from disk, without its base model: adapter_config.json + adapter_model.safetensors,
// tensors grouped per adapted module, each module's scaling resolved from the config, so ΔW = s·B·A can be
// analysed on its own (spectrum, similarity between adapters) or against base weights (amplification).
import Foundation
import TensorCore
import Formats
import PEFT

/// One adapted module: ΔW = scaling · B · A, in the layout of the base weight it would be added to.
public struct AdapterModule: Sendable {
    /// The Hugging Face module path, e.g. `model.layers.0.self_attn.q_proj` (the saved key minus
    /// `base_model.model.` and the `.lora_A.weight` suffix).
    public let path: String
    /// The right factor A: [r, in] (`lora_A.weight`; for AdaLoRA the Q factor `lora_A`).
    public let a: Tensor
    /// The left factor B: [out, r] (`lora_B.weight`; for AdaLoRA P·diag(λ), with `lora_E` folded in).
    public let b: Tensor
    /// s in ΔW = s·B·A: α/r, α/√r with rsLoRA, α/(init_r + 1e-5) for AdaLoRA.
    public let scaling: Double
    /// Embedding LoRA (`lora_embedding_A/B`): PEFT adds (s·B·A)ᵀ to the [vocab, dim] embedding weight.
    public let isEmbedding: Bool

    /// Creates a module from its factors; A [r, in] and B [out, r] must chain and be finite.
    public init(path: String, a: Tensor, b: Tensor, scaling: Double, isEmbedding: Bool = false) throws {
        guard a.rank == 2 else { throw AnalysisError.inconsistentModule(module: path, reason: "lora_A must be 2-D [r, in], got \(a.shape)") }
        guard b.rank == 2 else { throw AnalysisError.inconsistentModule(module: path, reason: "lora_B must be 2-D [out, r], got \(b.shape)") }
        guard b.shape[1] == a.shape[0] else {
            throw AnalysisError.inconsistentModule(module: path, reason: "lora_B \(b.shape) · lora_A \(a.shape) do not chain (need B [out, r], A [r, in])")
        }
        guard scaling.isFinite else { throw AnalysisError.inconsistentModule(module: path, reason: "scaling \(scaling) is not finite") }
        if let i = firstNonFiniteIndex(a) { throw AnalysisError.nonFinite(module: path, tensor: "lora_A", index: i) }
        if let i = firstNonFiniteIndex(b) { throw AnalysisError.nonFinite(module: path, tensor: "lora_B", index: i) }
        self.path = path; self.a = a; self.b = b; self.scaling = scaling; self.isEmbedding = isEmbedding
    }

    /// The adapter rank r (the number of rows of A; 0 for an AdaLoRA module pruned away).
    public var rank: Int { a.shape[0] }
    /// The shape of B·A: [out, in].
    public var productShape: [Int] { [b.shape[0], a.shape[1]] }
    /// The shape of ΔW in the base weight's layout: [out, in], or [vocab, dim] for embeddings.
    public var deltaShape: [Int] { isEmbedding ? [a.shape[1], b.shape[0]] : productShape }

    /// ΔW = s·B·A [out, in] (transposed for embeddings), formed densely.
    public func deltaWeight() -> Tensor {
        guard rank > 0 else { return Tensor(zeros: deltaShape) }
        let product = Tensor.matmul(b, a, alpha: Float(scaling))
        return isEmbedding ? product.transposed() : product
    }

    /// Throws when r exceeds min(out, in): such a ΔW cannot have rank r, the adapter does not fit the matrix.
    public func checkRankFitsMatrix() throws {
        if rank > productShape.min()! { throw AnalysisError.rankExceedsMatrix(module: path, rank: rank, shape: deltaShape) }
    }
}

/// A LoRA or AdaLoRA adapter directory as saved by PEFT (or LoRAKit), loaded without a base model.
public struct AdapterWeights: Sendable {
    /// The directory the adapter was read from.
    public let directory: URL
    /// The parsed adapter_config.json.
    public let config: LoRAConfig
    /// `LORA` or `ADALORA` (the config's peft_type).
    public let peftType: String
    /// Adapted modules sorted by path.
    public let modules: [AdapterModule]
    /// Tensors in the file that are not LoRA factors (biases, modules_to_save, …), ignored by the analyses.
    public let ignoredTensors: [String]

    /// Module paths, sorted.
    public var modulePaths: [String] { modules.map(\.path) }

    /// The module at `path`, if adapted.
    public func module(_ path: String) -> AdapterModule? { modules.first { $0.path == path } }

    /// Builds an adapter from modules already in memory (tests, adapters just trained).
    public init(directory: URL, config: LoRAConfig, peftType: String = "LORA", modules: [AdapterModule],
                ignoredTensors: [String] = []) {
        self.directory = directory; self.config = config; self.peftType = peftType
        self.modules = modules.sorted { $0.path < $1.path }; self.ignoredTensors = ignoredTensors
    }

    static let keyPrefix = "base_model.model."

    /// Reads `directory/adapter_config.json` and `directory/adapter_model.safetensors` and groups the factors per
    /// module. Each module's rank must match the config (r, rank_pattern; AdaLoRA: its lora_E), factors must
    /// chain and be finite; errors name the module.
    public static func load(from directory: URL) throws -> AdapterWeights {
        let configURL = directory.appendingPathComponent(AdapterFiles.configName)
        let weightsURL = directory.appendingPathComponent(AdapterFiles.weightsName)
        for url in [configURL, weightsURL] where !FileManager.default.fileExists(atPath: url.path) {
            throw AnalysisError.file(path: url.path, reason: "not found (an adapter directory holds \(AdapterFiles.configName) and \(AdapterFiles.weightsName))")
        }
        let data: Data
        do { data = try Data(contentsOf: configURL) } catch {
            throw AnalysisError.file(path: configURL.path, reason: "cannot read (\(error.localizedDescription))")
        }
        let object = try JSONValue.parseObject(data, source: configURL.path)
        let config = try LoRAConfig(json: object, source: configURL.path)
        try config.validate()
        let peftType = object["peft_type"]?.stringValue ?? "LORA"
        let file = try SafeTensorsFile(contentsOf: weightsURL)

        // Group keys per module: <prefix><module>.lora_{A,B}[.<adapter>].weight, AdaLoRA <module>.lora_{A,B,E},
        // embedding <module>.lora_embedding_{A,B}.
        var factors: [String: [String: String]] = [:]   // module → factor letter → key
        var embeddingModules = Set<String>()
        var ignored: [String] = []
        for key in file.names {
            guard let (module, factor, isEmbedding) = parseKey(key) else { ignored.append(key); continue }
            if factors[module]?[factor] != nil {
                throw AnalysisError.inconsistentModule(module: module, reason: "\(weightsURL.path) holds two lora_\(factor) tensors (several adapters in one file?)")
            }
            factors[module, default: [:]][factor] = key
            if isEmbedding { embeddingModules.insert(module) }
        }
        guard !factors.isEmpty else { throw AnalysisError.noModules(file: weightsURL.path) }

        var modules: [AdapterModule] = []
        for (module, keys) in factors.sorted(by: { $0.key < $1.key }) {
            guard let aKey = keys["A"] else { throw AnalysisError.incompleteModule(module: module, missing: "lora_A", file: weightsURL.path) }
            guard let bKey = keys["B"] else { throw AnalysisError.incompleteModule(module: module, missing: "lora_B", file: weightsURL.path) }
            let a = try file.tensor(aKey)
            var b = try file.tensor(bKey)
            let scaling: Double
            if peftType == "ADALORA" {
                guard let eKey = keys["E"] else { throw AnalysisError.incompleteModule(module: module, missing: "lora_E", file: weightsURL.path) }
                let e = try file.tensor(eKey)
                guard a.rank == 2, b.rank == 2, e.count == a.shape[0], b.shape[1] == e.count else {
                    throw AnalysisError.inconsistentModule(module: module, reason: "AdaLoRA factors A \(a.shape), E \(e.shape), B \(b.shape) do not chain")
                }
                if let i = firstNonFiniteIndex(e) { throw AnalysisError.nonFinite(module: module, tensor: "lora_E", index: i) }
                b = scalingColumns(b, by: e.array)
                // PEFT's SVDLinear: ΔW = B·(A ⊙ E) · α / (ranknum + 1e-5), ranknum = init_r (never updated on pruning).
                let initR = object["init_r"]?.doubleValue ?? 12
                let alpha = config.loraAlpha > 0 ? config.loraAlpha : initR
                scaling = alpha / (initR + 1e-5)
            } else {
                if keys["E"] != nil {
                    throw AnalysisError.inconsistentModule(module: module, reason: "has lora_E but the config's peft_type is \(peftType), not ADALORA")
                }
                let resolved = try config.resolved(for: module)
                guard a.rank == 2, a.shape[0] == resolved.r else {
                    throw AnalysisError.inconsistentModule(module: module, reason: "lora_A has shape \(a.shape) but the config gives r = \(resolved.r) for this module")
                }
                scaling = resolved.scaling
            }
            modules.append(try AdapterModule(path: module, a: a, b: b, scaling: scaling, isEmbedding: embeddingModules.contains(module)))
        }
        return AdapterWeights(directory: directory, config: config, peftType: peftType, modules: modules, ignoredTensors: ignored)
    }

    /// (module, factor letter, is embedding) for a LoRA key, nil for anything else.
    static func parseKey(_ key: String) -> (String, String, Bool)? {
        let name = key.hasPrefix(keyPrefix) ? String(key.dropFirst(keyPrefix.count)) : key
        var parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let hadWeightSuffix = parts.last == "weight"
        if hadWeightSuffix { parts.removeLast() }
        // Old files may keep the adapter name after the factor (".lora_A.default.weight"); never ".lora_B.bias".
        for drop in 0...(hadWeightSuffix ? 1 : 0) where parts.count > 1 + drop {
            let factorPart = parts[parts.count - 1 - drop]
            let module = parts[..<(parts.count - 1 - drop)].joined(separator: ".")
            guard !module.isEmpty else { continue }
            switch factorPart {
            case "lora_A": return (module, "A", false)
            case "lora_B": return (module, "B", false)
            case "lora_E": return (module, "E", false)
            case "lora_embedding_A": return (module, "A", true)
            case "lora_embedding_B": return (module, "B", true)
            default: continue
            }
        }
        return nil
    }
}

/// t [m, n] with column j multiplied by scale[j].
func scalingColumns(_ t: Tensor, by scale: [Float]) -> Tensor {
    let n = t.shape[1]
    var out = t
    out.withUnsafeMutableBufferPointer { p in
        for i in 0..<p.count { p[i] *= scale[i % n] }
    }
    return out
}
