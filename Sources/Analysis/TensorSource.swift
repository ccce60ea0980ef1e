// Named weights for analysis, from a safetensors file, a Hugging Face model directory (one or more
// *.safetensors shards) or a GGUF file (dequantised). Only 2-D matrices are handed out, checked finite.
import Foundation
import TensorCore
import Formats
import Models

/// Where the base model's weight for an adapted module comes from (amplification needs W next to ΔW).
public protocol BaseWeightProvider {
    /// The weight [out, in] of `module` (a Hugging Face module path such as `model.layers.0.self_attn.q_proj`),
    /// in the layout the adapter's ΔW uses; nil when the model has no such module.
    func baseWeight(forModule module: String) throws -> Tensor?
    /// The name looked up for `module`, for error messages.
    func baseWeightName(forModule module: String) -> String
}

/// A read-only collection of named tensors: one safetensors file, a directory of shards, or a GGUF file.
public final class TensorSource: @unchecked Sendable {
    private enum Backend {
        case safetensors([SafeTensorsFile], index: [String: Int])
        case gguf(GGUFFile)
    }

    /// The path given when opening (file or directory).
    public let path: String
    /// All tensor names, sorted.
    public let names: [String]
    /// Whether tensors come from GGUF (llama.cpp names such as `blk.0.attn_q.weight`, Q/K rows permuted).
    public var isGGUF: Bool { if case .gguf = backend { return true }; return false }
    private let backend: Backend

    /// Opens `url`: a `.gguf` file, a `.safetensors` file, or a directory whose `*.safetensors` files are read
    /// together (sharded Hugging Face checkpoints). Files are recognised by their first bytes, not only by name.
    public init(url: URL) throws {
        path = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw AnalysisError.file(path: url.path, reason: "not found")
        }
        if isDirectory.boolValue {
            let entries: [String]
            do { entries = try FileManager.default.contentsOfDirectory(atPath: url.path) } catch {
                throw AnalysisError.file(path: url.path, reason: "cannot list directory (\(error.localizedDescription))")
            }
            let shards = entries.filter { $0.hasSuffix(".safetensors") }.sorted()
            guard !shards.isEmpty else {
                throw AnalysisError.file(path: url.path, reason: "directory holds no *.safetensors file")
            }
            var files: [SafeTensorsFile] = [], index: [String: Int] = [:]
            for shard in shards {
                let file = try SafeTensorsFile(contentsOf: url.appendingPathComponent(shard))
                for name in file.names {
                    if let previous = index[name] {
                        throw AnalysisError.file(path: url.path, reason: "tensor '\(name)' is in both \(files[previous].path) and \(file.path)")
                    }
                    index[name] = files.count
                }
                files.append(file)
            }
            backend = .safetensors(files, index: index)
            names = index.keys.sorted()
        } else if try Self.startsWithGGUFMagic(url) {
            let file = try GGUFFile(url: url)
            backend = .gguf(file)
            names = file.tensors.map(\.name).sorted()
        } else {
            let file = try SafeTensorsFile(contentsOf: url)
            backend = .safetensors([file], index: Dictionary(uniqueKeysWithValues: file.names.map { ($0, 0) }))
            names = file.names.sorted()
        }
    }

    /// Whether a tensor called `name` exists.
    public func contains(_ name: String) -> Bool {
        switch backend {
        case let .safetensors(_, index): return index[name] != nil
        case let .gguf(file): return file.tensorInfo(name) != nil
        }
    }

    /// The PyTorch-layout shape of `name` (GGUF dims reversed), without reading its data.
    public func shape(of name: String) throws -> [Int] {
        switch backend {
        case let .safetensors(files, index):
            guard let i = index[name] else { throw missing(name) }
            return try files[i].info(name).shape
        case let .gguf(file):
            guard let info = file.tensorInfo(name) else { throw missing(name) }
            return info.shape
        }
    }

    /// Names of the tensors that are 2-D matrices (candidates for `analyze spectrum --tensor`).
    public var matrixNames: [String] { names.filter { (try? shape(of: $0).count) == 2 } }

    /// Tensor `name` as a Float32 matrix; it must be 2-D (GGUF tensors with trailing 1-dims count) and finite.
    public func matrix(_ name: String) throws -> Tensor {
        var shape = try shape(of: name)
        while shape.count > 2 && shape.first == 1 { shape.removeFirst() }
        guard shape.count == 2 else { throw AnalysisError.notAMatrix(tensor: name, shape: try self.shape(of: name)) }
        let tensor: Tensor
        switch backend {
        case let .safetensors(files, index): tensor = try files[index[name]!].tensor(name)
        case let .gguf(file): tensor = try file.tensor(name)
        }
        if let bad = firstNonFiniteIndex(tensor) {
            throw AnalysisError.nonFinite(module: name, tensor: "weight '\(name)' in \(path)", index: bad)
        }
        return tensor.reshaped(shape)
    }

    private func missing(_ name: String) -> AnalysisError {
        // Suggest names that share the last component (q_proj.weight …) before arbitrary ones.
        let leaf = name.split(separator: ".").suffix(2).joined(separator: ".")
        let similar = names.filter { $0.hasSuffix(leaf) }
        return .missingTensor(name, file: path, available: Array((similar.isEmpty ? matrixNames : similar).prefix(6)))
    }

    private static func startsWithGGUFMagic(_ url: URL) throws -> Bool {
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw AnalysisError.file(path: url.path, reason: "cannot open for reading")
        }
        defer { try? handle.close() }
        let magic = handle.readData(ofLength: 4)
        return magic == Data("GGUF".utf8)
    }
}

extension TensorSource: BaseWeightProvider {
    /// `<module>.weight` from a safetensors checkpoint. A GGUF file names and lays out weights the llama.cpp way
    /// (blk.N.attn_q.weight, Q/K rows permuted for its rope): it is read through `LlamaGGUFWeights`, which maps
    /// the name and undoes the permutation; a GGUF of another architecture is refused.
    public func baseWeight(forModule module: String) throws -> Tensor? {
        if case let .gguf(file) = backend { return try llamaWeights(file).baseWeight(forModule: module) }
        let name = baseWeightName(forModule: module)
        return contains(name) ? try matrix(name) : nil
    }

    /// `<module>.weight`, or for GGUF the llama.cpp tensor name with the Hugging Face one.
    public func baseWeightName(forModule module: String) -> String {
        if case let .gguf(file) = backend, let weights = try? llamaWeights(file) { return weights.baseWeightName(forModule: module) }
        return module + ".weight"
    }

    private func llamaWeights(_ file: GGUFFile) throws -> LlamaGGUFWeights {
        do { return try LlamaGGUFWeights(file: file) } catch {
            throw AnalysisError.unsupported("\(path): amplification against a GGUF base needs a Llama-family model "
                + "(to map adapter modules to llama.cpp tensors and undo the q/k row permutation): \(error)")
        }
    }
}
