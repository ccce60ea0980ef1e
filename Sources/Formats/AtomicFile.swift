// Durable, atomic file replacement shared by every writer of user-visible files (safetensors, adapter configs):
// write a temporary file beside the target, fsync it, rename(2) it over the target, fsync the directory.
// A crash or error at any point leaves either the old file or the new one, never a mix, and no temp file.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct AtomicFileError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let reason: String
    public var description: String { "\(path): cannot write (\(reason))" }
}

public enum AtomicFile {
    /// Creates a temporary file next to `url`, lets `body` fill it through `write`, then atomically replaces `url`.
    /// Errors thrown by `body` propagate unchanged (after the temporary file is removed); failures of the file
    /// operations themselves are `AtomicFileError`s naming `url`.
    public static func write(to url: URL, _ body: (_ write: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        let path = url.path
        let directory = url.deletingLastPathComponent().path
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        removeStaleTemporaries(of: url)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw AtomicFileError(path: path, reason: "cannot create \(temporary): \(lastErrorText())") }
        var renamed = false
        defer { if !renamed { unlink(temporary) } }
        do {
            try body { bytes in try writeAll(fd, bytes, path: path) }
            guard fsync(fd) == 0 else { throw AtomicFileError(path: path, reason: "fsync: \(lastErrorText())") }
        } catch {
            close(fd)
            throw error
        }
        guard close(fd) == 0 else { throw AtomicFileError(path: path, reason: "close: \(lastErrorText())") }
        guard rename(temporary, path) == 0 else {
            throw AtomicFileError(path: path, reason: "rename from \(temporary): \(lastErrorText())")
        }
        renamed = true
        // Make the rename itself durable; failure here cannot un-write the file, so it is not an error.
        let dirFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
        if dirFD >= 0 { _ = fsync(dirFD); close(dirFD) }
    }

    /// Atomically replaces `url` with `data`.
    public static func write(_ data: Data, to url: URL) throws {
        try write(to: url) { write in try data.withUnsafeBytes { try write($0) } }
    }

    /// Temporaries of `url` that a killed writer left behind (`.<name>.tmp-<pid>-<n>` whose process is gone).
    /// Removed before each write so kill -9 does not pile up partial copies of large files.
    static func removeStaleTemporaries(of url: URL) {
        let directory = url.deletingLastPathComponent()
        let prefix = ".\(url.lastPathComponent).tmp-"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return }
        for name in names where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count).prefix { $0 != "-" }), !processIsAlive(pid) else { continue }
            unlink(directory.appendingPathComponent(name).path)
        }
    }

    /// Whether a process with this id exists (kill(pid, 0) fails with ESRCH only when it does not).
    public static func processIsAlive(_ pid: Int32) -> Bool {
        pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH)
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = systemWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw AtomicFileError(path: path, reason: lastErrorText())
            }
            done += n
        }
    }

    private static func lastErrorText() -> String { String(cString: strerror(errno)) }
}

/// POSIX write(2); a free function because the enum's own `write` would shadow the name.
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { write(fd, buffer, count) }
