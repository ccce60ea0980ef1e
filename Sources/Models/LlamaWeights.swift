// Weights by Hugging Face name from either checkpoint kind, and the model assembled from them.
//   safetensors: names as stored (model.layers.0.self_attn.q_proj.weight), single file or sharded.
//   GGUF: llama.cpp names (blk.0.attn_q.weight), quantized matrices kept quantized; attn_q/attn_k rows are
//   permuted back from llama.cpp's interleaved-rope order to Hugging Face's rotate_half order.
//
// Why un-permute rather than run the interleaved rope on GGUF's layout: PEFT adapters for q_proj/k_proj are
// trained on the Hugging Face weights, so lora_B's rows are in HF order. Putting the base in HF order makes
// adapter files, merges and the rope identical for both checkpoint kinds. The permutation only reorders whole
// rows, and a quantized row is an independent run of blocks, so quantized weights are reordered without any
// dequantisation (a copy of the q/k bytes, ~0.3 MB per layer for SmolLM2-135M).
import Foundation
import TensorCore
import Autograd
import Formats
import PEFT

/// Source of a model's tensors, addressed by Hugging Face name.
protocol LlamaWeightReader {
    /// Path named in errors.
    var source: String { get }
    func contains(_ name: String) -> Bool
    /// A weight matrix [out, in]. `ropeHeads`: the matrix is q_proj/k_proj with that many heads (GGUF undoes its
    /// rope permutation; Hugging Face files are already in order).
    func matrix(_ name: String, ropeHeads: Int?) throws -> LinearBase
    /// A dense tensor (norm weights, biases).
    func tensor(_ name: String) throws -> Tensor
}

// MARK: - safetensors

/// A Hugging Face checkpoint directory: model.safetensors, or shards listed in model.safetensors.index.json.
final class SafeTensorsWeights: LlamaWeightReader {
    let source: String
    private var files: [String: SafeTensorsFile] = [:]
    /// Tensor name → shard file name.
    private let shardOf: [String: String]
    private let directory: URL

    init(directory: URL) throws {
        self.directory = directory
        source = directory.path
        let single = directory.appendingPathComponent("model.safetensors")
        let index = directory.appendingPathComponent("model.safetensors.index.json")
        if FileManager.default.fileExists(atPath: single.path) {
            let file = try SafeTensorsFile(contentsOf: single)
            files["model.safetensors"] = file
            shardOf = Dictionary(file.names.map { ($0, "model.safetensors") }, uniquingKeysWith: { a, _ in a })
        } else if FileManager.default.fileExists(atPath: index.path) {
            let root: [String: JSONValue]
            do { root = try JSONValue.parseObject(try Data(contentsOf: index), source: index.path) } catch {
                throw ModelError.unreadable(path: index.path, reason: "invalid shard index: \(error)")
            }
            guard let map = root["weight_map"]?.objectValue else { throw ModelError.missingKey(file: index.path, key: "weight_map") }
            var shards: [String: String] = [:]
            for (name, value) in map {
                guard let shard = value.stringValue, !shard.contains("/"), shard.hasSuffix(".safetensors") else {
                    throw ModelError.invalidValue(file: index.path, key: "weight_map.\(name)", reason: "not a .safetensors file name in this directory")
                }
                shards[name] = shard
            }
            shardOf = shards
        } else {
            throw ModelError.unreadable(path: directory.path, reason: "no model.safetensors or model.safetensors.index.json")
        }
    }

    func contains(_ name: String) -> Bool { shardOf[name] != nil }

    private func file(for name: String) throws -> SafeTensorsFile {
        guard let shard = shardOf[name] else { throw ModelError.missingTensor(file: source, tensor: name) }
        if let f = files[shard] { return f }
        let f = try SafeTensorsFile(contentsOf: directory.appendingPathComponent(shard))
        files[shard] = f
        return f
    }

    func matrix(_ name: String, ropeHeads: Int?) throws -> LinearBase {
        let t = try tensor(name)
        guard t.rank == 2 else { throw ModelError.tensorShape(file: source, tensor: name, expected: [-1, -1], got: t.shape) }
        return .dense(Variable(t, requiresGrad: false, name: name))
    }

    func tensor(_ name: String) throws -> Tensor {
        let t = try file(for: name).tensor(name)
        try GGUFWeights.requireFinite(t, name, source)
        return t
    }
}

// MARK: - GGUF

