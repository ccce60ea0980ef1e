// Learning-rate schedules with Hugging Face transformers' arithmetic (get_{cosine,linear,constant}_schedule_with_warmup),
// so a run's learning rates match what users know. Step i is 0-based: the i-th optimizer step uses lr(i).
//   warmup (i < w):  peak · i / w                      (the first step of a warmed-up run has lr 0, as in HF)
//   then, with p = (i − w) / (total − w) clamped to [0, 1]:
//     cosine:   min + (peak − min) · ½ · (1 + cos(π p))
//     linear:   min + (peak − min) · (1 − p)
//     constant: peak
import Foundation

/// The shape of the learning rate after warmup.
public enum LRDecay: String, CaseIterable, Sendable {
    case cosine, linear, constant
}

/// Linear warmup then decay to `minLearningRate` at `totalSteps`.
public struct LRSchedule: Equatable, Sendable {
    public var peakLearningRate: Double
    public var warmupSteps: Int
    public var totalSteps: Int
    public var decay: LRDecay
    /// Where cosine and linear decay end (HF's `cosine_with_min_lr`; 0 by default).
    public var minLearningRate: Double

    /// Throws unless 0 ≤ warmup, 1 ≤ total and 0 ≤ min ≤ peak (all finite).
    public init(peakLearningRate: Double, warmupSteps: Int = 0, totalSteps: Int, decay: LRDecay = .cosine,
                minLearningRate: Double = 0) throws {
        guard peakLearningRate.isFinite, peakLearningRate >= 0 else {
            throw TrainingError.invalidOption(name: "learning rate", reason: "\(peakLearningRate) must be finite and ≥ 0")
        }
        guard totalSteps >= 1 else { throw TrainingError.invalidOption(name: "iterations", reason: "\(totalSteps) must be at least 1") }
        guard warmupSteps >= 0 else { throw TrainingError.invalidOption(name: "warmup", reason: "\(warmupSteps) must be ≥ 0") }
        guard minLearningRate.isFinite, minLearningRate >= 0, minLearningRate <= peakLearningRate else {
            throw TrainingError.invalidOption(name: "min learning rate", reason: "\(minLearningRate) must be in [0, \(peakLearningRate)]")
        }
        self.peakLearningRate = peakLearningRate; self.warmupSteps = warmupSteps; self.totalSteps = totalSteps
        self.decay = decay; self.minLearningRate = minLearningRate
    }

    /// The learning rate of the 0-based optimizer step `step`.
    public func learningRate(at step: Int) -> Double {
        if step < warmupSteps { return peakLearningRate * Double(step) / Double(warmupSteps) }
        let progress = min(max(Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps)), 0), 1)
        let span = peakLearningRate - minLearningRate
        switch decay {
        case .cosine: return minLearningRate + span * 0.5 * (1 + cos(Double.pi * progress))
        case .linear: return minLearningRate + span * (1 - progress)
        case .constant: return peakLearningRate
        }
    }
}
