// Checkpoints: everything a run needs to continue exactly where it stopped.
//   <run>/checkpoints/step-000300/adapter_config.json          the adapter, in PEFT's format (loadable as is)
//                                 adapter_model.safetensors
//                                 trainer_state.safetensors   AdamW moments and steps ("optimizer.<param>.<field>"),
//                                                              step, data position, dropout RNG (seed, position) as I64,
//                                                              AdaLoRA's allocator state ("adalora.<name>": importance
//                                                              EMAs, rank pattern), and the run's settings in the metadata
// AdaLoRA checkpoints hold the full init_r tensors, exactly as the model holds them (masked E entries regrow between
// allocations, so slicing to the pattern would lose values), without rank_pattern; the pattern lives in the state.
// A checkpoint is written into a hidden temporary directory and renamed into place, so a crash mid-save leaves
// either no new checkpoint or a complete one, and never touches the checkpoints already there.
import Foundation
import Formats
import NN
import PEFT
import TensorCore

/// A checkpoint read back from disk.
public struct TrainerCheckpoint {
    public static let stateFileName = "trainer_state.safetensors"
    public static let directoryPrefix = "step-"
    static let format = "lorakit-trainer-state-1"
    static let allocatorPrefix = "adalora."

    /// The checkpoint directory (holds the adapter files and the trainer state).
    public let directory: URL
    /// Optimizer steps completed when it was written.
    public let step: Int
    public let dataPosition: DataPosition
    /// The dropout stream, continued exactly.
    public let rng: RandomGenerator
    /// AdamW state as `Optimizer.state()` exported it.
    public let optimizerState: [String: Tensor]
    /// AdaLoRA's rank-allocator state as `RankAllocator.exportState()` exported it (empty for LoRA).
    public let allocatorState: [String: Tensor]
    /// Settings of the run that wrote it (batch size, seed, …), compared on resume.
    public let settings: [String: String]

    /// Directory name of the checkpoint after `step` steps ("step-000300").
    public static func directoryName(step: Int) -> String { directoryPrefix + String(format: "%06d", step) }

    /// Writes a LoRA checkpoint under `checkpointsDirectory` atomically; returns its directory.
    @discardableResult
    public static func write(into checkpointsDirectory: URL, step: Int, model: AdaptableModel, adapterName: String,
                             loraConfig: LoRAConfig, optimizer: Optimizer, dataPosition: DataPosition,
                             rng: RandomGenerator, settings: [String: String]) throws -> URL {
        try write(into: checkpointsDirectory, step: step, model: model, adapterName: adapterName, method: .lora(loraConfig),
                  allocatorState: [:], optimizer: optimizer, dataPosition: dataPosition, rng: rng, settings: settings)
    }

