// LoRA adapters in llama.cpp's GGUF form, both ways (spec: shared/specs/gguf-lora.md).
//   metadata  general.architecture = the base's, general.type = "adapter", adapter.type = "lora",
//             adapter.lora.alpha (f32); llama.cpp scales each pair by alpha / r (r = lora_b ne0), or by 1 when
//             alpha is 0 or missing.
//   tensors   "<base tensor>.lora_a" = PEFT lora_A [r, in] as is (ggml ne = (in, r)),
//             "<base tensor>.lora_b" = PEFT lora_B [out, r] (ne = (r, out)); for architecture llama the rows of
//             q/k lora_B are permuted like the base's q/k rows (P·(B·A) = (P·B)·A), lora_A is never touched.
// GGUF has one alpha per file. Plain LoRA (any rank_pattern) writes lora_alpha and B unchanged; rsLoRA with one
// rank writes alpha = lora_alpha·√r; anything else (alpha_pattern, rsLoRA with several ranks, alpha 0) bakes each
// module's PEFT scale into B and writes alpha 0, so llama.cpp applies exactly PEFT's update in every case.
// LoRAKit also stores the original adapter_config.json (lorakit.peft.adapter_config) and whether B holds the scale,
// so GGUF → PEFT gives back the same config and, unless the scale was baked, bit-identical F32 tensors. Files from
// other tools (convert_lora_to_gguf.py) read back with a config inferred from their tensors.
import Foundation
import TensorCore
import Autograd
import Formats
import PEFT

/// What an export wrote.
public struct GGUFLoRAExportSummary: Sendable {
    /// Hugging Face module paths, in model order.
    public let modules: [String]
    public let alpha: Float
    /// Whether each module's PEFT scale was multiplied into lora_b (alpha is then 0).
    public let scaleInB: Bool
    /// lora_b tensors written as F16 because Q8_0 needs ne0 = r to be a multiple of 32 (as llama.cpp's converter does).
    public let f16Fallbacks: [String]
    public let architecture: String
}

/// One module's factors in PEFT layout.
public struct GGUFLoRAPair {
    public let module: String
    /// [r, in] and [out, r], Hugging Face row order.
    public let a: Tensor, b: Tensor
}

/// A GGUF adapter read back: its PEFT config and factors.
public struct GGUFLoRAContents {
    public let config: LoRAConfig
    /// The adapter_config.json LoRAKit stored at export, verbatim (nil for files from other tools).
    public let storedConfigJSON: String?
    public let pairs: [GGUFLoRAPair]
    public let alpha: Float
}

public enum GGUFLoRAAdapter {
    public static let peftConfigKey = "lorakit.peft.adapter_config"
    public static let scaleInBKey = "lorakit.lora_b.includes_scale"
    /// Tensor types an adapter can be written in (llama-export-lora refuses quantized adapters; llama.cpp's runtime
    /// takes any type).
    public static let writableTypes: [GGMLType] = [.f32, .f16, .bf16, .q8_0]
    static let keyPrefix = "base_model.model."

    // MARK: PEFT → GGUF

