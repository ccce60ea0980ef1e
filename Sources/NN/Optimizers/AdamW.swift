// AdamW with exactly torch.optim.AdamW's arithmetic (single-tensor path, amsgrad off):
//   p ← p·(1 − lr·wd)                         decoupled weight decay, before the moment update
//   m ← m + (1 − β1)·(g − m)                  (torch: exp_avg.lerp_(grad, 1 − β1))
//   v ← β2·v + (1 − β2)·g²
//   step_size = lr / (1 − β1ᵗ);  denom = √v / √(1 − β2ᵗ) + ε
//   p ← p − step_size · m / denom
// Hyper-parameters are Double, as Python floats are in torch: 1 − β2 computed in Float32 would be off by
// 1.3e-5 relative (0.999 is not representable); constants are formed in Double and rounded to Float32 once.
import Autograd
import Foundation
import TensorCore

/// Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch semantics and defaults.
public final class AdamW: Optimizer {
    public var learningRate: Double
    /// Moment decay rates and the denominator term (torch defaults 0.9, 0.999, 1e-8).
    public let beta1: Double, beta2: Double, epsilon: Double
    /// Default weight decay, used by groups that do not set their own.
    public let weightDecay: Double
    /// Parameter groups with their own decay and learning-rate multiplier.
    public let groups: [ParameterGroup]

    /// Moments and step count of one parameter; created on its first update.
    struct Moments { var step: Int; var expAvg: Tensor; var expAvgSq: Tensor }
    var moments: [String: Moments] = [:]

    /// One group of named parameters.
    public convenience init(parameters: [(String, Variable)], learningRate: Double = 1e-3, beta1: Double = 0.9,
                            beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0.01) throws {
        try self.init(groups: [ParameterGroup(parameters)], learningRate: learningRate, beta1: beta1, beta2: beta2,
                      epsilon: epsilon, weightDecay: weightDecay)
    }

    /// Several parameter groups; throws on duplicate names or out-of-range hyper-parameters.
    public init(groups: [ParameterGroup], learningRate: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999,
                epsilon: Double = 1e-8, weightDecay: Double = 0.01) throws {
        for (name, value) in [("learningRate", learningRate), ("epsilon", epsilon), ("weightDecay", weightDecay)]
        where !(value >= 0 && value.isFinite) {
            throw NNError.invalidArgument(name: "AdamW \(name)", reason: "\(value) must be finite and ≥ 0")
        }
        for (name, beta) in [("beta1", beta1), ("beta2", beta2)] where !(beta >= 0 && beta < 1) {
            throw NNError.invalidArgument(name: "AdamW \(name)", reason: "\(beta) is outside [0, 1)")
        }
        self.groups = try checkUniqueNames(groups)
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2
        self.epsilon = epsilon; self.weightDecay = weightDecay
    }

    public var allParameters: [(String, Variable)] { groups.flatMap(\.parameters) }

    public func step() {
        for group in groups {
            let lr = learningRate * group.learningRateMultiplier
            let wd = group.weightDecay ?? weightDecay
            for (name, p) in group.parameters {
                guard let g = p.grad else { continue }
                precondition(g.count == p.value.count, "AdamW: gradient of \(name) has \(g.count) elements, parameter \(p.value.count)")
                var s = moments[name] ?? Moments(step: 0, expAvg: Tensor(zeros: p.shape), expAvgSq: Tensor(zeros: p.shape))
                moments[name] = nil  // unique ownership: the moment buffers are updated in place
                s.step += 1
                let t = Double(s.step)
                let decay = Float(1 - lr * wd)
                let stepSize = Float(lr / (1 - Foundation.pow(beta1, t)))
                let bc2Sqrt = Float((1 - Foundation.pow(beta2, t)).squareRoot())
                let (b1c, b2, b2c, eps) = (Float(1 - beta1), Float(beta2), Float(1 - beta2), Float(epsilon))
                g.withUnsafeBufferPointer { pg in
                s.expAvg.withUnsafeMutableBufferPointer { pm in s.expAvgSq.withUnsafeMutableBufferPointer { pv in
                p.value.withUnsafeMutableBufferPointer { pp in
                    let gr = pg.baseAddress!, m = pm.baseAddress!, v = pv.baseAddress!, w = pp.baseAddress!
                    Parallel.forRanges(pp.count, minChunk: 1 << 14) { r in
                        for i in r {
                            w[i] *= decay
                            m[i] += b1c * (gr[i] - m[i])
                            v[i] = v[i] * b2 + b2c * gr[i] * gr[i]
                            let denom = v[i].squareRoot() / bc2Sqrt + eps
                            w[i] += -stepSize * m[i] / denom
                        }
                    }
                } } } }
                moments[name] = s
            }
        }
    }

    public func state() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, s) in moments {
            out[name + ".step"] = .scalar(Float(s.step))
            out[name + ".exp_avg"] = s.expAvg
            out[name + ".exp_avg_sq"] = s.expAvgSq
        }
        return out
    }

    public func load(state: [String: Tensor]) throws {
        let params = Dictionary(allParameters, uniquingKeysWith: { a, _ in a })
        var parts: [String: [String: Tensor]] = [:]
        for (key, t) in state {
            let (name, field) = try parseStateKey(key, names: Set(params.keys), fields: ["step", "exp_avg", "exp_avg_sq"])
            parts[name, default: [:]][field] = t
        }
        var loaded: [String: Moments] = [:]
        for (name, fields) in parts {
            guard let st = fields["step"], let m = fields["exp_avg"], let v = fields["exp_avg_sq"] else {
                throw NNError.invalidOptimizerState(key: name, reason: "needs step, exp_avg and exp_avg_sq together")
            }
            let shape = params[name]!.shape
            for (field, t) in [("exp_avg", m), ("exp_avg_sq", v)] where t.shape != shape {
                throw NNError.shapeMismatch(name: name + "." + field, expected: shape, got: t.shape)
            }
            loaded[name] = Moments(step: try parseStep(st, key: name + ".step"), expAvg: m, expAvgSq: v)
        }
        moments = loaded
    }
}