/// A GGUF file read by Hugging Face names.
final class GGUFWeights: LlamaWeightReader {
    let file: GGUFFile
    /// Keep quantized matrices quantized (false: dequantize everything to Float32).
    let keepQuantized: Bool
    /// The file's q/k rows are in llama.cpp's interleaved rope order (architecture llama; not qwen2/qwen3).
    let permutesQueryKeyRows: Bool
    var source: String { file.path }

    init(file: GGUFFile, keepQuantized: Bool, permutesQueryKeyRows: Bool = true) {
        self.file = file; self.keepQuantized = keepQuantized; self.permutesQueryKeyRows = permutesQueryKeyRows
    }

    /// llama.cpp's tensor name for a Hugging Face name (nil for names GGUF has no counterpart for).
    static func ggufName(_ hf: String) -> String? {
        switch hf {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let parts = hf.split(separator: ".").map(String.init)
        guard parts.count == 6, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]) else {
            guard parts.count == 5, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]) else { return nil }
            let norms = ["input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"]
            return norms[parts[3]].map { "blk.\(layer).\($0).\(parts[4])" }
        }
        let names = ["self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                     "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                     "mlp.down_proj": "ffn_down", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm"]
        return names[parts[3] + "." + parts[4]].map { "blk.\(layer).\($0).\(parts[5])" }
    }

    private func info(_ hf: String) throws -> (String, GGUFTensorInfo) {
        guard let name = Self.ggufName(hf), let info = file.tensorInfo(name) else {
            throw ModelError.missingTensor(file: source, tensor: Self.ggufName(hf) ?? hf)
        }
        return (name, info)
    }

    func contains(_ name: String) -> Bool { Self.ggufName(name).map { file.tensorInfo($0) != nil } ?? false }

    func matrix(_ hf: String, ropeHeads requested: Int?) throws -> LinearBase {
        let (name, info) = try info(hf)
        let ropeHeads = permutesQueryKeyRows ? requested : nil
        guard info.dimensions.count == 2 else {
            throw ModelError.tensorShape(file: source, tensor: name, expected: [-1, -1], got: info.shape)
        }
        let rows = info.rowCount
        if let heads = ropeHeads {
            guard heads > 0, rows % (2 * heads) == 0 else {
                throw ModelError.tensorShape(file: source, tensor: name, expected: [heads * 2 * max(1, rows / (2 * max(heads, 1))), info.rowLength], got: info.shape)
            }
        }
        let order = ropeHeads.map { Self.huggingFaceRowOrder(rows: rows, heads: $0) }
        let plain = [GGMLType.f32, .f16, .bf16].contains(info.type)
        if plain || !keepQuantized {
            var t = try file.tensor(name)
            try Self.requireFinite(t, name, source)
            if let order { t = Self.reorderRows(t, order) }
            return .dense(Variable(t, requiresGrad: false, name: hf))
        }
        guard let order else { return .quantized(try Self.requireFinite(try file.quantizedMatrix(name), source)) }
        let bytes = try file.withRawBytes(of: name) { raw -> [UInt8] in
            var out = [UInt8](repeating: 0, count: raw.count)
            out.withUnsafeMutableBytes { dst in
                for (newRow, oldRow) in order.enumerated() {
                    dst.baseAddress!.advanced(by: newRow * info.rowBytes)
                        .copyMemory(from: raw.baseAddress!.advanced(by: oldRow * info.rowBytes), byteCount: info.rowBytes)
                }
            }
            return out
        }
        return .quantized(try Self.requireFinite(try QuantizedMatrix(name: name, type: info.type, rows: rows, columns: info.rowLength, bytes: bytes), source))
    }

    func tensor(_ hf: String) throws -> Tensor {
        let (name, _) = try info(hf)
        let t = try file.tensor(name)
        try Self.requireFinite(t, name, source)
        return t
    }

    /// A NaN/Inf in a base weight would surface as a NaN loss far from its cause: refuse it here, by name.
    static func requireFinite(_ t: Tensor, _ name: String, _ source: String) throws {
        if let bad = t.nonFiniteReport() { throw ModelError.invalidValue(file: source, key: name, reason: "tensor holds \(bad)") }
    }

    /// The same for a matrix kept in its blocks: a NaN/Inf block scale poisons the whole block (scanned once on load:
    /// SmolLM2's whole load plus one generated token takes 0.15 s with the scan).
    static func requireFinite(_ q: QuantizedMatrix, _ source: String) throws -> QuantizedMatrix {
        if let bad = q.nonFiniteReport() { throw ModelError.invalidValue(file: source, key: q.name, reason: "tensor holds \(bad)") }
        return q
    }

    /// For each Hugging Face row, the GGUF row it comes from. GGUF groups each head's rows as (pair i, half j);
    /// HF as (half j, pair i): HF row h·D + j·D/2 + i = GGUF row h·D + 2i + j.
    static func huggingFaceRowOrder(rows: Int, heads: Int) -> [Int] {
        let d = rows / heads, half = d / 2
        var order = [Int](repeating: 0, count: rows)
        for h in 0..<heads { for j in 0..<2 { for i in 0..<half { order[h * d + j * half + i] = h * d + 2 * i + j } } }
        return order
    }

    static func reorderRows(_ t: Tensor, _ order: [Int]) -> Tensor {
        let cols = t.shape[1]
        return t.withUnsafeBufferPointer { src in
            Tensor(shape: t.shape) { dst in
                for (newRow, oldRow) in order.enumerated() {
                    (dst.baseAddress! + newRow * cols).update(from: src.baseAddress! + oldRow * cols, count: cols)
                }
            }
        }
    }
}

