// PEFT's `modules_to_save`: layers trained in full beside the adapter (a classification head trained from
// scratch), saved in the adapter file under the layer's own name (`base_model.model.classifier.weight`), as
// PEFT's ModulesToSaveWrapper does. Here the copy is an `AdapterBranch` of the layer, so it is switched,
// disabled, listed, trained, checkpointed and saved exactly like LoRA branches: the branch adds
// (x·W′ᵀ + b′) − (x·Wᵀ + b), so the layer's output is the copy's whenever the adapter is active and the
// original's when it is disabled. Merging folds W′ − W into the weight; a bias change cannot be merged.
import TensorCore
import Autograd

/// A trainable full copy (weight [out, in], bias [out]) of one linear layer.
public final class ModulesToSaveBranch: AdapterBranch {
    /// The copy, trained: "weight", "bias" (PEFT saves them without the wrapper's name).
    public let weight: Variable, bias: Variable?
    /// The original layer's values, frozen.
    let baseWeight: Variable, baseBias: Variable?

    /// A copy of the layer's current weight and bias (a quantized base is dequantized), trainable.
    public init(copying layer: AdaptedLinear) {
        let w = layer.base.denseValue
        baseWeight = Variable(w); baseBias = layer.bias.map { Variable($0.value) }
        weight = Variable(w, requiresGrad: true, name: layer.path + ".weight")
        bias = layer.bias.map { Variable($0.value, requiresGrad: true, name: layer.path + ".bias") }
    }

    /// A branch with given trained values (loading a saved adapter); shapes must match the layer.
    public init(layer: AdaptedLinear, weight: Tensor, bias: Tensor?) throws {
        guard weight.shape == layer.base.shape else {
            throw PEFTError.shapeMismatch(tensor: layer.path + ".weight", expected: layer.base.shape, got: weight.shape)
        }
        if let b = layer.bias {
            guard let bias, bias.shape == b.shape else {
                throw PEFTError.shapeMismatch(tensor: layer.path + ".bias", expected: b.shape, got: bias?.shape ?? [])
            }
        }
        baseWeight = Variable(layer.base.denseValue); baseBias = layer.bias.map { Variable($0.value) }
        self.weight = Variable(weight, requiresGrad: true, name: layer.path + ".weight")
        self.bias = layer.bias == nil ? nil : Variable(bias!, requiresGrad: true, name: layer.path + ".bias")
    }

    public var rank: Int { 0 }

    public var namedParameters: [(String, Variable)] { [("weight", weight)] + (bias.map { [("bias", $0)] } ?? []) }

    /// (x·W′ᵀ + b′) − (x·Wᵀ + b): added to the base output it gives the copy's output.
    public func forward(_ x: Variable, rng: inout RandomGenerator, training: Bool) -> Variable {
        sub(linear(x, weight: weight, bias: bias), linear(x, weight: baseWeight, bias: baseBias))
    }

    public func deltaWeight() -> Tensor {
        var d = weight.value
        let w = baseWeight.value
        d.withUnsafeMutableBufferPointer { pd in w.withUnsafeBufferPointer { pw in for i in 0..<pd.count { pd[i] -= pw[i] } } }
        return d
    }
}

extension AdaptableModel {
    /// The layers a `modules_to_save` list names: a layer matches a name equal to its path or to a dotted suffix of
    /// it ("classifier" matches "classifier" and "bert.classifier"), PEFT's rule. A name that matches nothing is
    /// an error listing what exists.
    public func modulesToSave(_ names: [String]) throws -> [AdaptedLinear] {
        var found: [AdaptedLinear] = []
        for name in names {
            let matches = adaptedLinears.filter { $0.path == name || $0.path.hasSuffix("." + name) }
            guard !matches.isEmpty else { throw PEFTError.unknownModule(name, available: adaptedLinears.map(\.path)) }
            found += matches.filter { m in !found.contains { $0 === m } }
        }
        return found
    }

    /// Adds a trainable copy of each `modules_to_save` layer as adapter `name`.
    public func addModulesToSave(_ names: [String], adapter name: String) throws {
        let layers = try modulesToSave(names)
        if layers.contains(where: { $0.adapter(named: name) != nil }) { throw PEFTError.adapterExists(name) }
        for layer in layers { try layer.addAdapter(name, ModulesToSaveBranch(copying: layer)) }
    }
}
