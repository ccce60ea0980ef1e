// Typed errors of the collectives: a missing or foreign MPI library, and failed operations, each naming the
// library, the call and MPI's own message.

/// Why a collective could not start or an operation failed.
public enum CollectiveError: Error, CustomStringConvertible, Equatable {
    /// The backend's shared library could not be loaded (not installed, or the path is wrong).
    case libraryUnavailable(library: String, reason: String)
    /// The library loaded but lacks a symbol this binding needs (another MPI implementation, or too old).
    case missingSymbol(library: String, symbol: String)
    /// An MPI call returned an error code (e.g. a peer process died mid-reduction).
    case operationFailed(operation: String, code: Int32, message: String)
    /// The value of `--distributed` (or the config key) is not a backend.
    case unknownBackend(String)
    /// The process was started in a way that does not fit the options (e.g. by mpirun without --distributed).
    case launch(reason: String)

    public var description: String {
        switch self {
        case let .libraryUnavailable(library, reason):
            return "--distributed mpi needs Open MPI, but \(library) could not be loaded (\(reason)). Install it (Debian/Ubuntu: "
                + "apt-get install libopenmpi-dev openmpi-bin), or point LORAKIT_MPI_LIBRARY at libmpi.so.40, and start the run "
                + "with mpirun -np N lorakit train … --distributed mpi"
        case let .missingSymbol(library, symbol):
            return "\(library) has no symbol \(symbol): LoRAKit's MPI binding needs Open MPI 4 or later (libmpi.so.40); other MPI "
                + "implementations (MPICH, Intel MPI) are not supported"
        case let .operationFailed(operation, code, message):
            return "\(operation) failed with MPI error \(code): \(message) (did another rank stop?)"
        case let .unknownBackend(name): return "unknown distributed backend \"\(name)\" (use mpi, or none for one process)"
        case let .launch(reason): return reason
        }
    }
}
