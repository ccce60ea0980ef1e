// Typed errors of the trainer, its checkpoints and its configuration; each names the option, step, file or key.

/// Why training could not start, go on, or resume.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    /// An option is out of range or inconsistent with another.
    case invalidOption(name: String, reason: String)
    /// The loss or the gradient norm stopped being finite; nothing of that step was applied or saved.
    case nonFinite(quantity: String, step: Int, value: Float, learningRate: Double, lastCheckpoint: String?)
    /// A checkpoint is missing, unreadable or incomplete.
    case checkpoint(path: String, reason: String)
    /// A checkpoint was written by a run with other settings, so resuming would not continue that run.
    case checkpointMismatch(path: String, field: String, checkpoint: String, current: String)
    /// A file or directory could not be written.
    case file(path: String, reason: String)
    /// A configuration file is unreadable, or one of its keys is unknown or has a value of the wrong type.
    case configFile(path: String, key: String?, reason: String)

    public var description: String {
        switch self {
        case let .invalidOption(name, reason): return "invalid option \(name): \(reason)"
        case let .nonFinite(quantity, step, value, lr, checkpoint):
            let where_ = checkpoint.map { "The last good checkpoint is kept at \($0); resume from it with --resume \($0)" }
                ?? "No checkpoint had been written yet"
            return "training stopped at step \(step): the \(quantity) became \(value) (learning rate \(lr)). Nothing of this step was "
                + "applied or saved. \(where_), ideally with a lower --learning-rate or a tighter --clip."
        case let .checkpoint(path, reason): return "\(path): not a usable checkpoint: \(reason)"
        case let .checkpointMismatch(path, field, checkpoint, current):
            return "\(path): the checkpoint was written with \(field) = \(checkpoint), this run has \(current); resuming would not "
                + "continue that run (start a new run, or use the same \(field))"
        case let .file(path, reason): return "\(path): \(reason)"
        case let .configFile(path, key, reason):
            return key.map { "\(path): key \"\($0)\": \(reason)" } ?? "\(path): \(reason)"
        }
    }
}
