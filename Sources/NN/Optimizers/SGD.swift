// SGD with momentum, exactly torch.optim.SGD (maximize off):
//   d ← g + wd·p;  buf ← d on the first step, else momentum·buf + (1 − dampening)·d
//   d ← d + momentum·buf (Nesterov) or buf;  p ← p − lr·d
import Autograd
import TensorCore

/// Stochastic gradient descent with optional momentum, dampening, Nesterov and (coupled) weight decay.
public final class SGD: Optimizer {
    public var learningRate: Double
    /// torch.optim.SGD hyper-parameters.
    public let momentum: Double, dampening: Double, weightDecay: Double, nesterov: Bool
    /// Parameter groups with their own decay and learning-rate multiplier.
    public let groups: [ParameterGroup]
    var buffers: [String: Tensor] = [:]

    /// One group of named parameters.
    public convenience init(parameters: [(String, Variable)], learningRate: Double, momentum: Double = 0,
                            dampening: Double = 0, weightDecay: Double = 0, nesterov: Bool = false) throws {
        try self.init(groups: [ParameterGroup(parameters)], learningRate: learningRate, momentum: momentum,
                      dampening: dampening, weightDecay: weightDecay, nesterov: nesterov)
    }

    /// Several parameter groups; throws on duplicate names, negative values, or Nesterov without momentum.
    public init(groups: [ParameterGroup], learningRate: Double, momentum: Double = 0, dampening: Double = 0,
                weightDecay: Double = 0, nesterov: Bool = false) throws {
        for (name, value) in [("learningRate", learningRate), ("momentum", momentum), ("weightDecay", weightDecay)]
        where !(value >= 0 && value.isFinite) {
            throw NNError.invalidArgument(name: "SGD \(name)", reason: "\(value) must be finite and ≥ 0")
        }
        if nesterov && (momentum <= 0 || dampening != 0) {
            throw NNError.invalidArgument(name: "SGD nesterov", reason: "needs momentum > 0 and zero dampening")
        }
        self.groups = try checkUniqueNames(groups)
        self.learningRate = learningRate; self.momentum = momentum; self.dampening = dampening
        self.weightDecay = weightDecay; self.nesterov = nesterov
    }

    public var allParameters: [(String, Variable)] { groups.flatMap(\.parameters) }

    public func step() {
        for group in groups {
            let lr = Float(learningRate * group.learningRateMultiplier)
            let wd = Float(group.weightDecay ?? weightDecay)
            for (name, p) in group.parameters {
                guard let g = p.grad else { continue }
                precondition(g.count == p.value.count, "SGD: gradient of \(name) has \(g.count) elements, parameter \(p.value.count)")
                let first = buffers[name] == nil
                var buf = buffers[name] ?? Tensor(zeros: momentum != 0 ? p.shape : [0])
                buffers[name] = nil  // unique ownership: updated in place
                let (mom, keep, nest) = (Float(momentum), Float(1 - dampening), nesterov)
                g.withUnsafeBufferPointer { pg in buf.withUnsafeMutableBufferPointer { pb in
                p.value.withUnsafeMutableBufferPointer { pp in
                    let gr = pg.baseAddress!, b = pb.baseAddress!, w = pp.baseAddress!
                    Parallel.forRanges(pp.count, minChunk: 1 << 15) { r in
                        for i in r {
                            var d = gr[i]
                            if wd != 0 { d += wd * w[i] }
                            if mom != 0 {
                                b[i] = first ? d : mom * b[i] + keep * d
                                d = nest ? d + mom * b[i] : b[i]
                            }
                            w[i] += -lr * d
                        }
                    }
                } } }
                if momentum != 0 { buffers[name] = buf }
            }
        }
    }

    public func state() -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: buffers.map { ($0.key + ".momentum_buffer", $0.value) })
    }

    public func load(state: [String: Tensor]) throws {
        let params = Dictionary(allParameters, uniquingKeysWith: { a, _ in a })
        var loaded: [String: Tensor] = [:]
        for (key, t) in state {
            let (name, _) = try parseStateKey(key, names: Set(params.keys), fields: ["momentum_buffer"])
            guard t.shape == params[name]!.shape else {
                throw NNError.shapeMismatch(name: key, expected: params[name]!.shape, got: t.shape)
            }
            loaded[name] = t
        }
        buffers = loaded
    }
}
