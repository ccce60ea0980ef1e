import Collectives
import Foundation
import Training

/// How a `lorakit` command runs as one rank of a data-parallel job: rank 0 reports the group, and a failure ends
/// the whole job. An error every rank meets alike (the same non-finite loss after the reduction) is printed by
/// rank 0 and every rank leaves cleanly; any other error is printed by the rank that met it, with its rank, and
/// MPI_Abort ends the others, which would otherwise wait in their next reduction forever.
enum DataParallelRun {
    static func run(_ collective: any Collective, _ body: () throws -> Void) throws {
        guard collective.size > 1 else {
            if collective is MPICollective {
                print("note: --distributed mpi with a single rank; start the run with mpirun -np N to train on N ranks")
            }
            try body()
            try collective.finish()
            return
        }
        if collective.isRoot {
            print("Data parallel: \(collective.size) ranks (\(collective.backendDescription)); threads per rank: "
                + (ProcessInfo.processInfo.environment["LORAKIT_THREADS"] ?? "all cores"))
        }
        LauncherSignal.install(rank: collective.rank)
        do {
            try body()
            try collective.finish()
        } catch let error as TrainingError {
            if case .nonFinite = error {  // every rank stopped at the same step
                if collective.isRoot { FileHandle.standardError.write(Data("Error: \(error)\n".utf8)) }
                try? collective.finish()
                Foundation.exit(1)
            }
            fail(error, collective)
        } catch {
            fail(error, collective)
        }
    }

    private static func fail(_ error: Error, _ collective: any Collective) -> Never {
        FileHandle.standardError.write(Data("Error on rank \(collective.rank) of \(collective.size): \(error)\n".utf8))
        FileHandle.standardError.write(Data("lorakit: ending every rank of the job (MPI_Abort)\n".utf8))
        collective.abort(code: 1)
    }
}
