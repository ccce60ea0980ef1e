// LoRA+ (Hayou et al. 2024; PEFT's `create_loraplus_optimizer`): B learns `ratio` times faster than A. PEFT's
// grouping, by parameter: anything named lora_B, or any 1-D parameter (DoRA's lora_magnitude_vector), gets
// lr × ratio; everything else (lora_A) gets lr. All groups use the same weight decay (PEFT's loraplus_weight_decay;
// here the run's --weight-decay). PEFT's third rule, a separate rate for adapters on embedding layers
// (loraplus_lr_embedding), has nothing to apply to: LoRAKit adapts linear layers only.
import Autograd
import NN

public enum LoRAPlus {
    /// Optimizer groups for LoRA+: [A-side at lr, B-side at lr × ratio] (empty groups dropped).
    public static func parameterGroups(_ parameters: [(String, Variable)], ratio: Double, weightDecay: Double? = nil) throws -> [ParameterGroup] {
        guard ratio.isFinite, ratio > 0 else {
            throw TrainingError.invalidOption(name: "--loraplus-lr-ratio", reason: "\(ratio) must be a positive number (the LoRA+ paper suggests 16)")
        }
        let isBSide = { (p: (String, Variable)) in p.0.contains("lora_B") || p.1.value.rank == 1 }
        let a = parameters.filter { !isBSide($0) }, b = parameters.filter(isBSide)
        return [ParameterGroup(a, weightDecay: weightDecay), ParameterGroup(b, weightDecay: weightDecay, learningRateMultiplier: ratio)]
            .filter { !$0.parameters.isEmpty }
    }
}
