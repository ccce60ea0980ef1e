// A linear layer that can carry adapters: the unit PEFT methods attach to. Every linear projection of a model
// is an `AdaptedLinear`; with no adapter it is a plain frozen (or trainable) `x·Wᵀ + b`.
import Foundation
import TensorCore
import Autograd

/// One adapter's contribution to a linear layer: LoRA's `s·B·A`, AdaLoRA's `B·(A ⊙ E)·s/(ranknum+ε)`, …
public protocol AdapterBranch: AnyObject {
    var rank: Int { get }
    /// Parameters with PEFT's names relative to the layer (e.g. "lora_A.weight"), as saved in adapter files.
    var namedParameters: [(String, Variable)] { get }
    /// The branch output for input x [..., in] → [..., out]; `rng` drives dropout when `training`.
    func forward(_ x: Variable, rng: inout RandomGenerator, training: Bool) -> Variable
    /// ΔW [out, in] that merging adds to the base weight.
    func deltaWeight() -> Tensor
}

/// Where PEFT's warnings go (merge twice, unmerge with nothing merged, …). Tests replace it to capture them.
public enum PEFTDiagnostics {
    nonisolated(unsafe) public static var warn: (String) -> Void = { message in
        FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
    }
}

public final class AdaptedLinear {
    /// Dotted module path, e.g. "model.layers.0.self_attn.q_proj"; used in messages and adapter files.
    public let path: String
    /// Base weight [out, in] (PyTorch layout) and optional bias [out]; frozen unless the user trains them.
    public let weight: Variable
    public let bias: Variable?
    public private(set) var adapters: [(name: String, branch: AdapterBranch)] = []
    public var activeAdapterNames: [String] = []
    public private(set) var adaptersDisabled = false
    public private(set) var mergedAdapterNames: [String] = []

    public init(path: String, weight: Variable, bias: Variable? = nil) {
        self.path = path; self.weight = weight; self.bias = bias
    }

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

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
            return linear(x, weight: weight, bias: bias)
        }
        var y = linear(x, weight: weight, bias: bias)
        if !mergedAdapterNames.isEmpty { return y }
        for name in activeAdapterNames {
            guard let branch = adapter(named: name) else { continue }
            y = add(y, branch.forward(x, rng: &rng, training: training))
        }
        return y
    }

    /// Disabled adapters give exactly the base output (merged ones are unmerged first).
    public func setAdaptersDisabled(_ disabled: Bool) {
        adaptersDisabled = disabled
        if disabled && !mergedAdapterNames.isEmpty { unmerge() }
    }

    /// W += ΔW for the given (default: active) adapters. `safe` computes on a copy and refuses non-finite results,
    /// leaving the base untouched. Merging an already merged adapter is a no-op with a warning.
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
        for name in pending {
            guard let branch = adapter(named: name) else { throw PEFTError.unknownAdapter(name, available: adapters.map(\.name)) }
            var merged = weight.value
            let delta = branch.deltaWeight()
            merged.withUnsafeMutableBufferPointer { w in delta.withUnsafeBufferPointer { d in
                for i in 0..<w.count { w[i] += d[i] }
            } }
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
        while let name = mergedAdapterNames.popLast() {
            guard let branch = adapter(named: name) else { continue }
            let delta = branch.deltaWeight()
            weight.value.withUnsafeMutableBufferPointer { w in delta.withUnsafeBufferPointer { d in
                for i in 0..<w.count { w[i] -= d[i] }
            } }
        }
    }

    /// Parameters of one adapter with full PEFT names ("<path>.lora_A.weight").
    public func adapterParameters(_ name: String) -> [(String, Variable)] {
        guard let branch = adapter(named: name) else { return [] }
        return branch.namedParameters.map { ("\(path).\($0.0)", $0.1) }
    }
}
