// A LoRA adapter as plain matrices by module (no model): what adapter algebra reads and writes. Loaded from and
// saved to PEFT's files, taken from or attached to an `AdaptableModel`.
import Foundation
import TensorCore
import Autograd
import Formats

public struct LoRAAdapterMatrices {
    /// One adapted module: A [r, in], B [out, r] and the scaling s (α/r or α/√r after patterns).
    public struct Module {
        public var path: String
        public var a: Tensor
        public var b: Tensor
        public var scaling: Float
        public init(path: String, a: Tensor, b: Tensor, scaling: Float) { self.path = path; self.a = a; self.b = b; self.scaling = scaling }
        /// s·B·A [out, in].
        public var delta: Tensor { Tensor.matmul(b, a, alpha: scaling) }
    }

    public var config: LoRAConfig
    /// In file (or model) order.
    public var modules: [Module]

    public init(config: LoRAConfig, modules: [Module]) { self.config = config; self.modules = modules }

    public func module(_ path: String) -> Module? { modules.first { $0.path == path } }

    /// Reads a PEFT LoRA adapter directory. Modules are the ones the weights file holds (`…<module>.lora_A.weight`
    /// with its lora_B); rank and scaling come from the tensors and the config's patterns.
    public static func load(from directory: URL) throws -> LoRAAdapterMatrices {
        let (configURL, weightsURL) = try AdapterFiles.existingFiles(in: directory)
        let config = try LoRAConfig.load(from: configURL)
        try config.validate()
        let file = try SafeTensorsFile(contentsOf: weightsURL)
        let prefix = AdapterFiles.keyPrefix, suffix = ".lora_A.weight"
        var modules: [Module] = []
        for name in file.names.sorted() where name.hasPrefix(prefix) && name.hasSuffix(suffix) {
            let path = String(name.dropFirst(prefix.count).dropLast(suffix.count))
            let bKey = prefix + path + ".lora_B.weight"
            guard file.contains(bKey) else { throw PEFTError.missingTensor(bKey, file: weightsURL.path) }
            let a = try file.tensor(name), b = try file.tensor(bKey)
            guard a.rank == 2, b.rank == 2, b.dim(1) == a.dim(0) else {
                throw PEFTError.shapeMismatch(tensor: bKey, expected: [b.shape.first ?? 0, a.shape.first ?? 0], got: b.shape)
            }
            let (_, alpha, _) = try config.resolved(for: path)
            let r = Double(a.dim(0))
            let scaling = r == 0 ? 0 : Float(config.useRSLoRA ? alpha / r.squareRoot() : alpha / r)
            modules.append(Module(path: path, a: a, b: b, scaling: scaling))
        }
        if modules.isEmpty { throw PEFTError.file(path: weightsURL.path, reason: "no LoRA tensors (…lora_A.weight / …lora_B.weight) found") }
        return LoRAAdapterMatrices(config: config, modules: modules)
    }

    /// The LoRA adapter `name` of a model (DoRA and other kinds are refused, naming the module).
    public init(model: AdaptableModel, adapter name: String, config: LoRAConfig) throws {
        var modules: [Module] = []
        for layer in model.adaptedLinears {
            guard let branch = layer.adapter(named: name) else { continue }
            if branch is DoRABranch {
                throw PEFTError.doraUnsupported(adapter: name, module: layer.path, reason: "DoRA adapters cannot be combined by weighted addition (their magnitude vectors do not add; PEFT issue #3761)")
            }
            guard let lora = branch as? LoRABranch else {
                throw PEFTError.incompatibleAdapters(first: name, second: name, module: layer.path, reason: "only LoRA adapters can be combined (this one is \(type(of: branch)))")
            }
            modules.append(Module(path: layer.path, a: lora.a.value, b: lora.b.value, scaling: lora.scaling))
        }
        guard !modules.isEmpty else { throw PEFTError.unknownAdapter(name, available: model.adapterNames) }
        self.init(config: config, modules: modules)
    }

    /// Writes the adapter in PEFT's format (both files atomically).
    public func save(to directory: URL) throws {
        var entries: [SafeTensorsEntry] = []
        for m in modules {
            entries.append(.float(AdapterFiles.keyPrefix + m.path + ".lora_A.weight", m.a))
            entries.append(.float(AdapterFiles.keyPrefix + m.path + ".lora_B.weight", m.b))
        }
        try AdapterFiles.writeFiles(entries, config: config.jsonObject(), to: directory)
    }

    /// Attaches the adapter to `model` as `name` (every module must exist with matching shapes; nothing is
    /// attached if one does not).
    public func attach(to model: AdaptableModel, as name: String) throws {
        var branches: [(AdaptedLinear, LoRABranch)] = []
        for m in modules {
            guard let layer = model.linear(at: m.path) else { throw PEFTError.unknownModule(m.path, available: model.adaptedLinears.map(\.path)) }
            if layer.adapter(named: name) != nil { throw PEFTError.adapterExists(name) }
            guard m.a.shape == [m.a.dim(0), layer.inFeatures], m.b.shape == [layer.outFeatures, m.a.dim(0)] else {
                throw PEFTError.shapeMismatch(tensor: m.path + ".lora_B.weight", expected: [layer.outFeatures, m.a.dim(0)], got: m.b.shape)
            }
            let r = Double(m.a.dim(0))
            // alpha chosen so that the branch's scaling is exactly m.scaling.
            let alpha = Double(m.scaling) * (config.useRSLoRA ? r.squareRoot() : r)
            branches.append((layer, try LoRABranch(a: Variable(m.a, requiresGrad: true, name: m.path + ".lora_A.weight"),
                                                   b: Variable(m.b, requiresGrad: true, name: m.path + ".lora_B.weight"),
                                                   alpha: alpha, useRSLoRA: config.useRSLoRA, dropout: Float(config.loraDropout))))
        }
        for (layer, branch) in branches { try layer.addAdapter(name, branch) }
    }
}

extension AdaptableModel {
    /// PEFT's `add_weighted_adapter`: combines adapters already on the model into a new adapter `name` (not
    /// activated). `configs` gives each source's config (for the new adapter's fields).
    @discardableResult
    public func addWeightedAdapter(_ sources: [(name: String, weight: Double, config: LoRAConfig)], as name: String,
                                   method: AdapterCombinationMethod, rank: Int? = nil, density: Double? = nil,
                                   seed: UInt64 = 0) throws -> CombinationResult {
        if adapterNames.contains(name) { throw PEFTError.adapterExists(name) }
        let inputs = try sources.map { s -> CombinationSource in
            guard adapterNames.contains(s.name) else { throw PEFTError.unknownAdapter(s.name, available: adapterNames) }
            return CombinationSource(name: s.name, weight: s.weight, adapter: try LoRAAdapterMatrices(model: self, adapter: s.name, config: s.config))
        }
        let result = try WeightedAdapterCombination.combine(inputs, method: method, rank: rank, density: density, seed: seed)
        try result.adapter.attach(to: self, as: name)
        return result
    }
}
