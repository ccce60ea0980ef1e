// The communication data parallelism needs, behind one small interface: which process this is (rank) among how
// many (size), sums of flat buffers over every process (all-reduce), broadcast, barrier and abort. The trainer only
// sees `Collective`; a single process is `SingleProcessCollective` (every operation is the identity), Open MPI is
// `MPICollective` (loaded at run time). A GPU backend (NCCL) fits the same contract: flat contiguous buffers,
// blocking calls issued in the same order on every rank, results identical on every rank.
import Foundation

/// A group of cooperating processes that reduce buffers together. Every rank must make the same calls, with the
/// same element counts, in the same order (as MPI requires); a call returns once every rank has made it.
public protocol Collective: AnyObject {
    /// This process's index, 0 ..< size; rank 0 writes files and prints.
    var rank: Int { get }
    /// Number of processes in the group.
    var size: Int { get }
    /// The backend in words ("single process", "Open MPI v4.1.4, …").
    var backendDescription: String { get }
    /// Bytes and seconds spent in reductions and broadcasts so far.
    var statistics: CollectiveStatistics { get }

    /// Element-wise sum over every rank, in place; every rank receives the same values.
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws
    /// Element-wise maximum over every rank, in place.
    func allReduceMax(_ values: UnsafeMutableBufferPointer<UInt64>) throws
    /// Copies `root`'s bytes into every other rank's buffer (same length on every rank).
    func broadcast(_ bytes: UnsafeMutableRawBufferPointer, from root: Int) throws
    /// Returns once every rank has called it.
    func barrier() throws
    /// Ends every process of the group with `code` (MPI_Abort); for a failure only this rank knows about, which
    /// would otherwise leave the other ranks waiting in their next reduction forever.
    func abort(code: Int32) -> Never
    /// Leaves the group cleanly (MPI_Finalize); no call is allowed afterwards.
    func finish() throws
}

extension Collective {
    /// Rank 0: the process that writes checkpoints, metrics and the adapter, and prints progress.
    public var isRoot: Bool { rank == 0 }

    /// `allReduceSum` on an array.
    public func allReduceSum(_ values: inout [Float]) throws { try values.withUnsafeMutableBufferPointer { try allReduceSum($0) } }
    public func allReduceSum(_ values: inout [Double]) throws { try values.withUnsafeMutableBufferPointer { try allReduceSum($0) } }
    public func allReduceMax(_ values: inout [UInt64]) throws { try values.withUnsafeMutableBufferPointer { try allReduceMax($0) } }

    /// Whether every rank holds the same 64-bit value (one reduction of [v, ~v] by maximum: all equal exactly when
    /// the maximum of v and the maximum of ~v, i.e. the minimum of v, are both this rank's). Every rank gets the same answer.
    public func allRanksAgree(on value: UInt64) throws -> Bool {
        var pair = [value, ~value]
        try allReduceMax(&pair)
        return pair[0] == value && pair[1] == ~value
    }
}

/// Traffic through a `Collective`, for metrics and benchmarks.
public struct CollectiveStatistics: Equatable, Sendable {
    /// Payload bytes this rank handed to all-reduce calls (its buffer sizes, not the wire traffic of the algorithm).
    public var bytesReduced = 0
    public var bytesBroadcast = 0
    /// Reduction and broadcast calls made.
    public var calls = 0
    /// Wall time spent inside them (includes waiting for the slowest rank unless a barrier came first).
    public var seconds: Double = 0
    /// Wall time spent in barriers: waiting for the slowest rank.
    public var barrierSeconds: Double = 0

    public init() {}

    /// The traffic between an earlier snapshot and this one.
    public func since(_ earlier: CollectiveStatistics) -> CollectiveStatistics {
        var d = CollectiveStatistics()
        d.bytesReduced = bytesReduced - earlier.bytesReduced; d.bytesBroadcast = bytesBroadcast - earlier.bytesBroadcast
        d.calls = calls - earlier.calls; d.seconds = seconds - earlier.seconds
        d.barrierSeconds = barrierSeconds - earlier.barrierSeconds
        return d
    }
}

/// One process alone: rank 0 of 1, every reduction is the identity. What training without `--distributed` uses.
public final class SingleProcessCollective: Collective {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var backendDescription: String { "single process" }
    public var statistics: CollectiveStatistics { CollectiveStatistics() }
    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws {}
    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws {}
    public func allReduceMax(_ values: UnsafeMutableBufferPointer<UInt64>) throws {}
    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, from root: Int) throws {}
    public func barrier() throws {}
    public func abort(code: Int32) -> Never { exit(code) }
    public func finish() throws {}
}
