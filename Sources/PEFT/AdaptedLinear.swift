// A linear layer that can carry adapters: the unit PEFT methods attach to. Every linear projection of a model
// is an `AdaptedLinear`; with no adapter it is a plain frozen (or trainable) `x·Wᵀ + b`. The base weight is
// dense Float32 or, for GGUF models, ggml-quantized blocks that stay quantized (QLoRA-style: adapters train
// in Float32 over a frozen quantized base; only dX flows through the base).
import Foundation
import TensorCore
import Autograd
import Formats

/// One adapter's contribution to a linear layer: LoRA's `s·B·A`, AdaLoRA's `B·(A ⊙ E)·s/(ranknum+ε)`, …
public protocol AdapterBranch: AnyObject {
    var rank: Int { get }
    /// Parameters with PEFT's names relative to the layer (e.g. "lora_A.weight"), as saved in adapter files.
    var namedParameters: [(String, Variable)] { get }
    /// The branch output for input x [..., in] → [..., out]; `rng` drives dropout when `training`.
    func forward(_ x: Variable, rng: inout RandomGenerator, training: Bool) -> Variable
    /// ΔW [out, in] that merging adds to the base weight.
    func deltaWeight() -> Tensor
    /// Folds the branch into `weight` [out, in] (default: W += ΔW; DoRA rescales rows). `unmerge` undoes it.
    func merge(into weight: inout Tensor)
    func unmerge(from weight: inout Tensor)
}

extension AdapterBranch {
    public func merge(into weight: inout Tensor) { weight.addScaled(deltaWeight()) }
    public func unmerge(from weight: inout Tensor) { weight.addScaled(deltaWeight(), alpha: -1) }
}

/// Where PEFT's warnings go (merge twice, unmerge with nothing merged, …). Tests replace it to capture them.
public enum PEFTDiagnostics {
    nonisolated(unsafe) public static var warn: (String) -> Void = { message in
        FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
    }
}

/// The frozen base weight of an `AdaptedLinear`, [out, in] in PyTorch layout.
public enum LinearBase {
    /// Float32 weight (trainable if its `requiresGrad` is set).
    case dense(Variable)
    /// ggml blocks read directly by the products; always frozen.
    case quantized(QuantizedMatrix)

    /// [out, in].
    public var shape: [Int] {
        switch self {
        case .dense(let w): return w.shape
        case .quantized(let q): return q.shape
        }
    }

    /// The weight as dense Float32 values (a quantized base is dequantized into a new tensor).
    public var denseValue: Tensor {
        switch self {
        case .dense(let w): return w.value
        case .quantized(let q): return q.dequantized()
        }
    }
}

public final class AdaptedLinear {
    /// Dotted module path, e.g. "model.layers.0.self_attn.q_proj"; used in messages and adapter files.
    public let path: String
    /// Base weight [out, in]: dense or quantized.
    public private(set) var base: LinearBase
    /// Optional bias [out]; frozen unless the user trains it.
    public let bias: Variable?
    public private(set) var adapters: [(name: String, branch: AdapterBranch)] = []
    public var activeAdapterNames: [String] = []
    public private(set) var adaptersDisabled = false
    public private(set) var mergedAdapterNames: [String] = []
    /// Mixed-adapter batch (PEFT's `adapter_names`): the adapter of each sequence of the next forwards, rows
    /// grouped sequence by sequence; "__base__" for none. Set it through `AdaptableModel.withAdapterNames`.
    public internal(set) var rowAdapterNames: [String]? = nil

    /// A layer over a dense weight [out, in] (PyTorch layout) and optional bias [out].
    public init(path: String, weight: Variable, bias: Variable? = nil) {
        self.path = path; self.base = .dense(weight); self.bias = bias
    }

    /// A layer over a quantized weight [out, in] that stays quantized; bias [out] optional.
    public init(path: String, quantizedWeight: QuantizedMatrix, bias: Variable? = nil) throws {
        if let bias, bias.shape != [quantizedWeight.rows] {
            throw PEFTError.shapeMismatch(tensor: path + ".bias", expected: [quantizedWeight.rows], got: bias.shape)
        }
        self.path = path; self.base = .quantized(quantizedWeight); self.bias = bias
    }

    /// The dense base weight [out, in]. A quantized base is dequantized to Float32 on first access and stays
    /// dense from then on (exact, but 4–8× the memory): use `base` / `denseWeight` to inspect without that.
    public var weight: Variable {
        switch base {
        case .dense(let w): return w
        case .quantized: return dequantizeBase()
        }
    }

    /// The dense base weight, or nil while the base is quantized (never converts).
    public var denseWeight: Variable? { if case .dense(let w) = base { return w }; return nil }

    /// The quantized base, or nil for a dense one.
    public var quantizedWeight: QuantizedMatrix? { if case .quantized(let q) = base { return q }; return nil }

    public var isQuantized: Bool { quantizedWeight != nil }

    public var inFeatures: Int { base.shape[1] }
    public var outFeatures: Int { base.shape[0] }

    /// Replaces a quantized base by its Float32 dequantisation (a frozen dense weight); returns it.
    @discardableResult
    public func dequantizeBase() -> Variable {
        switch base {
        case .dense(let w): return w
        case .quantized(let q):
            let w = Variable(q.dequantized(), requiresGrad: false, name: path + ".weight")
            base = .dense(w)
            return w
        }
    }

    /// The base weight values an adapter initialisation needs: the real values when `initialization` reads them
    /// (PiSSA, OLoRA; a quantized base is dequantized for it), else a tensor of the right shape only.
    public func baseValueForInitialization(_ initialization: LoRAInitialization) -> Tensor {
        switch base {
        case .dense(let w): return w.value
        case .quantized(let q): return initialization.mutatesBase ? q.dequantized() : Tensor(zeros: q.shape)
        }
    }