// MARK: - Assembly

extension LlamaModel {
    /// Builds the model from a reader, checking every tensor's shape. Dense weights are frozen.
    convenience init(config c: LlamaConfig, weights: LlamaWeightReader) throws {
        func vector(_ name: String, _ count: Int) throws -> Variable {
            let t = try weights.tensor(name)
            guard t.count == count else { throw ModelError.tensorShape(file: weights.source, tensor: name, expected: [count], got: t.shape) }
            return Variable(t.reshaped([count]), requiresGrad: false, name: name)
        }
        func linear(_ path: String, _ rows: Int, _ cols: Int, bias: Bool, ropeHeads: Int? = nil) throws -> AdaptedLinear {
            let w = try weights.matrix(path + ".weight", ropeHeads: ropeHeads)
            guard w.shape == [rows, cols] else {
                throw ModelError.tensorShape(file: weights.source, tensor: path + ".weight", expected: [rows, cols], got: w.shape)
            }
            var b: Variable?
            if bias {
                var t = try vector(path + ".bias", rows)
                if let heads = ropeHeads, let gguf = weights as? GGUFWeights, gguf.permutesQueryKeyRows {  // a bias follows its rows
                    t = Variable(GGUFWeights.reorderRows(t.value.reshaped([rows, 1]), GGUFWeights.huggingFaceRowOrder(rows: rows, heads: heads)).reshaped([rows]), requiresGrad: false, name: t.name)
                }
                b = t
            }
            switch w {
            case .dense(let v): return AdaptedLinear(path: path, weight: v, bias: b)
            case .quantized(let q): return try AdaptedLinear(path: path, quantizedWeight: q, bias: b)
            }
        }
        let embedding = try weights.matrix("model.embed_tokens.weight", ropeHeads: nil)
        let layers = try (0..<c.layerCount).map { i -> LlamaDecoderLayer in
            let p = "model.layers.\(i)."
            let attention = LlamaAttention(
                qProj: try linear(p + "self_attn.q_proj", c.queryWidth, c.hiddenSize, bias: c.qkvBias, ropeHeads: c.headCount),
                kProj: try linear(p + "self_attn.k_proj", c.kvWidth, c.hiddenSize, bias: c.qkvBias, ropeHeads: c.kvHeadCount),
                vProj: try linear(p + "self_attn.v_proj", c.kvWidth, c.hiddenSize, bias: c.qkvBias),
                oProj: try linear(p + "self_attn.o_proj", c.hiddenSize, c.queryWidth, bias: c.outputProjectionBias))
            if c.queryKeyNorm {
                attention.queryNorm = try vector(p + "self_attn.q_norm.weight", c.headDim)
                attention.keyNorm = try vector(p + "self_attn.k_norm.weight", c.headDim)
            }
            let mlp = LlamaMLP(gateProj: try linear(p + "mlp.gate_proj", c.intermediateSize, c.hiddenSize, bias: c.mlpBias),
                               upProj: try linear(p + "mlp.up_proj", c.intermediateSize, c.hiddenSize, bias: c.mlpBias),
                               downProj: try linear(p + "mlp.down_proj", c.hiddenSize, c.intermediateSize, bias: c.mlpBias))
            return LlamaDecoderLayer(inputNorm: try vector(p + "input_layernorm.weight", c.hiddenSize), attention: attention,
                                     postAttentionNorm: try vector(p + "post_attention_layernorm.weight", c.hiddenSize), mlp: mlp)
        }
        let head = c.tieWordEmbeddings ? nil : try linear("lm_head", c.vocabSize, c.hiddenSize, bias: false)
        try self.init(config: c, embedding: embedding, layers: layers, norm: try vector("model.norm.weight", c.hiddenSize), lmHead: head)
    }
}
