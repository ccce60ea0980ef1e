// Weighted combination of LoRA adapters into a new one (PEFT's `add_weighted_adapter`, spec §2.7), on adapter
// matrices alone — no base model needed. With source weights w_i and scalings s_i, per module:
//   cat              A = [w_i·s_i·A_i] stacked (Σr × in), B = [B_i] side by side (out × Σr): ΔW = Σ w_i·s_i·B_i·A_i exactly
//   svd              D = Σ w_i·ΔW_i (ΔW_i = s_i·B_i·A_i), truncated SVD D ≈ U_k S_k V_kᵀ: B = U_k S_k, A = V_kᵀ; the
//                    Eckart–Young error ‖D − D_k‖_F = √(Σ_{j>k} σ_j²) is reported per module
//   linear           A = Σ sign(c_i)·√|c_i|·A_i, B = Σ √|c_i|·B_i with c_i = w_i·s_i (cross terms B_i·A_j appear, as in PEFT)
//   ties             per tensor set (A's, B's): keep the top density·numel |values| of each, elect a sign per entry
//                    (sign of the sum), average the weighted values that agree with it
//   magnitude_prune  keep the top density·numel |values| of each, then the weighted sum
//   dare_linear      keep each value with probability density (seeded), rescale by 1/density, weighted sum
// The new adapter has r = lora_alpha = its rank, so s = 1 (with rsLoRA sources, lora_alpha = √r keeps s = 1; PEFT
// before its PR #3449 got this case wrong). Sources must adapt the same modules with the same base shapes; DoRA
// sources are refused (their magnitudes do not combine, PEFT issue #3761).
import Foundation
import TensorCore
import LinearAlgebra

public enum AdapterCombinationMethod: String, CaseIterable, Sendable {
    case cat, linear, svd, ties
    case magnitudePrune = "magnitude_prune"
    case dareLinear = "dare_linear"

    /// Methods that combine A's and B's separately and so need equal ranks.
    var needsEqualRanks: Bool { self != .cat && self != .svd }
    var usesDensity: Bool { self == .ties || self == .magnitudePrune || self == .dareLinear }
}

/// One source of a combination: an adapter, its name (for messages) and its weight.
public struct CombinationSource {
    public var name: String
    public var weight: Double
    public var adapter: LoRAAdapterMatrices
    public init(name: String, weight: Double, adapter: LoRAAdapterMatrices) { self.name = name; self.weight = weight; self.adapter = adapter }
}

/// The combined adapter and, for `svd`, how much of the weighted ΔW sum the truncation lost.
public struct CombinationResult {
    public var adapter: LoRAAdapterMatrices
    public var method: AdapterCombinationMethod
    /// svd only: per module, ‖D − D_k‖_F, ‖D‖_F, and the singular values of D.
    public var truncationErrors: [(module: String, frobenius: Float, norm: Float, singularValues: [Float])]
}

