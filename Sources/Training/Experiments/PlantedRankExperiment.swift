// The seed documents' claim, run as an experiment: LoRA with rank r recovers a planted low-rank update as well as
// the best rank-r approximation allows (Eckart–Young), and exactly once r reaches the planted rank.
//
// Setup: frozen W [n, n]; target W + ΔW* with ΔW* = U diag(σ) Vᵀ of rank k (U, V random orthonormal). LoRA learns
// s·B·A beside W by AdamW on fresh Gaussian inputs x (loss = mean ‖x·(W + sBA)ᵀ − x·(W + ΔW*)ᵀ‖²). For isotropic x
// the expected loss is ‖sBA − ΔW*‖²_F / n, so the optimum over rank-r products is the truncated SVD of ΔW* and the
// final residual ‖W + sBA − (W + ΔW*)‖_F is bounded below by sqrt(Σ_{i>r} σ_i²).
import Foundation
import TensorCore
import Autograd
import NN
import LinearAlgebra
import PEFT

public struct PlantedRankExperiment {
    public var dimension = 256
    public var plantedSingularValues: [Float] = [8, 6, 4, 2]
    public var ranks = [1, 2, 4, 8]
    public var steps = 600
    public var batchSize = 256
    public var learningRate = 2e-2
    public var seed: UInt64 = 0

    public init() {}

    public struct Row: Sendable {
        public let rank: Int
        public let residual: Float
        public let bound: Float
        /// residual / bound − 1 (nil when the bound is 0).
        public var excess: Float? { bound > 0 ? residual / bound - 1 : nil }
        public let seconds: Double
    }

    /// ΔW* = U diag(σ) Vᵀ with orthonormal U, V from QR of Gaussian matrices.
    public func plantedUpdate(rng: inout RandomGenerator) throws -> Tensor {
        let n = dimension, k = plantedSingularValues.count
        let (u, _) = try qr(rng.normal([n, k]))
        let (v, _) = try qr(rng.normal([n, k]))
        var us = u
        us.withUnsafeMutableBufferPointer { p in
            for i in 0..<n { for j in 0..<k { p[i * k + j] *= plantedSingularValues[j] } }
        }
        return Tensor.matmul(us, v, transposeB: true)
    }

    public func run(progress: ((Row) -> Void)? = nil) throws -> [Row] {
        guard dimension > 0, !plantedSingularValues.isEmpty, plantedSingularValues.count <= dimension else {
            throw TensorError.invalidArgument(operation: "demo lowrank", reason: "planted rank must be in 1...\(dimension)")
        }
        for r in ranks where r <= 0 || r > dimension {
            throw TensorError.invalidArgument(operation: "demo lowrank", reason: "rank \(r) must be in 1...\(dimension)")
        }
        var rng = RandomGenerator(seed: seed)
        let n = dimension
        let w = rng.normal([n, n], std: 1 / Float(n).squareRoot())
        let delta = try plantedUpdate(rng: &rng)
        var target = w
        target.withUnsafeMutableBufferPointer { t in delta.withUnsafeBufferPointer { d in for i in 0..<t.count { t[i] += d[i] } } }
        let sigma = plantedSingularValues.sorted(by: >)
        var rows: [Row] = []
        for r in ranks {
            let start = Date()
            var runRNG = rng.derived(UInt64(r))
            let layer = AdaptedLinear(path: "w", weight: Variable(w))  // frozen: requiresGrad false
            let (branch, _) = try LoRABranch.initialize(weight: w, rank: r, alpha: Double(r), useRSLoRA: false, dropout: 0,
                                                        method: .standard, rng: &runRNG, module: "w")
            try layer.addAdapter("default", branch)
            let optimizer = try AdamW(parameters: branch.namedParameters, learningRate: learningRate, weightDecay: 0)
            let frozenTarget = Variable(target)
            for step in 0..<steps {
                // Cosine decay to zero: the last steps polish the optimum instead of bouncing around it.
                optimizer.learningRate = learningRate * 0.5 * (1 + cos(Double.pi * Double(step) / Double(steps)))
                let x = Variable(runRNG.normal([batchSize, n]))
                let prediction = layer.forward(x, rng: &runRNG, training: true)
                let loss = mseLoss(prediction, linear(x, weight: frozenTarget))
                optimizer.zeroGrad()
                loss.backward()
                optimizer.step()
            }
            var difference = branch.deltaWeight()
            difference.withUnsafeMutableBufferPointer { p in delta.withUnsafeBufferPointer { d in for i in 0..<p.count { p[i] -= d[i] } } }
            let residual = frobeniusNorm(difference)
            let bound = sigma.count > r ? sigma[r...].map { $0 * $0 }.reduce(0, +).squareRoot() : 0
            let row = Row(rank: r, residual: residual, bound: bound, seconds: Date().timeIntervalSince(start))
            progress?(row)
            rows.append(row)
        }
        return rows
    }
}
