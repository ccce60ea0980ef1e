// The collective interface without a launcher: one process is the identity, a missing or foreign MPI library is a
// typed error naming it, and a process started by mpirun without --distributed is refused. (Reductions across real
// ranks are tested through `mpirun -np 2 lorakit train` in TrainingTests/DataParallelTrainingTests.)
import Foundation
import XCTest
import Collectives

final class CollectivesTests: XCTestCase {
    func testOneProcessIsRankZeroOfOneAndReducesToItself() throws {
        let one = try DistributedLaunch.open(.none, environment: [:])
        XCTAssertEqual(one.rank, 0); XCTAssertEqual(one.size, 1); XCTAssertTrue(one.isRoot)
        var values: [Float] = [1.5, -2, 3]
        try one.allReduceSum(&values)
        XCTAssertEqual(values, [1.5, -2, 3])
        XCTAssertTrue(try one.allRanksAgree(on: 0xDEAD_BEEF))
    }

    func testAMissingLibraryIsATypedErrorNamingIt() {
        let path = "/nonexistent/lorakit/libmpi.so.40"
        XCTAssertThrowsError(try MPICollective.shared(library: path)) { error in
            guard case .libraryUnavailable(let library, let reason)? = error as? CollectiveError else { return XCTFail("\(error)") }
            XCTAssertEqual(library, path)
            XCTAssertFalse(reason.isEmpty)
            XCTAssertTrue("\(error)".contains("apt-get install libopenmpi-dev openmpi-bin"), "\(error)")
        }
    }

    func testALibraryThatIsNotOpenMPIIsReportedByTheMissingSymbol() throws {
        // libc loads fine but has none of MPI's symbols.
        let libc = ["/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6", "/usr/lib/libSystem.B.dylib"]
            .first { FileManager.default.fileExists(atPath: $0) }
        let path = try XCTUnwrap(libc, "no libc found to load")
        XCTAssertThrowsError(try MPICollective.probe(library: path)) { error in
            XCTAssertEqual(error as? CollectiveError, .missingSymbol(library: path, symbol: "MPI_Init_thread"))
        }
    }

    func testLaunchedRanksWithoutDistributedAreRefused() {
        XCTAssertThrowsError(try DistributedLaunch.open(.none, environment: ["OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1"])) { error in
            XCTAssertTrue("\(error)".contains("one of 2 started by an MPI launcher"), "\(error)")
        }
        XCTAssertNoThrow(try DistributedLaunch.open(.none, environment: ["OMPI_COMM_WORLD_SIZE": "1"]))
        XCTAssertEqual(DistributedLaunch.localRanks(["OMPI_COMM_WORLD_LOCAL_SIZE": "4"]), 4)
        XCTAssertEqual(DistributedLaunch.localRanks([:]), 1)
    }

    func testBackendNames() throws {
        XCTAssertEqual(try DistributedBackend(parsing: "MPI"), .mpi)
        XCTAssertEqual(try DistributedBackend(parsing: "none"), DistributedBackend.none)
        XCTAssertThrowsError(try DistributedBackend(parsing: "nccl")) { XCTAssertEqual($0 as? CollectiveError, .unknownBackend("nccl")) }
    }

    func testStatisticsDifference() {
        var a = CollectiveStatistics(); a.bytesReduced = 100; a.calls = 2; a.seconds = 0.5
        var b = a; b.bytesReduced = 340; b.calls = 3; b.seconds = 0.75
        let d = b.since(a)
        XCTAssertEqual(d.bytesReduced, 240); XCTAssertEqual(d.calls, 1); XCTAssertEqual(d.seconds, 0.25)
    }
}
