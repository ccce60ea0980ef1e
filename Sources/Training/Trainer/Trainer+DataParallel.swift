// Data-parallel training: N ranks (processes, `Collective`) each hold the model and train one adapter together.
//
// The global batch is what one process would train on: each optimizer step draws `gradientAccumulation`
// micro-batches of `batchSize` rows from the same seeded sampler on every rank (so the global batch order is the
// single process's, whatever N). Rank r of N computes rows ⌊r·B/N⌋ ..< ⌊(r+1)·B/N⌋ of every micro-batch, padded to the
// micro-batch's length (`TokenBatch.rows`), with the dropout stream sharded by rows (`RandomGenerator.RowShard`),
// so its rows see exactly the masks one process would draw for them. Its loss on those rows (mean over its
// targets) is back-propagated with weight (its targets / all targets of the step), so the sum over ranks and
// micro-batches of what they accumulate is the single process's gradient: that of the mean over every target of
// the step, padding and −100 labels excluded. After the last micro-batch one all-reduce (sum) of the flat adapter
// gradients (plus one Double for the loss) gives every rank that gradient; clipping, AdamW, the learning-rate
// schedule and AdaLoRA's allocator (which reads the reduced gradients) then run identically on every rank, so the
// replicas stay equal (checked at every checkpoint by a hash of the adapter and allocator state).
// Communication per step: the adapter's size in floats (+ one flag per tensor, + 8 bytes), never the model.
// Evaluation: batch i of the valid split goes to rank i mod N; loss sums, targets and tokens are all-reduced.
// Only rank 0 writes files and prints. Checkpoints hold no rank count, so a run resumes on any number of ranks.
import Autograd
import Collectives
import Foundation
import TensorCore

/// Why a data-parallel run cannot go on.
public enum DataParallelError: Error, CustomStringConvertible, Equatable {
    /// Every rank needs at least one row of each micro-batch.
    case batchTooSmall(batchSize: Int, ranks: Int)
    /// The ranks' adapters (or AdaLoRA allocator states) no longer agree: a reduction did not give every rank the
    /// same values. Nothing of that step was saved.
    case replicasDiverged(step: Int)

    public var description: String {
        switch self {
        case let .batchTooSmall(batchSize, ranks):
            return "invalid option batch size: \(batchSize) rows cannot be shared by \(ranks) ranks (every rank takes at least one row of "
                + "each micro-batch; --batch-size is the global micro-batch): use --batch-size \(ranks) or more, or fewer ranks"
        case let .replicasDiverged(step):
            return "the ranks' adapters differ after step \(step) (the all-reduce did not give every rank the same gradients); no "
                + "checkpoint of this step was written"
        }
    }
}

extension Trainer {
    /// Rank `rank`'s rows of a micro-batch of `rows` rows shared by `ranks` ranks: contiguous, sizes differing by at
    /// most one, rank 0 first.
    public static func shardRows(_ rows: Int, rank: Int, ranks: Int) -> Range<Int> {
        (rows * rank / ranks)..<(rows * (rank + 1) / ranks)
    }

    /// Throws when the batch cannot give every rank a row.
    func checkDataParallelBatch() throws {
        guard collective.size > 1 else { return }
        guard configuration.batchSize >= collective.size else {
            throw DataParallelError.batchTooSmall(batchSize: configuration.batchSize, ranks: collective.size)
        }
    }