    /// Writes a checkpoint of either method atomically; returns its directory. An AdaLoRA adapter is written with
    /// its full init_r tensors (E regrows between allocations, so slicing would lose values) and without
    /// rank_pattern; the pattern and importance EMAs go into the trainer state as `allocatorState`
    /// (`RankAllocator.exportState()`).
    @discardableResult
    public static func write(into checkpointsDirectory: URL, step: Int, model: AdaptableModel, adapterName: String,
                             method: AdapterMethod, allocatorState: [String: Tensor], optimizer: Optimizer,
                             dataPosition: DataPosition, rng: RandomGenerator, settings: [String: String]) throws -> URL {
        let fm = FileManager.default
        let final = checkpointsDirectory.appendingPathComponent(directoryName(step: step))
        let temporary = checkpointsDirectory.appendingPathComponent(".\(directoryName(step: step)).tmp-\(getpid())")
        do {
            try fm.createDirectory(at: checkpointsDirectory, withIntermediateDirectories: true)
            removeStaleTemporaries(in: checkpointsDirectory)
            if fm.fileExists(atPath: temporary.path) { try fm.removeItem(at: temporary) }
            try fm.createDirectory(at: temporary, withIntermediateDirectories: false)
        } catch {
            throw TrainingError.file(path: checkpointsDirectory.path, reason: "cannot create checkpoint directory: \(error.localizedDescription)")
        }
        var installed = false
        defer { if !installed { try? fm.removeItem(at: temporary) } }
        switch method {
        case .lora(let config): try AdapterFiles.saveLoRA(model, adapter: adapterName, config: config, to: temporary)
        case .adalora(var config, _):
            config.rankPattern = nil
            try AdapterFiles.saveAdaLoRA(model, adapter: adapterName, config: config, to: temporary)
        }
        var entries = optimizer.state().sorted { $0.key < $1.key }.map { SafeTensorsEntry.float("optimizer." + $0.key, $0.value) }
        entries += allocatorState.sorted { $0.key < $1.key }.map { SafeTensorsEntry.float(allocatorPrefix + $0.key, $0.value) }
        let counters: [(String, Int64)] = [
            ("trainer.step", Int64(step)), ("trainer.data_epoch", Int64(dataPosition.epoch)),
            ("trainer.data_offset", Int64(dataPosition.offset)),
            ("trainer.rng_seed", Int64(bitPattern: rng.seed)), ("trainer.rng_position", Int64(bitPattern: rng.position)),
        ]
        entries += counters.map { SafeTensorsEntry.int64($0.0, [$0.1], shape: [1]) }
        var metadata = settings
        metadata["format"] = format
        try SafeTensorsWriter.write(entries, metadata: metadata, to: temporary.appendingPathComponent(stateFileName))
        // Re-saving a step (a resumed run passing it again): move the old one aside first, drop it once replaced.
        var displaced: URL? = nil
        if fm.fileExists(atPath: final.path) {
            let aside = checkpointsDirectory.appendingPathComponent(".\(directoryName(step: step)).old-\(getpid())")
            try? fm.removeItem(at: aside)
            guard rename(final.path, aside.path) == 0 else {
                throw TrainingError.file(path: final.path, reason: "cannot replace the existing checkpoint (errno \(errno))")
            }
            displaced = aside
        }
        guard rename(temporary.path, final.path) == 0 else {
            if let displaced { _ = rename(displaced.path, final.path) }
            throw TrainingError.file(path: final.path, reason: "cannot move the checkpoint into place (errno \(errno))")
        }
        installed = true
        syncDirectory(checkpointsDirectory)  // the rename itself survives a power cut, not only a killed process
        if let displaced { try? fm.removeItem(at: displaced) }
        return final
    }

    /// Deletes a checkpoint (rotation): renamed to a hidden name first, so a kill mid-delete never leaves a
    /// half-deleted `step-*` directory that still looks like a checkpoint.
    public static func remove(_ directory: URL) {
        let aside = directory.deletingLastPathComponent()
            .appendingPathComponent(".\(directory.lastPathComponent).removing-\(getpid())")
        guard rename(directory.path, aside.path) == 0 else { try? FileManager.default.removeItem(at: directory); return }
        try? FileManager.default.removeItem(at: aside)
    }

