// Open MPI's C API, loaded at run time with dlopen so that LoRAKit builds and runs without MPI installed.
// Open MPI's handles are pointers to exported objects: MPI_COMM_WORLD is &ompi_mpi_comm_world, MPI_FLOAT is
// &ompi_mpi_float, MPI_SUM is &ompi_mpi_op_sum, …, so dlsym of those names yields the handles themselves.
// (MPICH-family libraries use integer handles and lack these symbols: they are reported, not guessed at.)
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The functions and handles of one loaded libmpi.
struct MPILibrary {
    typealias Handle = UnsafeMutableRawPointer
    typealias InitThread = @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?,
                                           Int32, UnsafeMutablePointer<Int32>) -> Int32
    typealias Flag = @convention(c) (UnsafeMutablePointer<Int32>) -> Int32
    typealias CommInt = @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32
    typealias AllReduce = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Handle, Handle, Handle) -> Int32
    typealias Broadcast = @convention(c) (UnsafeMutableRawPointer?, Int32, Handle, Int32, Handle) -> Int32
    typealias Barrier = @convention(c) (Handle) -> Int32
    typealias Abort = @convention(c) (Handle, Int32) -> Int32
    typealias Finalize = @convention(c) () -> Int32
    typealias ErrorString = @convention(c) (Int32, UnsafeMutablePointer<CChar>, UnsafeMutablePointer<Int32>) -> Int32
    typealias SetErrorHandler = @convention(c) (Handle, Handle) -> Int32
    typealias LibraryVersion = @convention(c) (UnsafeMutablePointer<CChar>, UnsafeMutablePointer<Int32>) -> Int32

    /// Where the library came from (for messages).
    let path: String
    let initThread: InitThread, initialized: Flag, finalized: Flag, finalize: Finalize
    let commRank: CommInt, commSize: CommInt
    let allReduce: AllReduce, broadcast: Broadcast, barrier: Barrier, abort: Abort
    let errorString: ErrorString, libraryVersion: LibraryVersion?, setErrorHandler: SetErrorHandler
    /// Handles: MPI_COMM_WORLD, MPI_FLOAT, MPI_DOUBLE, MPI_UINT64_T, MPI_BYTE, MPI_SUM, MPI_MAX, MPI_ERRORS_RETURN.
    let commWorld: Handle, float: Handle, double: Handle, uint64: Handle, byte: Handle, sum: Handle, max: Handle, errorsReturn: Handle

    static let defaultPath = "libmpi.so.40"
    /// MPI_THREAD_FUNNELED: only the main thread calls MPI (our worker threads never do).
    static let threadFunneled: Int32 = 1
    /// MPI_IN_PLACE.
    static let inPlace = UnsafeRawPointer(bitPattern: 1)

    /// Loads `path` (LORAKIT_MPI_LIBRARY, else libmpi.so.40 from the loader's search path). RTLD_GLOBAL: Open MPI
    /// dlopens its own components, which resolve libmpi's symbols through the global namespace.
    static func load(path: String) throws -> MPILibrary {
        guard let library = dlopen(path, RTLD_NOW | RTLD_GLOBAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "dlopen failed"
            throw CollectiveError.libraryUnavailable(library: path, reason: reason)
        }
        func symbol(_ name: String) throws -> UnsafeMutableRawPointer {
            guard let s = dlsym(library, name) else { throw CollectiveError.missingSymbol(library: path, symbol: name) }
            return s
        }
        func function<F>(_ name: String, as _: F.Type) throws -> F { unsafeBitCast(try symbol(name), to: F.self) }
        return MPILibrary(
            path: path,
            initThread: try function("MPI_Init_thread", as: InitThread.self), initialized: try function("MPI_Initialized", as: Flag.self),
            finalized: try function("MPI_Finalized", as: Flag.self), finalize: try function("MPI_Finalize", as: Finalize.self),
            commRank: try function("MPI_Comm_rank", as: CommInt.self), commSize: try function("MPI_Comm_size", as: CommInt.self),
            allReduce: try function("MPI_Allreduce", as: AllReduce.self), broadcast: try function("MPI_Bcast", as: Broadcast.self),
            barrier: try function("MPI_Barrier", as: Barrier.self), abort: try function("MPI_Abort", as: Abort.self),
            errorString: try function("MPI_Error_string", as: ErrorString.self),
            libraryVersion: try? function("MPI_Get_library_version", as: LibraryVersion.self),
            setErrorHandler: try function("MPI_Comm_set_errhandler", as: SetErrorHandler.self),
            commWorld: try symbol("ompi_mpi_comm_world"), float: try symbol("ompi_mpi_float"), double: try symbol("ompi_mpi_double"),
            uint64: try symbol("ompi_mpi_uint64_t"), byte: try symbol("ompi_mpi_byte"), sum: try symbol("ompi_mpi_op_sum"),
            max: try symbol("ompi_mpi_op_max"), errorsReturn: try symbol("ompi_mpi_errors_return"))
    }

    /// MPI's text for an error code.
    func message(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 512)
        var length: Int32 = 0
        guard errorString(code, &buffer, &length) == 0 else { return "unknown error" }
        return String(cString: buffer)
    }

    /// The library's own version line (MPI_Get_library_version), first line only.
    var version: String {
        guard let libraryVersion else { return "Open MPI" }
        var buffer = [CChar](repeating: 0, count: 4096)
        var length: Int32 = 0
        guard libraryVersion(&buffer, &length) == 0 else { return "Open MPI" }
        return String(cString: buffer).split(separator: "\n").first.map { String($0).trimmingCharacters(in: .whitespaces) } ?? "Open MPI"
    }
}