    /// Converts the PEFT LoRA adapter in `directory` into a llama.cpp adapter for `base`, written atomically to `url`.
    @discardableResult
    public static func export(peftAdapter directory: URL, base: GGUFLoRABase, to url: URL, type: GGMLType = .f32,
                              overwrite: Bool = false) throws -> GGUFLoRAExportSummary {
        guard writableTypes.contains(type) else {
            throw GGUFAdapterError.unsupported(file: url.path, subject: "tensor type", reason: "\(type.name) (use one of \(writableTypes.map(\.name).joined(separator: ", ")))")
        }
        let configURL = directory.appendingPathComponent(AdapterFiles.configName)
        let weightsURL = directory.appendingPathComponent(AdapterFiles.weightsName)
        let (config, configText) = try readPEFTConfig(configURL)
        guard FileManager.default.fileExists(atPath: weightsURL.path) else { throw PEFTError.file(path: weightsURL.path, reason: "not found") }
        let weights = try SafeTensorsFile(contentsOf: weightsURL)
        let pairs = try peftPairs(weights, config: config, base: base)

        // One alpha for the file (see the header comment for the three cases).
        let ranks = Set(pairs.map { $0.a.shape[0] })
        var alpha: Float = 0
        var scaleInB = true
        if config.alphaPattern.isEmpty && config.loraAlpha != 0 {
            if !config.useRSLoRA { alpha = Float(config.loraAlpha); scaleInB = false }
            else if ranks.count == 1 { alpha = Float(config.loraAlpha * Double(ranks.first!).squareRoot()); scaleInB = false }
        }

        var writer = try GGUFWriter()
        writer.set("general.architecture", .string(base.architecture.name))
        writer.set("general.type", .string("adapter"))
        writer.set("adapter.type", .string("lora"))
        writer.set("adapter.lora.alpha", .float32(alpha))
        if type == .q8_0 { writer.set("general.quantization_version", .uint32(2)) }
        writer.set(peftConfigKey, .string(configText))
        writer.set(scaleInBKey, .bool(scaleInB))
        var fallbacks: [String] = []
        for pair in pairs {
            let module = base.modulesByPath[pair.module]!
            var b = pair.b
            if scaleInB {
                let scaling = Float(try config.resolved(for: pair.module).scaling)
                b = b.withUnsafeBufferPointer { src in Tensor(shape: b.shape) { for i in 0..<src.count { $0[i] = src[i] * scaling } } }
            }
            if let heads = module.ropeHeads { b = GGUFWeights.reorderRows(b, ggufRowOrder(rows: b.shape[0], heads: heads)) }
            let aName = module.tensorName + ".lora_a", bName = module.tensorName + ".lora_b"
            try writer.addTensor(name: aName, pair.a, as: type.blockSize > 1 && pair.a.shape[1] % type.blockSize != 0 ? .f16 : type)
            let bType: GGMLType = type.blockSize > 1 && b.shape[1] % type.blockSize != 0 ? .f16 : type
            if bType != type { fallbacks.append(bName) }
            try writer.addTensor(name: bName, b, as: bType)
        }
        try writer.write(to: url, overwrite: overwrite)
        return GGUFLoRAExportSummary(modules: pairs.map(\.module), alpha: alpha, scaleInB: scaleInB, f16Fallbacks: fallbacks,
                                     architecture: base.architecture.name)
    }

