// Recycles large tensor buffers instead of handing them back to the operating system.
//
// A training step allocates and frees the same activation shapes layer after layer and step after step. Large
// blocks are mapped and unmapped whole (the 1 MiB mmap threshold in `BLAS.ensureAvailable` keeps the heap from
// fragmenting), so without reuse every fresh activation costs one page fault per 4 KiB plus a TLB shoot-down on
// unmap: measured on SmolLM2 (batch 4 × 256), 3.1 M faults and a quarter of each step's CPU time in the kernel.
// Keeping freed buffers and handing them out again removes nearly all of it. Sizes are rounded up to classes
// eight to a power of two (≤ 12.5 % slack), so batches padded to slightly different lengths still share buffers;
// a byte cap bounds what the cache may hold while unused, so peak memory stays close to what is live.
import Foundation

/// A process-wide cache of freed buffers of at least `minimumBytes`, keyed by size class.
public enum BufferPool {
    /// Smaller blocks come from malloc's heap, which recycles them already; larger ones are mapped whole by malloc
    /// (its mmap threshold is set to this size in `BLAS.ensureAvailable`).
    public static let minimumBytes = 1 << 20

    /// Most bytes the cache holds while unused: `LORAKIT_BUFFER_CACHE_MB` (default 1024; 0 turns reuse off).
    public static var capacityBytes: Int {
        get { state.withLock { $0.capacity } }
        set { state.withLock { $0.capacity = max(0, newValue); $0.evict() } }
    }

    /// Bytes held by the cache right now (not in use by any tensor).
    public static var cachedBytes: Int { state.withLock { $0.cachedBytes } }

    /// A 64-byte-aligned buffer of at least `bytes`: a cached one of the same size class if there is one.
    private static func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        guard bytes >= minimumBytes else { return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64) }
        let size = sizeClass(bytes)
        if let reused = state.withLock({ $0.take(size) }) { return reused }
        // 64-byte alignment keeps vector loads aligned and matches what BLAS prefers.
        return UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
    }

    /// Gives a buffer from `allocate(bytes:)` back (same `bytes`): cached when large and within the cap, else freed.
    private static func release(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        if bytes >= minimumBytes, state.withLock({ $0.keep(pointer, sizeClass(bytes)) }) { return }
        pointer.deallocate()
    }

    /// `bytes` rounded up to the next of eight evenly spaced sizes per power of two (at most 12.5 % more).
    public static func sizeClass(_ bytes: Int) -> Int {
        let step = max(1, (1 << (Int.bitWidth - 1 - bytes.leadingZeroBitCount)) / 8)
        return (bytes + step - 1) / step * step
    }

    /// Runs `body` with an uninitialised scratch buffer of `count` floats taken from (and returned to) the pool.
    public static func withScratch<R>(count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        let scratch = allocateScratch(count: count)
        defer { releaseScratch(scratch, count: count) }
        return try body(scratch)
    }

    /// An uninitialised buffer of `count` floats (at least one) from the pool; give it back with
    /// `releaseScratch(_:count:)` and the same count. Tensor storage comes from here too.
    public static func allocateScratch(count: Int) -> UnsafeMutablePointer<Float> {
        allocate(bytes: floatBytes(count)).bindMemory(to: Float.self, capacity: max(count, 1))
    }

    public static func releaseScratch(_ pointer: UnsafeMutablePointer<Float>, count: Int) {
        release(UnsafeMutableRawPointer(pointer), bytes: floatBytes(count))
    }

    private static func floatBytes(_ count: Int) -> Int { max(count, 1) * MemoryLayout<Float>.stride }

    /// Frees every cached buffer (e.g. after training, before a long idle phase).
    public static func trim() { state.withLock { $0.trim() } }

    private static let state = Locked(Cache(capacity: defaultCapacity()))

    private static func defaultCapacity() -> Int {
        let megabytes = ProcessInfo.processInfo.environment["LORAKIT_BUFFER_CACHE_MB"].flatMap(Int.init) ?? 1024
        return max(0, megabytes) << 20
    }

    /// Free buffers, oldest first; a hit takes the most recently freed one of its size (likeliest still in cache).
    struct Cache {
        var capacity: Int
        var entries: [(bytes: Int, pointer: UnsafeMutableRawPointer)] = []
        var cachedBytes = 0

        mutating func take(_ bytes: Int) -> UnsafeMutableRawPointer? {
            guard let i = entries.lastIndex(where: { $0.bytes == bytes }) else { return nil }
            cachedBytes -= bytes
            return entries.remove(at: i).pointer
        }

        mutating func keep(_ pointer: UnsafeMutableRawPointer, _ bytes: Int) -> Bool {
            guard bytes <= capacity else { return false }
            entries.append((bytes, pointer))
            cachedBytes += bytes
            evict()
            return true
        }

        /// Frees the oldest buffers until the cache is within its capacity.
        mutating func evict() {
            var dropped = 0
            while cachedBytes > capacity, dropped < entries.count {
                cachedBytes -= entries[dropped].bytes
                entries[dropped].pointer.deallocate()
                dropped += 1
            }
            if dropped > 0 { entries.removeFirst(dropped) }
        }

        mutating func trim() {
            for e in entries { e.pointer.deallocate() }
            entries.removeAll()
            cachedBytes = 0
        }
    }
}

/// A value behind a mutex (tensors are created and freed on any thread of a parallel region).
final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) -> R) -> R {
        lock.lock(); defer { lock.unlock() }
        return body(&value)
    }
}
