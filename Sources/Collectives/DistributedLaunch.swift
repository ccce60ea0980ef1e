// How a process learns whether it is one rank of a data-parallel job: the `--distributed` choice, checked against
// what the launcher says in the environment (mpirun sets OMPI_COMM_WORLD_SIZE / _RANK / _LOCAL_SIZE; MPICH, Slurm
// and PMIx launchers set PMI_SIZE or PMIX_RANK).
import Foundation

/// Which collective a run uses.
public enum DistributedBackend: String, CaseIterable, Sendable {
    /// One process (the default).
    case none
    /// Open MPI ranks started by `mpirun -np N`.
    case mpi

    /// Parses a command-line or config value (case-insensitive; "single" and "off" mean none).
    public init(parsing text: String) throws {
        switch text.lowercased() {
        case "none", "off", "single", "": self = .none
        case "mpi", "openmpi", "open-mpi": self = .mpi
        default: throw CollectiveError.unknownBackend(text)
        }
    }
}

/// The start of a data-parallel process.
public enum DistributedLaunch {
    /// Processes the launcher started in total, when this process was started by one (nil otherwise).
    public static func launcherWorldSize(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Int? {
        for key in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"] {
            if let n = environment[key].flatMap(Int.init) { return n }
        }
        return nil
    }

    /// Ranks of this job on this machine (OMPI_COMM_WORLD_LOCAL_SIZE; 1 when unknown).
    public static func localRanks(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Int {
        max(1, environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init) ?? environment["MPI_LOCALNRANKS"].flatMap(Int.init) ?? 1)
    }

    /// The collective for `backend`. `.none` refuses to run as one of several launched processes (each would train
    /// alone and all would write the same files); `.mpi` loads Open MPI and joins MPI_COMM_WORLD. Call before
    /// anything reads the thread count: with several ranks per machine and no LORAKIT_THREADS, each rank is given
    /// cores / local ranks threads so that ranks × threads = cores.
    public static func open(_ backend: DistributedBackend, library: String? = nil,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws -> any Collective {
        switch backend {
        case .none:
            if let n = launcherWorldSize(environment), n > 1 {
                throw CollectiveError.launch(reason: "this process is one of \(n) started by an MPI launcher, but --distributed is not set: "
                    + "each would train alone and all would write the same files. Add --distributed mpi (or distributed: mpi in the config)")
            }
            return SingleProcessCollective()
        case .mpi:
            let local = localRanks(environment)
            if local > 1, environment["LORAKIT_THREADS"] == nil {
                let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
                setenv("LORAKIT_THREADS", String(max(1, cores / local)), 0)
            }
            return try MPICollective.shared(library: library)
        }
    }
}
