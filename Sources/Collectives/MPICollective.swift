// `Collective` over Open MPI's MPI_COMM_WORLD. One per process (MPI is initialised once): `MPICollective.shared`.
// Errors return as codes (MPI_ERRORS_RETURN) and become typed errors naming the call, so a failed reduction (a peer
// died) is reported rather than aborting inside the library. Counts above Int32.max are sent in pieces.
import Foundation

/// The ranks `mpirun` started, communicating through Open MPI.
public final class MPICollective: Collective {
    public let rank: Int
    public let size: Int
    public let backendDescription: String
    public private(set) var statistics = CollectiveStatistics()
    private let mpi: MPILibrary
    private var finished = false

    private nonisolated(unsafe) static var opened: MPICollective?

    /// The process's MPI group: loads the library (`library`, else LORAKIT_MPI_LIBRARY, else libmpi.so.40) and
    /// initialises MPI on the first call; later calls return the same group. Throws `CollectiveError` when the
    /// library is missing or is not Open MPI.
    public static func shared(library: String? = nil) throws -> MPICollective {
        if let opened { return opened }
        let path = library ?? ProcessInfo.processInfo.environment["LORAKIT_MPI_LIBRARY"] ?? MPILibrary.defaultPath
        let collective = try MPICollective(mpi: try MPILibrary.load(path: path))
        opened = collective
        return collective
    }

    /// Loads `library` and resolves every symbol the binding needs, without initialising MPI: throws the
    /// `CollectiveError` that `shared` would.
    public static func probe(library: String) throws {
        _ = try MPILibrary.load(path: library)
    }

    private init(mpi: MPILibrary) throws {
        self.mpi = mpi
        var flag: Int32 = 0
        _ = mpi.initialized(&flag)
        if flag == 0 {
            var provided: Int32 = 0
            let code = mpi.initThread(nil, nil, MPILibrary.threadFunneled, &provided)
            guard code == 0 else { throw CollectiveError.operationFailed(operation: "MPI_Init_thread", code: code, message: mpi.message(code)) }
        }
        _ = mpi.setErrorHandler(mpi.commWorld, mpi.errorsReturn)
        var r: Int32 = 0, s: Int32 = 0
        try Self.check(mpi, "MPI_Comm_rank", mpi.commRank(mpi.commWorld, &r))
        try Self.check(mpi, "MPI_Comm_size", mpi.commSize(mpi.commWorld, &s))
        rank = Int(r); size = Int(s)
        backendDescription = mpi.version
    }

    private static func check(_ mpi: MPILibrary, _ operation: String, _ code: Int32) throws {
        guard code == 0 else { throw CollectiveError.operationFailed(operation: operation, code: code, message: mpi.message(code)) }
    }

    /// Runs `body` over pieces of at most Int32.max elements (MPI counts are C ints), timing the whole call.
    private func pieces(_ count: Int, bytesPerElement: Int, reduce: Bool, _ body: (_ offset: Int, _ length: Int32) -> Int32,
                        operation: String) throws {
        precondition(!finished, "\(operation) after MPI_Finalize")
        let started = DispatchTime.now().uptimeNanoseconds
        var offset = 0
        let limit = Int(Int32.max)
        repeat {
            let n = min(limit, count - offset)
            try Self.check(mpi, operation, body(offset, Int32(n)))
            offset += n
        } while offset < count
        statistics.calls += 1
        if reduce { statistics.bytesReduced += count * bytesPerElement } else { statistics.bytesBroadcast += count * bytesPerElement }
        statistics.seconds += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    }

    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = values.baseAddress, !values.isEmpty else { return }
        try pieces(values.count, bytesPerElement: 4, reduce: true, { offset, n in
            mpi.allReduce(MPILibrary.inPlace, base + offset, n, mpi.float, mpi.sum, mpi.commWorld)
        }, operation: "MPI_Allreduce (sum of \(values.count) floats)")
    }

    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws {
        guard let base = values.baseAddress, !values.isEmpty else { return }
        try pieces(values.count, bytesPerElement: 8, reduce: true, { offset, n in
            mpi.allReduce(MPILibrary.inPlace, base + offset, n, mpi.double, mpi.sum, mpi.commWorld)
        }, operation: "MPI_Allreduce (sum of \(values.count) doubles)")
    }

    public func allReduceMax(_ values: UnsafeMutableBufferPointer<UInt64>) throws {
        guard let base = values.baseAddress, !values.isEmpty else { return }
        try pieces(values.count, bytesPerElement: 8, reduce: true, { offset, n in
            mpi.allReduce(MPILibrary.inPlace, base + offset, n, mpi.uint64, mpi.max, mpi.commWorld)
        }, operation: "MPI_Allreduce (maximum of \(values.count) integers)")
    }

    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, from root: Int) throws {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        precondition((0..<size).contains(root), "broadcast root \(root) is not a rank of \(size)")
        try pieces(bytes.count, bytesPerElement: 1, reduce: false, { offset, n in
            mpi.broadcast(base + offset, n, mpi.byte, Int32(root), mpi.commWorld)
        }, operation: "MPI_Bcast (\(bytes.count) bytes)")
    }

    public func barrier() throws {
        precondition(!finished, "MPI_Barrier after MPI_Finalize")
        let started = DispatchTime.now().uptimeNanoseconds
        try Self.check(mpi, "MPI_Barrier", mpi.barrier(mpi.commWorld))
        statistics.barrierSeconds += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    }

    public func abort(code: Int32) -> Never {
        _ = mpi.abort(mpi.commWorld, code)
        exit(code)  // MPI_Abort does not return; in case a library's does
    }

    public func finish() throws {
        guard !finished else { return }
        finished = true
        var flag: Int32 = 0
        _ = mpi.finalized(&flag)
        if flag == 0 { try Self.check(mpi, "MPI_Finalize", mpi.finalize()) }
    }
}