public enum WeightedAdapterCombination {
    /// Combines `sources` with `method`. `rank`: svd's target rank (default: the largest source rank); `density`:
    /// fraction of values kept by ties / magnitude_prune / dare_linear; `seed`: dare_linear's masks.
    public static func combine(_ sources: [CombinationSource], method requested: AdapterCombinationMethod, rank: Int? = nil,
                               density: Double? = nil, seed: UInt64 = 0) throws -> CombinationResult {
        guard let first = sources.first else { throw PEFTError.invalidConfig(field: "adapters", reason: "no adapters to combine") }
        let method = sources.count == 1 ? .linear : requested  // PEFT: one source is always a linear rescale
        try checkCompatible(sources, method: method)
        if method.usesDensity {
            guard let density, density.isFinite, density >= 0 else {
                throw PEFTError.invalidConfig(field: "density", reason: "\(method.rawValue) needs a density in [0, 1] (fraction of values kept), got \(density.map { "\($0)" } ?? "none")")
            }
        }
        let sourceRanks = first.adapter.modules.map { m in sources.map { $0.adapter.module(m.path)!.a.dim(0) } }
        let newRank: Int
        switch method {
        case .cat: newRank = sourceRanks.map { $0.reduce(0, +) }.max() ?? 0
        case .svd:
            newRank = rank ?? sourceRanks.flatMap { $0 }.max() ?? 0
            let narrowest = first.adapter.modules.map { min($0.a.dim(1), $0.b.dim(0)) }.min() ?? 0
            guard newRank >= 1, newRank <= narrowest else {
                throw PEFTError.invalidConfig(field: "svd_rank", reason: "\(newRank) must be between 1 and the narrowest module's min(out, in) = \(narrowest)")
            }
        default: newRank = sourceRanks.first?.first ?? 0
        }
        var rng = RandomGenerator(seed: seed)
        var modules: [LoRAAdapterMatrices.Module] = []
        var errors: [(module: String, frobenius: Float, norm: Float, singularValues: [Float])] = []
        for m in first.adapter.modules {
            let parts = sources.map { (s: $0, m: $0.adapter.module(m.path)!) }
            let c = parts.map { $0.s.weight * Double($0.m.scaling) }
            var a: Tensor, b: Tensor
            switch method {
            case .cat:
                a = stackRows(parts.enumerated().map { $0.element.m.a.scaled(by: Float(c[$0.offset])) })
                b = stackColumns(parts.map(\.m.b))
            case .svd:
                var d = Tensor(zeros: [m.b.dim(0), m.a.dim(1)])
                for (i, p) in parts.enumerated() {  // Σ w_i · (s_i·B_i·A_i), PEFT's get_delta_weight then task arithmetic
                    d.addScaled(Tensor.matmul(p.m.b, p.m.a, alpha: p.m.scaling), alpha: Float(p.s.weight))
                    _ = i
                }
                let full = try svd(d)
                let top = try full.truncated(to: newRank)
                b = Tensor(shape: [d.dim(0), newRank]) { p in top.u.withUnsafeBufferPointer { u in
                    for i in 0..<d.dim(0) { for j in 0..<newRank { p[i * newRank + j] = u[i * newRank + j] * top.s[j] } } } }
                a = top.vt
                let sigma = full.singularValues
                let tail = sigma.dropFirst(newRank).reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
                errors.append((m.path, Float(tail), d.l2Norm(), sigma))
            default:
                let wA = c.map { Float(($0 < 0 ? -1 : 1) * abs($0).squareRoot()) }, wB = c.map { Float(abs($0).squareRoot()) }
                a = try merge(parts.map(\.m.a), weights: wA, method: method, density: density ?? 1, rng: &rng)
                b = try merge(parts.map(\.m.b), weights: wB, method: method, density: density ?? 1, rng: &rng)
            }
            modules.append(.init(path: m.path, a: a, b: b, scaling: 1))
        }
        var config = first.adapter.config
        let combinedRank = modules.map { $0.a.dim(0) }.max() ?? newRank
        config.r = combinedRank
        config.loraAlpha = config.useRSLoRA ? Double(combinedRank).squareRoot() : Double(combinedRank)
        config.rankPattern = []; config.alphaPattern = []
        config.initialization = .standard
        config.useDoRA = false
        config.targetModules = unionOfTargets(sources.map(\.adapter.config))
        // cat with per-module rank differences (rank_pattern sources) needs per-module r: record it as PEFT would.
        config.rankPattern = modules.filter { $0.a.dim(0) != combinedRank }.map { ($0.path, $0.a.dim(0)) }
        config.alphaPattern = config.rankPattern.map { ($0.key, config.useRSLoRA ? Double($0.value).squareRoot() : Double($0.value)) }
        return CombinationResult(adapter: LoRAAdapterMatrices(config: config, modules: modules), method: method, truncationErrors: errors)
    }

    /// Same modules, same base shapes, no DoRA, equal ranks where the method needs them; errors name both adapters
    /// and the module.
    static func checkCompatible(_ sources: [CombinationSource], method: AdapterCombinationMethod) throws {
        let first = sources[0]
        for s in sources where s.adapter.config.useDoRA {
            throw PEFTError.doraUnsupported(adapter: s.name, module: s.adapter.modules.first?.path,
                                            reason: "DoRA adapters cannot be combined by weighted addition (their magnitude vectors do not add; PEFT issue #3761); merge each into the base instead")
        }
        let paths = Set(first.adapter.modules.map(\.path))
        for s in sources.dropFirst() {
            let other = Set(s.adapter.modules.map(\.path))
            if let missing = paths.subtracting(other).sorted().first {
                throw PEFTError.incompatibleAdapters(first: first.name, second: s.name, module: missing,
                                                     reason: "different targets: the module is adapted by '\(first.name)' but not by '\(s.name)'")
            }
            if let extra = other.subtracting(paths).sorted().first {
                throw PEFTError.incompatibleAdapters(first: first.name, second: s.name, module: extra,
                                                     reason: "different targets: the module is adapted by '\(s.name)' but not by '\(first.name)'")
            }
            for m in first.adapter.modules {
                let o = s.adapter.module(m.path)!
                let (shape, otherShape) = ([m.b.dim(0), m.a.dim(1)], [o.b.dim(0), o.a.dim(1)])
                guard shape == otherShape else {
                    throw PEFTError.incompatibleAdapters(first: first.name, second: s.name, module: m.path,
                        reason: "different base shapes: [out, in] = \(shape) vs \(otherShape) (adapters for different models?)")
                }
                if method.needsEqualRanks, m.a.dim(0) != o.a.dim(0) {
                    throw PEFTError.incompatibleAdapters(first: first.name, second: s.name, module: m.path,
                        reason: "\(method.rawValue) needs equal ranks, got r = \(m.a.dim(0)) and \(o.a.dim(0)); use cat or svd")
                }
            }
        }
    }