    /// One optimizer step's adapter gradients: `accumulateGradients` in one process; across ranks, this rank's rows
    /// of every micro-batch, then the all-reduce, so every rank ends with the gradient of the mean loss over all
    /// targets of the step. Returns that mean and the step's target count (the same on every rank). A non-finite
    /// loss on any rank is reported by every rank alike (after the loss reduction, before the gradients').
    func accumulateStepGradients(_ batches: [TokenBatch], parameters: [Variable], rng: inout RandomGenerator,
                                 nonFinite: (Float) -> Error) throws -> (loss: Float, targets: Int) {
        guard collective.size > 1 else { return try accumulateGradients(batches, rng: &rng, nonFinite: nonFinite) }
        let targets = batches.reduce(0) { $0 + $1.targetCount }  // every rank holds the whole micro-batches
        var weighted: Double = 0
        for batch in batches where batch.targetCount > 0 {
            let rows = Self.shardRows(batch.rows, rank: collective.rank, ranks: collective.size)
            let shard = batch.rows(rows)
            var local = rng
            local.rowShard = try RandomGenerator.RowShard(offset: rows.lowerBound, count: rows.count, total: batch.rows)
            // Runs even when these rows have no targets (the forward advances the shared dropout stream).
            let loss = try model.loss(batch: shard, training: true, rng: &local)
            rng.position = local.position
            let value = loss.value.scalarValue
            guard value.isFinite else { weighted = .nan; continue }
            if shard.targetCount > 0 { loss.backward(seed: .scalar(Float(shard.targetCount) / Float(targets))) }
            weighted += Double(value) * Double(shard.targetCount)
        }
        var sum = [weighted]
        try collective.barrier()  // the wait for the slowest rank, timed apart from the reductions
        try collective.allReduceSum(&sum)
        let mean = targets > 0 ? sum[0] / Double(targets) : 0
        guard mean.isFinite else { throw nonFinite(Float(mean)) }
        try reduceGradients(parameters)
        return (Float(mean), targets)
    }

    /// Sums every rank's gradients of `parameters` in one all-reduce of a flat buffer: the gradients in order, then
    /// one presence flag per tensor, so a tensor no rank gave a gradient stays without one (AdamW skips it, as in
    /// one process) and one only some ranks touched counts as zero on the others.
    func reduceGradients(_ parameters: [Variable]) throws {
        let counts = parameters.map(\.value.count)
        let total = counts.reduce(0, +)
        var buffer = [Float](repeating: 0, count: total + parameters.count)
        var offset = 0
        for (i, p) in parameters.enumerated() {
            if let g = p.grad {
                buffer.replaceSubrange(offset..<(offset + counts[i]), with: g.array)
                buffer[total + i] = 1
            }
            offset += counts[i]
        }
        try collective.allReduceSum(&buffer)
        offset = 0
        for (i, p) in parameters.enumerated() {
            p.grad = buffer[total + i] > 0 ? Tensor(Array(buffer[offset..<(offset + counts[i])]), shape: p.value.shape) : nil
            offset += counts[i]
        }
    }

    /// Throws `replicasDiverged` unless every rank holds the same adapter values and allocator state (a 64-bit
    /// FNV-1a hash of their bits, compared in one reduction).
    func checkReplicasAgree(_ parameters: [(String, Variable)], allocatorState: [String: Tensor], step: Int) throws {
        guard collective.size > 1 else { return }
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        func mix(_ values: [Float]) { for v in values { hash = (hash ^ UInt64(v.bitPattern)) &* 0x0000_0100_0000_01B3 } }
        for (_, p) in parameters { mix(p.value.array) }
        for key in allocatorState.keys.sorted() { mix(allocatorState[key]!.array) }
        guard try collective.allRanksAgree(on: hash) else { throw DataParallelError.replicasDiverged(step: step) }
    }

    /// What a step's metrics record gets from the collective: ranks, bytes all-reduced by this rank, the seconds
    /// spent waiting for the slowest rank (the barrier before the reductions) and in the reductions themselves.
    /// Empty in one process.
    func dataParallelRecord(since before: CollectiveStatistics) -> [String: MetricValue] {
        guard collective.size > 1 else { return [:] }
        let delta = collective.statistics.since(before)
        return ["ranks": .int(collective.size), "allreduce_bytes": .int(delta.bytesReduced),
                "allreduce_seconds": .double((delta.seconds * 1e6).rounded() / 1e6),
                "rank_wait_seconds": .double((delta.barrierSeconds * 1e6).rounded() / 1e6)]
    }
}
