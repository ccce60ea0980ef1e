// The contract between a PEFT method and the training loop, so methods with training-time machinery (AdaLoRA's
// rank allocator and regulariser) run without the user remembering to call them (PEFT issue #1327).
import Autograd

/// What a method needs from a training loop besides forward and backward, for loops other than LoRAKit's
/// `Trainer` (which drives the rank allocator itself, logging its budgets). Per step: `loss + regularizationLoss()`
/// → backward → optimizer step → `afterOptimizerStep(step)` → clear gradients.
public protocol AdapterTrainingHook: AnyObject {
    /// A term to add to the loss before backward (nil: none).
    func regularizationLoss() -> Variable?
    /// Runs after optimizer step `step` (0-based), while gradients are still present. Returns a short progress
    /// note (e.g. the current budget) or nil.
    func afterOptimizerStep(_ step: Int) throws -> String?
}
