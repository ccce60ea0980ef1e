// Every CUDA kernel LoRAKit ships: one program per family (compiled as a unit, cached as one binary) and the
// entry points it exports. Launchers refer to kernels by `KernelFunction`, so a renamed or missing kernel is a
// compile-time error here and a test failure in KernelCatalogTests (which checks each name against the PTX).

/// A CUDA C translation unit.
public enum KernelProgram: String, CaseIterable, Sendable {
    case elementwise, embeddingQuantized, normRotary, attention, lossOptimizer, matmul

    public var source: String {
        switch self {
        case .elementwise: return ElementwiseKernelSource.source
        case .embeddingQuantized: return EmbeddingQuantizedKernelSource.source
        case .normRotary: return NormRotaryKernelSource.source
        case .attention: return AttentionKernelSource.source
        case .lossOptimizer: return LossOptimizerKernelSource.source
        case .matmul: return MatmulKernelSource.source
        }
    }

    /// The `extern "C" __global__` functions declared in the source, in order.
    public var declaredEntryPoints: [String] {
        var names: [String] = []
        let marker = "extern \"C\" __global__ void "
        var rest = Substring(source)
        while let r = rest.range(of: marker) {
            let tail = rest[r.upperBound...]
            let name = tail.prefix { $0.isLetter || $0.isNumber || $0 == "_" }
            names.append(String(name))
            rest = tail
        }
        return names
    }
}

/// A kernel entry point and its program.
public struct KernelFunction: Hashable, Sendable, CustomStringConvertible {
    public let program: KernelProgram
    public let name: String
    public var description: String { name }

    public init(_ program: KernelProgram, _ name: String) { self.program = program; self.name = name }

    /// Storage type suffix of the typed variants.
    public enum Precision: String, Sendable, CaseIterable { case f32, bf16 }

    static func typed(_ program: KernelProgram, _ base: String, _ p: Precision) -> KernelFunction {
        KernelFunction(program, "\(base)_\(p.rawValue)")
    }
}