    /// Hidden leftovers of killed runs (`.step-N.tmp-<pid>`, `.old-<pid>`, `.removing-<pid>` of processes that are gone).
    static func removeStaleTemporaries(in checkpointsDirectory: URL) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpointsDirectory.path)) ?? []
        for name in names where name.hasPrefix("." + directoryPrefix) {
            for marker in [".tmp-", ".old-", ".removing-"] {
                guard let range = name.range(of: marker), let pid = Int32(name[range.upperBound...]),
                      !AtomicFile.processIsAlive(pid) else { continue }
                try? FileManager.default.removeItem(at: checkpointsDirectory.appendingPathComponent(name))
            }
        }
    }

    static func syncDirectory(_ url: URL) {
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 { _ = fsync(fd); close(fd) }
    }

    /// Complete checkpoints under a run's `checkpoints` directory, oldest first, as (step, directory).
    public static func list(in checkpointsDirectory: URL) -> [(step: Int, directory: URL)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpointsDirectory.path)) ?? []
        return names.compactMap { name -> (Int, URL)? in
            guard name.hasPrefix(directoryPrefix), let step = Int(name.dropFirst(directoryPrefix.count)) else { return nil }
            let url = checkpointsDirectory.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.appendingPathComponent(stateFileName).path) else { return nil }
            return (step, url)
        }.sorted { $0.0 < $1.0 }
    }

    /// The checkpoint a `--resume` path means: the directory itself when it holds a trainer state, else the
    /// newest checkpoint in its `checkpoints` subdirectory (a run's output directory).
    /// Resolving for a resume also clears the leftovers of killed writers beside the checkpoint (a resumed run
    /// that is already at its last step writes no checkpoint that would do it).
    public static func resolve(_ url: URL) throws -> URL {
        if FileManager.default.fileExists(atPath: url.appendingPathComponent(stateFileName).path) {
            removeStaleTemporaries(in: url.deletingLastPathComponent())
            return url
        }
        guard FileManager.default.fileExists(atPath: url.path) else { throw TrainingError.checkpoint(path: url.path, reason: "no such directory") }
        guard let latest = list(in: url.appendingPathComponent("checkpoints")).last else {
            throw TrainingError.checkpoint(path: url.path, reason: "holds neither \(stateFileName) nor checkpoints/\(directoryPrefix)*")
        }
        removeStaleTemporaries(in: url.appendingPathComponent("checkpoints"))
        return latest.directory
    }

    /// Reads the trainer state of a checkpoint directory (the adapter files are loaded by the trainer).
    public static func load(_ directory: URL) throws -> TrainerCheckpoint {
        let stateURL = directory.appendingPathComponent(stateFileName)
        guard FileManager.default.fileExists(atPath: stateURL.path) else {
            throw TrainingError.checkpoint(path: directory.path, reason: "\(stateFileName) is missing")
        }
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(contentsOf: stateURL) } catch {
            throw TrainingError.checkpoint(path: stateURL.path, reason: "\(error)")
        }
        guard file.metadata["format"] == format else {
            throw TrainingError.checkpoint(path: stateURL.path, reason: "format is \(file.metadata["format"] ?? "missing"), expected \(format)")
        }
        func counter(_ name: String) throws -> Int64 {
            guard file.contains(name) else { throw TrainingError.checkpoint(path: stateURL.path, reason: "tensor \(name) is missing") }
            let values: [Int64]
            do { values = try file.int64s(name) } catch { throw TrainingError.checkpoint(path: stateURL.path, reason: "\(error)") }
            guard values.count == 1 else { throw TrainingError.checkpoint(path: stateURL.path, reason: "\(name) must hold one value, has \(values.count)") }
            return values[0]
        }
        let step = try counter("trainer.step"), epoch = try counter("trainer.data_epoch"), offset = try counter("trainer.data_offset")
        guard step >= 0, epoch >= 0, offset >= 0 else {
            throw TrainingError.checkpoint(path: stateURL.path, reason: "negative step or data position (\(step), \(epoch), \(offset))")
        }
        let rng = RandomGenerator(seed: UInt64(bitPattern: try counter("trainer.rng_seed")),
                                  position: UInt64(bitPattern: try counter("trainer.rng_position")))
        var optimizerState: [String: Tensor] = [:]
        for name in file.names where name.hasPrefix("optimizer.") {
            do { optimizerState[String(name.dropFirst("optimizer.".count))] = try file.tensor(name) } catch {
                throw TrainingError.checkpoint(path: stateURL.path, reason: "\(error)")
            }
        }
        var allocatorState: [String: Tensor] = [:]
        for name in file.names where name.hasPrefix(allocatorPrefix) {
            do { allocatorState[String(name.dropFirst(allocatorPrefix.count))] = try file.tensor(name) } catch {
                throw TrainingError.checkpoint(path: stateURL.path, reason: "\(error)")
            }
        }
        var settings = file.metadata
        settings["format"] = nil
        return TrainerCheckpoint(directory: directory, step: Int(step), dataPosition: DataPosition(epoch: Int(epoch), offset: Int(offset)),
                                 rng: rng, optimizerState: optimizerState, allocatorState: allocatorState, settings: settings)
    }
}
