// A model with its adapter merged in (W ← W + ΔW), saved as a Hugging Face checkpoint directory that transformers,
// `ModelLoader` and `lorakit generate` load without PEFT:
//   config.json          the base's config.json (dtype updated), or one written from the GGUF metadata
//   model.safetensors    every weight under its Hugging Face name, q/k rows in Hugging Face order, F32/F16/BF16;
//                        no lm_head.weight when the head is tied to the embedding
//   tokenizer files      copied from a Hugging Face base, or written from the GGUF vocabulary and merges
//   generation_config.json
// The directory is assembled under a temporary name beside the destination and renamed into place, so a failed
// merge never leaves a half-written model and never touches an existing one it was not allowed to replace.
import Foundation
import TensorCore
import Formats
import PEFT
import Tokenizers
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Element type of the saved weights.
public enum MergedWeightPrecision: String, CaseIterable, Sendable {
    case f32, f16, bf16

    /// The safetensors dtype.
    public var safeTensorsDType: SafeTensorsDType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        }
    }

    /// The torch dtype name written to config.json.
    public var torchName: String {
        switch self {
        case .f32: return "float32"
        case .f16: return "float16"
        case .bf16: return "bfloat16"
        }
    }
}

/// Why a merged model could not be written.
public enum MergedModelError: Error, CustomStringConvertible, Equatable {
    /// The destination exists, is not empty, and replacing it was not allowed.
    case outputNotEmpty(path: String)
    /// The destination exists and is a file.
    case outputNotADirectory(path: String)
    /// The destination is the base model itself.
    case outputIsSource(path: String)
    /// The config cannot be written so that it reads back the same.
    case unsupportedConfig(reason: String)
    /// A file operation failed.
    case writeFailed(path: String, reason: String)
    /// A weight to be written holds NaN/Inf, or values the chosen precision cannot hold (|x| > 65504 in f16).
    case nonFiniteWeight(tensor: String, reason: String)

    public var description: String {
        switch self {
        case let .outputNotEmpty(path): return "\(path): exists and is not empty; pass --overwrite to replace it"
        case let .outputNotADirectory(path): return "\(path): exists and is not a directory"
        case let .outputIsSource(path): return "\(path): is the base model itself; choose another output directory"
        case let .unsupportedConfig(reason): return "cannot write config.json: \(reason)"
        case let .writeFailed(path, reason): return "\(path): cannot write (\(reason))"
        case let .nonFiniteWeight(tensor, reason): return "merged weight '\(tensor)' \(reason); nothing was written"
        }
    }
}

/// What a merge wrote.
public struct MergedModelSummary: Sendable {
    public let outputDirectory: URL
    /// Module paths whose weights received an adapter's ΔW.
    public let mergedModules: [String]
    /// "LORA" or "ADALORA" (PEFT's peft_type); nil when no adapter was merged.
    public let adapterType: String?
    /// Files in the directory, sorted.
    public let files: [String]
    /// Tensors in model.safetensors and their bytes.
    public let tensorCount: Int
    public let weightBytes: Int
}

