// Mixed-adapter batches (PEFT's `adapter_names`, spec §2.6): each sequence of a batch names the adapter it runs
// with ("__base__" for none). The base product runs once on the whole batch; each adapter then runs on the rows
// of its own sequences only and adds to them, so every row equals a run of its adapter alone. Like PEFT it is
// refused with merged adapters and for DoRA adapters; unlike PEFT it also runs in training (each adapter then
// receives the gradient of its own rows only).
import TensorCore
import Autograd

extension AdaptedLinear {
    /// The adapter name that means "no adapter" in a mixed batch.
    public static let baseAdapterName = "__base__"

    /// y (the base output for all rows) plus, for each distinct adapter, its branch over its sequences' rows.
    /// x [rows, in] with rows = sequences × rows per sequence, grouped sequence by sequence.
    func mixedBatchForward(_ x: Variable, base y: Variable, rowAdapters names: [String], rng: inout RandomGenerator,
                           training: Bool) -> Variable {
        let rows = x.value.count / max(inFeatures, 1)
        precondition(!names.isEmpty && rows % names.count == 0,
                     "\(path): \(rows) rows do not split into \(names.count) sequences of the mixed-adapter batch")
        let per = rows / names.count
        let flat = reshape(x, [rows, inFeatures])
        var pieces = [Variable?](repeating: nil, count: names.count)
        var seen = Set<String>()
        for name in names where seen.insert(name).inserted {
            guard let branch = adapter(named: name) else { continue }  // "__base__", or not on this layer
            let sequences = names.indices.filter { names[$0] == name }
            let input = sequences.count == names.count ? flat
                : concat(sequences.map { slice(flat, dimension: 0, range: ($0 * per)..<(($0 + 1) * per)) }, dimension: 0)
            let output = branch.forward(input, rng: &rng, training: training)  // [sequences·per, out]
            for (k, sequence) in sequences.enumerated() {
                pieces[sequence] = sequences.count == 1 ? output : slice(output, dimension: 0, range: (k * per)..<((k + 1) * per))
            }
        }
        guard pieces.contains(where: { $0 != nil }) else { return y }
        let zeros = Variable(Tensor(zeros: [per, outFeatures]))
        let delta = pieces.count == 1 ? pieces[0]! : concat(pieces.map { $0 ?? zeros }, dimension: 0)
        return add(y, reshape(delta, y.shape))
    }
}

extension AdaptableModel {
    /// Runs `body` with a mixed-adapter batch: sequence i of every forward inside (graph or inference path) uses
    /// adapter `names[i]` ("__base__": none). Throws — changing nothing — for an unknown name, a merged adapter,
    /// or a DoRA adapter (PEFT refuses those in mixed batches too), naming the adapter and module.
    public func withAdapterNames<R>(_ names: [String], _ body: () throws -> R) throws -> R {
        guard !names.isEmpty else { throw PEFTError.invalidAdapterBatch(reason: "no adapter names given (one per sequence)") }
        let known = adapterNames
        for name in names where name != AdaptedLinear.baseAdapterName && !known.contains(name) {
            throw PEFTError.unknownAdapter(name, available: known + [AdaptedLinear.baseAdapterName])
        }
        for layer in adaptedLinears {
            if let merged = layer.mergedAdapterNames.first {
                throw PEFTError.invalidAdapterBatch(reason: "adapter '\(merged)' is merged into \(layer.path); unmerge it before passing adapter names")
            }
            for name in Set(names) where layer.adapter(named: name) is DoRABranch {
                throw PEFTError.doraUnsupported(adapter: name, module: layer.path, reason: "mixed-adapter batches do not support DoRA adapters (as in PEFT); run this adapter in its own batch or merge it")
            }
        }
        let layers = adaptedLinears
        for layer in layers { layer.rowAdapterNames = names }
        defer { for layer in layers { layer.rowAdapterNames = nil } }
        return try body()
    }
}