    /// The config of a PEFT adapter directory, refusing what GGUF cannot represent.
    static func readPEFTConfig(_ url: URL) throws -> (LoRAConfig, String) {
        guard FileManager.default.fileExists(atPath: url.path) else { throw PEFTError.file(path: url.path, reason: "not found") }
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw PEFTError.file(path: url.path, reason: "cannot read (\(error.localizedDescription))") }
        let object = try JSONValue.parseObject(data, source: url.path)
        let peftType = object["peft_type"]?.stringValue ?? "missing"
        guard peftType == "LORA" else {
            throw GGUFAdapterError.unsupported(file: url.path, subject: "peft_type \(peftType)",
                reason: "only LoRA adapters have a GGUF adapter form; merge others into the model with `lorakit merge --to gguf`")
        }
        if object["use_dora"]?.boolValue == true {
            throw GGUFAdapterError.unsupported(file: url.path, subject: "use_dora",
                reason: "DoRA's magnitude vector has no GGUF adapter form; merge it with `lorakit merge --to gguf`")
        }
        if let bias = object["bias"]?.stringValue, bias != "none" {
            throw GGUFAdapterError.unsupported(file: url.path, subject: "bias = \(bias)", reason: "llama.cpp adapters carry no bias tensors")
        }
        if let saved = object["modules_to_save"]?.arrayValue, !saved.isEmpty {
            throw GGUFAdapterError.unsupported(file: url.path, subject: "modules_to_save",
                reason: "fully trained modules have no GGUF adapter form; merge the adapter with `lorakit merge --to gguf`")
        }
        let config = try LoRAConfig(json: object, source: url.path)
        try config.validate()
        return (config, String(decoding: data, as: UTF8.self))
    }

    /// Every lora_A/lora_B pair of a PEFT weights file, checked against the base and the config, in model order.
    static func peftPairs(_ file: SafeTensorsFile, config: LoRAConfig, base: GGUFLoRABase) throws -> [GGUFLoRAPair] {
        var modules: [String] = []
        for name in file.names {
            guard name.hasPrefix(keyPrefix) else { throw GGUFAdapterError.unexpectedTensor(file: file.path, tensor: name) }
            let rest = String(name.dropFirst(keyPrefix.count))
            if rest.hasSuffix(".lora_A.weight") { modules.append(String(rest.dropLast(".lora_A.weight".count))); continue }
            if rest.hasSuffix(".lora_B.weight") { continue }
            if rest.contains("lora_magnitude_vector") {
                throw GGUFAdapterError.unsupported(file: file.path, subject: name, reason: "DoRA magnitude vectors have no GGUF adapter form")
            }
            if rest.contains("lora_embedding_") {
                throw GGUFAdapterError.unsupported(file: file.path, subject: name, reason: "embedding LoRAs are not exported (SmolLM-style tied embeddings would also change the output head)")
            }
            throw GGUFAdapterError.unexpectedTensor(file: file.path, tensor: name)
        }
        let order = Dictionary(GGUFLoRABase.projectionPathsOrder(base), uniquingKeysWith: { a, _ in a })
        var pairs: [GGUFLoRAPair] = []
        for module in modules {
            let aKey = keyPrefix + module + ".lora_A.weight", bKey = keyPrefix + module + ".lora_B.weight"
            guard let target = base.modulesByPath[module] else {
                guard let tensorName = GGUFLoRABase.tensorName(forPath: module) else {
                    throw GGUFAdapterError.unsupported(file: file.path, subject: aKey, reason: "module '\(module)' has no llama.cpp tensor")
                }
                throw GGUFAdapterError.missingBaseTensor(file: file.path, tensor: aKey, baseTensor: tensorName, baseFile: base.source, baseLayers: base.layerCount)
            }
            guard file.contains(bKey) else { throw GGUFAdapterError.missingPair(file: file.path, tensor: aKey, missing: bKey) }
            let a = try file.tensor(aKey), b = try file.tensor(bKey)
            let r = a.shape.first ?? 0
            guard a.rank == 2, a.shape[1] == target.inFeatures else {
                throw GGUFAdapterError.shapeMismatch(file: file.path, tensor: aKey, expected: [target.inFeatures, r], got: a.shape.reversed(), baseTensor: target.tensorName)
            }
            guard b.shape == [target.outFeatures, r] else {
                throw GGUFAdapterError.shapeMismatch(file: file.path, tensor: bKey, expected: [r, target.outFeatures], got: b.shape.reversed(), baseTensor: target.tensorName)
            }
            let resolved = try config.resolved(for: module)
            guard resolved.r == r else {
                throw GGUFAdapterError.unsupported(file: file.path, subject: aKey, reason: "rank \(r) differs from the config's r = \(resolved.r) for this module")
            }
            pairs.append(GGUFLoRAPair(module: module, a: a, b: b))
        }
        guard !pairs.isEmpty else { throw GGUFAdapterError.unsupported(file: file.path, subject: "tensors", reason: "no lora_A/lora_B pairs") }
        return pairs.sorted { (order[$0.module] ?? .max) < (order[$1.module] ?? .max) }
    }

    /// For each GGUF row, the Hugging Face row it comes from (the inverse of `GGUFWeights.huggingFaceRowOrder`).
    static func ggufRowOrder(rows: Int, heads: Int) -> [Int] {
        let hfOrder = GGUFWeights.huggingFaceRowOrder(rows: rows, heads: heads)
        var inverse = [Int](repeating: 0, count: rows)
        for (hf, gguf) in hfOrder.enumerated() { inverse[gguf] = hf }
        return inverse
    }
}

extension GGUFLoRABase {
    /// (module path, position) in model order, for sorting pairs.
    static func projectionPathsOrder(_ base: GGUFLoRABase) -> [(String, Int)] {
        let names = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
        let paths = (0..<base.layerCount).flatMap { i in names.map { "model.layers.\(i).\($0)" } } + ["lm_head"]
        return paths.enumerated().map { ($1, $0) }
    }
}
