import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// When a rank dies, mpirun ends the others with SIGTERM while they wait in a reduction. This says so on each of
/// them, in words, before exiting (the handler only writes a preformatted message: async-signal-safe).
enum LauncherSignal {
    nonisolated(unsafe) private static var message: UnsafeMutablePointer<UInt8>?
    nonisolated(unsafe) private static var length = 0

    static func install(rank: Int) {
        let text = "lorakit rank \(rank): stopped by the MPI launcher (SIGTERM), most likely because another rank failed or was killed; "
            + "checkpoints are written to a temporary directory and renamed, so every checkpoint in the run's checkpoints/ directory is "
            + "complete: resume from the newest with --resume, on any number of ranks\n"
        let bytes = Array(text.utf8)
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: bytes.count)
        buffer.initialize(from: bytes, count: bytes.count)
        message = buffer; length = bytes.count
        signal(SIGTERM) { _ in
            if let message = LauncherSignal.message { _ = write(2, message, LauncherSignal.length) }
            _exit(143)
        }
    }
}