    /// PEFT: union of name lists, "(p1)|(p2)" for regexes; identical selectors stay as they are.
    static func unionOfTargets(_ configs: [LoRAConfig]) -> ModuleSelector? {
        let selectors = configs.compactMap(\.targetModules)
        guard let first = selectors.first else { return nil }
        if selectors.allSatisfy({ $0 == first }) { return first }
        var names: [String] = [], regexes: [String] = []
        for s in selectors {
            switch s {
            case .names(let n): for x in n where !names.contains(x) { names.append(x) }
            case .regex(let r): regexes.append(r)
            default: regexes.append(".*")
            }
        }
        if regexes.isEmpty { return .names(names.sorted()) }
        return .regex((regexes + names.map { "(.*\\.)?\(NSRegularExpression.escapedPattern(for: $0))" }).map { "(\($0))" }.joined(separator: "|"))
    }

    /// Prune-and-merge of same-shaped task tensors with per-tensor weights (PEFT's merge_utils).
    static func merge(_ tensors: [Tensor], weights: [Float], method: AdapterCombinationMethod, density: Double,
                      rng: inout RandomGenerator) throws -> Tensor {
        let n = tensors[0].count
        var pruned = tensors
        switch method {
        case .ties, .magnitudePrune:
            if density < 1 { pruned = tensors.map { keepLargest($0, count: Int(density * Double(n))) } }
        case .dareLinear:
            if density < 1 {
                pruned = tensors.map { t in
                    let keep = rng.uniform(t.shape, low: 0, high: 1)
                    return Tensor(shape: t.shape) { p in t.withUnsafeBufferPointer { src in keep.withUnsafeBufferPointer { u in
                        for i in 0..<n { p[i] = u[i] < Float(density) ? src[i] / Float(density) : 0 } } } }
                }
            }
        default: break
        }
        return Tensor(shape: tensors[0].shape) { out in
            for i in 0..<n {
                if method == .ties {
                    var total: Float = 0
                    for t in pruned { total += t[flat: i] }
                    let majority: Float = total >= 0 ? 1 : -1
                    var sum: Float = 0, agreeing: Float = 0
                    for (k, t) in pruned.enumerated() where sign(t[flat: i]) == majority { sum += t[flat: i] * weights[k]; agreeing += 1 }
                    out[i] = sum / max(agreeing, 1)
                } else {
                    var sum: Float = 0
                    for (k, t) in pruned.enumerated() { sum += t[flat: i] * weights[k] }
                    out[i] = sum
                }
            }
        }
    }

    private static func sign(_ x: Float) -> Float { x > 0 ? 1 : (x < 0 ? -1 : 0) }

    /// t with all but its `count` largest-magnitude entries set to zero.
    static func keepLargest(_ t: Tensor, count: Int) -> Tensor {
        let values = t.array
        let order = values.indices.sorted { abs(values[$0]) > abs(values[$1]) }
        var out = [Float](repeating: 0, count: values.count)
        for i in order.prefix(max(0, count)) { out[i] = values[i] }
        return Tensor(out, shape: t.shape)
    }

    public static func stackRows(_ parts: [Tensor]) -> Tensor {
        let cols = parts[0].dim(1)
        return Tensor(parts.flatMap(\.array), shape: [parts.reduce(0) { $0 + $1.dim(0) }, cols])
    }

    public static func stackColumns(_ parts: [Tensor]) -> Tensor {
        let rows = parts[0].dim(0), total = parts.reduce(0) { $0 + $1.dim(1) }
        return Tensor(shape: [rows, total]) { p in
            var offset = 0
            for t in parts {
                let w = t.dim(1)
                t.withUnsafeBufferPointer { src in for i in 0..<rows { for j in 0..<w { p[i * total + offset + j] = src[i * w + j] } } }
                offset += w
            }
        }
    }
}