    /// Sets the base to a dense Float32 weight of the same shape (PiSSA/OLoRA residuals); a quantized base
    /// becomes dense.
    public func replaceBaseWeight(_ value: Tensor) throws {
        guard value.shape == base.shape else {
            throw PEFTError.shapeMismatch(tensor: path + ".weight", expected: base.shape, got: value.shape)
        }
        switch base {
        case .dense(let w): w.value = value
        case .quantized: base = .dense(Variable(value, requiresGrad: false, name: path + ".weight"))
        }
    }

    /// x·Wᵀ + b through the base alone (autograd; a quantized base passes dX only).
    func baseForward(_ x: Variable) -> Variable { baseForward(x, bias: bias) }

    /// x·Wᵀ (+ bias if given) through the base alone.
    func baseForward(_ x: Variable, bias: Variable?) -> Variable {
        switch base {
        case .dense(let w): return linear(x, weight: w, bias: bias)
        case .quantized(let q): return quantizedLinear(x, weight: q, bias: bias)
        }
    }

    public func adapter(named name: String) -> AdapterBranch? { adapters.first { $0.name == name }?.branch }

    /// Adds an adapter (not activated, like PEFT's `add_adapter`; the first one added becomes active).
    public func addAdapter(_ name: String, _ branch: AdapterBranch) throws {
        guard adapter(named: name) == nil else { throw PEFTError.adapterExists(name) }
        adapters.append((name, branch))
        if activeAdapterNames.isEmpty { activeAdapterNames = [name] }
    }

    /// Removes an adapter. A merged adapter cannot be deleted (nothing changes).
    public func deleteAdapter(_ name: String) throws {
        guard adapter(named: name) != nil else { throw PEFTError.unknownAdapter(name, available: adapters.map(\.name)) }
        guard !mergedAdapterNames.contains(name) else { throw PEFTError.adapterMerged(name) }
        adapters.removeAll { $0.name == name }
        activeAdapterNames.removeAll { $0 == name }
    }

    /// y = x·Wᵀ + b (+ Σ active adapter branches unless disabled or merged). x: [..., in] → [..., out].
    public func forward(_ x: Variable, rng: inout RandomGenerator, training: Bool) -> Variable {
        if adaptersDisabled {
            if !mergedAdapterNames.isEmpty { unmerge() }  // PEFT: a disabled adapter must not stay in W
            return baseForward(x)
        }
        var y = baseForward(x)
        if !mergedAdapterNames.isEmpty { return y }
        if let rows = rowAdapterNames { return mixedBatchForward(x, base: y, rowAdapters: rows, rng: &rng, training: training) }
        for name in activeAdapterNames {
            guard let branch = adapter(named: name) else { continue }
            if let dora = branch as? DoRABranch {  // reuses the base product, as PEFT does
                y = add(y, dora.forward(x, baseOutput: y, bias: bias, layer: self, rng: &rng, training: training))
            } else {
                y = add(y, branch.forward(x, rng: &rng, training: training))
            }
        }
        return y
    }

    /// Disabled adapters give exactly the base output (merged ones are unmerged first).
    public func setAdaptersDisabled(_ disabled: Bool) {
        adaptersDisabled = disabled
        if disabled && !mergedAdapterNames.isEmpty { unmerge() }
    }

    /// W += ΔW for the given (default: active) adapters. `safe` computes on a copy and refuses non-finite results,
    /// leaving the base untouched. Merging an already merged adapter is a no-op with a warning. A quantized base
    /// is first dequantized to Float32 (a warning says so): adding ΔW to ggml blocks would re-round it.
    public func merge(adapterNames: [String]? = nil, safe: Bool = false) throws {
        let names = adapterNames ?? activeAdapterNames
        let pending = names.filter { !mergedAdapterNames.contains($0) }
        if pending.isEmpty {
            PEFTDiagnostics.warn("\(path): all adapters are already merged, nothing to do")
            return
        }
        if pending.count < names.count {
            PEFTDiagnostics.warn("\(path): already merged adapters skipped: \(names.filter { mergedAdapterNames.contains($0) })")
        }
        for name in pending where adapter(named: name) == nil {
            throw PEFTError.unknownAdapter(name, available: adapters.map(\.name))
        }
        if let q = quantizedWeight {
            PEFTDiagnostics.warn("\(path): merging dequantizes the \(q.type.name) base to Float32 (\(q.rows * q.columns * 4 / 1024) KiB)")
            dequantizeBase()
        }
        let weight = self.weight
        for name in pending {
            guard let branch = adapter(named: name) else { throw PEFTError.unknownAdapter(name, available: adapters.map(\.name)) }
            var merged = weight.value
            branch.merge(into: &merged)
            if safe && !merged.withUnsafeBufferPointer({ $0.allSatisfy(\.isFinite) }) {
                throw PEFTError.nonFiniteMerge(adapter: name, module: path)
            }
            weight.value = merged
            mergedAdapterNames.append(name)
        }
    }

    /// Subtracts merged adapters again, last merged first (PEFT's LIFO order).
    public func unmerge() {
        if mergedAdapterNames.isEmpty { PEFTDiagnostics.warn("\(path): already unmerged, nothing to do"); return }
        let weight = self.weight  // dense: merging made it so
        while let name = mergedAdapterNames.popLast() {
            guard let branch = adapter(named: name) else { continue }
            branch.unmerge(from: &weight.value)
        }
    }

    /// Parameters of one adapter with full PEFT names ("<path>.lora_A.weight").
    public func adapterParameters(_ name: String) -> [(String, Variable)] {
        guard let branch = adapter(named: name) else { return [] }
        return branch.namedParameters.map { ("\(path).\($0.0)", $0.1) }
    }
}