public enum MergedModelWriter {
    /// Tokenizer and generation files copied from a Hugging Face base directory when present.
    public static let copiedFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                                     "chat_template.jinja", "vocab.json", "merges.txt"]

    /// Loads `model` (a .gguf file, dequantized to Float32, or a Hugging Face directory), applies the PEFT adapter in
    /// `adapter` (LoRA or AdaLoRA), merges it into the weights and writes the result to `output`.
    @discardableResult
    public static func merge(model: URL, adapter: URL, to output: URL, precision: MergedWeightPrecision = .f32,
                             overwrite: Bool = false) throws -> MergedModelSummary {
        try checkDestination(output, source: model, overwrite: overwrite)  // fail before the slow part
        let loaded = try ModelLoader.load(model, options: ModelLoadOptions(keepQuantized: false))
        let config = try ModelAdapters.load(into: loaded.model, from: adapter)  // PEFT directory or GGUF LoRA file
        try loaded.model.mergeAdapters(safe: true)
        let merged = loaded.model.adaptedLinears.filter { !$0.mergedAdapterNames.isEmpty }.map(\.path)
        return try write(loaded, to: output, precision: precision, overwrite: overwrite, mergedModules: merged, adapterType: config.peftType)
    }

    /// Writes `loaded` (adapters already merged, or none) as a Hugging Face directory at `output`.
    @discardableResult
    public static func write(_ loaded: LoadedModel, to output: URL, precision: MergedWeightPrecision = .f32, overwrite: Bool = false,
                             mergedModules: [String] = [], adapterType: String? = nil) throws -> MergedModelSummary {
        let sourceURL = URL(fileURLWithPath: loaded.source)
        try checkDestination(output, source: sourceURL, overwrite: overwrite)
        var isDirectory: ObjCBool = false
        let sourceIsDirectory = FileManager.default.fileExists(atPath: sourceURL.path, isDirectory: &isDirectory) && isDirectory.boolValue
        let model = loaded.model

        // config.json: the base's own (keeps fields we do not model), else one from the GGUF metadata.
        var configObject: [String: JSONValue]
        let baseConfig = sourceURL.appendingPathComponent("config.json")
        if sourceIsDirectory {
            configObject = try JSONValue.parseObject(try readData(baseConfig), source: baseConfig.path)
            configObject["quantization_config"] = nil
            configObject["torch_dtype"] = .string(precision.torchName)
            configObject["dtype"] = .string(precision.torchName)
        } else {
            guard model.config.hasHuggingFaceSpelling else {
                throw MergedModelError.unsupportedConfig(reason: "an o_proj bias without q/k/v biases has no Hugging Face model_type")
            }
            configObject = model.config.huggingFaceConfigJSON(dtype: precision.torchName, padTokenID: loaded.tokenizer?.specialTokenIDs.padding)
        }
        let reread = try LlamaConfig(huggingFaceConfig: configObject, source: "config.json")
        guard reread == model.config else {
            throw MergedModelError.unsupportedConfig(reason: "it would read back as \(reread) instead of \(model.config)")
        }

        let tensors = huggingFaceTensors(of: model)
        try checkRepresentable(tensors, precision)
        let parent = output.deletingLastPathComponent()
        do { try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true) } catch {
            throw MergedModelError.writeFailed(path: parent.path, reason: error.localizedDescription)
        }
        let staging = parent.appendingPathComponent(".\(output.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do { try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: false) } catch {
            throw MergedModelError.writeFailed(path: staging.path, reason: error.localizedDescription)
        }
        var published = false
        defer { if !published { try? FileManager.default.removeItem(at: staging) } }

        func put(_ data: Data, _ name: String) throws {
            do { try AtomicFile.write(data, to: staging.appendingPathComponent(name)) } catch {
                throw MergedModelError.writeFailed(path: output.appendingPathComponent(name).path, reason: "\(error)")
            }
        }
        try put(try JSONValue.serialize(configObject), "config.json")
        try SafeTensorsWriter.write(tensors.map { SafeTensorsEntry.float($0.0, $0.1, as: precision.safeTensorsDType) },
                                    metadata: ["format": "pt"], to: staging.appendingPathComponent("model.safetensors"))
        if sourceIsDirectory {
            for name in copiedFiles where FileManager.default.fileExists(atPath: sourceURL.appendingPathComponent(name).path) {
                do { try FileManager.default.copyItem(at: sourceURL.appendingPathComponent(name), to: staging.appendingPathComponent(name)) } catch {
                    throw MergedModelError.writeFailed(path: output.appendingPathComponent(name).path, reason: error.localizedDescription)
                }
            }
        } else {
            if let tokenizer = loaded.tokenizer {
                let files = try tokenizer.huggingFaceFiles(chatTemplate: loaded.chatTemplate, modelMaxLength: model.config.contextLength,
                                                           path: output.appendingPathComponent("tokenizer.json").path)
                try put(files.tokenizer, "tokenizer.json")
                try put(files.tokenizerConfig, "tokenizer_config.json")
                try put(files.specialTokensMap, "special_tokens_map.json")
            }
            try put(try JSONValue.serialize(generationConfig(model.config, padding: loaded.tokenizer?.specialTokenIDs.padding)),
                    "generation_config.json")
        }
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: staging.path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        try publish(staging, as: output)
        published = true
        return MergedModelSummary(outputDirectory: output, mergedModules: mergedModules, adapterType: adapterType, files: files,
                                  tensorCount: tensors.count,
                                  weightBytes: tensors.reduce(0) { $0 + $1.1.count * precision.safeTensorsDType.byteSize })
    }

    /// Refuses to write a weight that is, or would become, non-finite: a NaN/Inf from the merge or the base, or an
    /// f16 overflow (|x| > 65504 rounds to Inf), which would give a model that loads and then outputs garbage.
    static func checkRepresentable(_ tensors: [(String, Tensor)], _ precision: MergedWeightPrecision) throws {
        for (name, tensor) in tensors {
            if let bad = tensor.nonFiniteReport() { throw MergedModelError.nonFiniteWeight(tensor: name, reason: "holds \(bad)") }
            guard precision == .f16 else { continue }
            let largest = tensor.withUnsafeBufferPointer { $0.reduce(Float(0)) { max($0, abs($1)) } }
            if largest >= 65520 {  // values from 65520 up round to Inf in f16
                throw MergedModelError.nonFiniteWeight(tensor: name, reason: "has |x| up to \(largest), beyond f16's 65504 (use --dtype bf16 or f32)")
            }
        }
    }

    /// Every weight with its Hugging Face name, in checkpoint order, as dense Float32 (quantized ones dequantized).
    /// A tied head is not listed (it is the embedding).
    public static func huggingFaceTensors(of model: LlamaModel) -> [(String, Tensor)] {
        var out: [(String, Tensor)] = [("model.embed_tokens.weight", model.embedding.denseValue)]
        func add(_ linear: AdaptedLinear) {
            out.append((linear.path + ".weight", linear.base.denseValue))
            if let b = linear.bias { out.append((linear.path + ".bias", b.value)) }
        }
        for (i, layer) in model.layers.enumerated() {
            out.append(("model.layers.\(i).input_layernorm.weight", layer.inputNorm.value))
            for l in layer.linears[0..<4] { add(l) }
            out.append(("model.layers.\(i).post_attention_layernorm.weight", layer.postAttentionNorm.value))
            for l in layer.linears[4...] { add(l) }
        }
        out.append(("model.norm.weight", model.norm.value))
        if let head = model.lmHead { out.append(("lm_head.weight", head.base.denseValue)) }
        return out
    }

    /// generation_config.json for a base without one: its BOS, EOS and padding ids.
    static func generationConfig(_ c: LlamaConfig, padding: Int?) -> [String: JSONValue] {
        c.huggingFaceSpecialTokenFields(padTokenID: padding).merging(["_from_model_config": .bool(true)]) { $1 }
    }

    // MARK: Destination

    /// Throws unless `output` may receive a model: absent, an empty directory, or (with `overwrite`) any directory
    /// other than the source.
    static func checkDestination(_ output: URL, source: URL, overwrite: Bool) throws {
        let out = output.standardizedFileURL.resolvingSymlinksInPath().path
        if out == source.standardizedFileURL.resolvingSymlinksInPath().path { throw MergedModelError.outputIsSource(path: output.path) }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: output.path, isDirectory: &isDirectory) else { return }
        guard isDirectory.boolValue else { throw MergedModelError.outputNotADirectory(path: output.path) }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: output.path)) ?? []
        if !entries.isEmpty && !overwrite { throw MergedModelError.outputNotEmpty(path: output.path) }
    }

    /// Renames the finished `staging` directory to `output`. An existing `output` is first moved aside and deleted
    /// only once the new directory is in place (and moved back if that rename fails).
    static func publish(_ staging: URL, as output: URL) throws {
        var isDirectory: ObjCBool = false
        var aside: URL?
        if FileManager.default.fileExists(atPath: output.path, isDirectory: &isDirectory) {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: output.path)) ?? []
            if entries.isEmpty {
                guard rmdir(output.path) == 0 else { throw MergedModelError.writeFailed(path: output.path, reason: errnoText()) }
            } else {
                let old = output.deletingLastPathComponent()
                    .appendingPathComponent(".\(output.lastPathComponent).old-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
                guard rename(output.path, old.path) == 0 else { throw MergedModelError.writeFailed(path: output.path, reason: "moving aside: \(errnoText())") }
                aside = old
            }
        }
        guard rename(staging.path, output.path) == 0 else {
            let reason = errnoText()
            if let aside { _ = rename(aside.path, output.path) }
            throw MergedModelError.writeFailed(path: output.path, reason: "rename from \(staging.path): \(reason)")
        }
        if let aside { try? FileManager.default.removeItem(at: aside) }
    }

    private static func readData(_ url: URL) throws -> Data {
        do { return try Data(contentsOf: url) } catch {
            throw ModelError.unreadable(path: url.path, reason: "cannot read (\(error.localizedDescription))")
        }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
