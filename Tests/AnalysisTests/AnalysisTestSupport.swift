// Helpers for the analysis tests: temporary adapter directories, reference products in Double, exact bases.
import Foundation
import XCTest
import TensorCore
import Formats
import PEFT
import Analysis
import TestSupport

/// Writes an adapter directory: `config` as adapter_config.json and `tensors` (saved keys) as safetensors.
func writeAdapter(to directory: URL, config: String, tensors: [(String, Tensor)]) throws {
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    try Data(config.utf8).write(to: directory.appendingPathComponent("adapter_config.json"))
    try SafeTensorsWriter.write(tensors.map { SafeTensorsEntry.float($0.0, $0.1) }, metadata: ["format": "pt"],
                                to: directory.appendingPathComponent("adapter_model.safetensors"))
}

/// A minimal PEFT LoRA config.
func loraConfigJSON(r: Int, alpha: Double, targets: [String], rsLoRA: Bool = false, rankPattern: String = "{}") -> String {
    let list = targets.map { "\"\($0)\"" }.joined(separator: ", ")
    return """
        {"peft_type": "LORA", "r": \(r), "lora_alpha": \(alpha), "target_modules": [\(list)], "use_rslora": \(rsLoRA),
         "rank_pattern": \(rankPattern), "alpha_pattern": {}, "lora_dropout": 0.0, "bias": "none"}
        """
}

/// s·B·A computed with Double accumulation: the reference for ΔW.
func referenceProduct(_ b: Tensor, _ a: Tensor, scaling: Double) -> Tensor {
    let (out, r, n) = (b.shape[0], b.shape[1], a.shape[1])
    let pb = b.array, pa = a.array
    var values = [Float](repeating: 0, count: out * n)
    for i in 0..<out {
        for j in 0..<n {
            var sum = 0.0
            for k in 0..<r { sum += Double(pb[i * r + k]) * Double(pa[k * n + j]) }
            values[i * n + j] = Float(scaling * sum)
        }
    }
    return Tensor(values, shape: [out, n])
}

/// A standard-normal matrix from `seed`.
func randomMatrix(_ rows: Int, _ columns: Int, seed: UInt64) -> Tensor {
    var rng = RandomGenerator(seed: seed)
    return rng.normal([rows, columns])
}

/// Frobenius norm in Double.
func frobenius(_ t: Tensor) -> Double {
    t.array.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
}

/// An in-memory adapter with the given modules (directory is a placeholder used only in messages).
func adapter(_ modules: [AdapterModule], name: String = "memory") -> AdapterWeights {
    AdapterWeights(directory: URL(fileURLWithPath: "/\(name)"), config: LoRAConfig(r: modules.first?.rank ?? 1), modules: modules)
}

/// The error thrown by `body` as an AnalysisError, failing the test when it throws nothing or something else.
func analysisError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> AnalysisError? {
    do { try body() } catch let error as AnalysisError { return error } catch {
        XCTFail("expected AnalysisError, got \(error)", file: file, line: line); return nil
    }
    XCTFail("expected an error", file: file, line: line)
    return nil
}
