// Parallel loops for latency-critical work: a decode step runs ~150 small parallel regions per token, each
// ~50–150 µs of work, where waking libdispatch's sleeping workers costs a good part of the region. Here
// persistent workers spin briefly between regions (then sleep), and chunks are claimed dynamically with an
// atomic counter, so a worker the OS has descheduled never holds up a region: the caller takes its chunks.
import Dispatch
import Foundation
#if os(Linux)
import Glibc
import Synchronization
#endif

extension Parallel {
    /// Runs `body(range)` over `0..<count` in about `chunksPerThread` × threadCount contiguous chunks of at least
    /// `minChunk` items, claimed dynamically by the calling thread and the pool's workers.
    public static func forBalancedRanges(_ count: Int, minChunk: Int = 1, chunksPerThread: Int = 4, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = min(threadCount * max(chunksPerThread, 1), max(1, count / max(minChunk, 1)))
        if chunks <= 1 || threadCount == 1 { body(0..<count); return }
        #if os(Linux)
        if SpinningWorkerPool.shared.run(count: count, chunks: chunks, body) { return }
        #endif
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            if lo < hi { body(lo..<hi) }
        }
    }
}

#if os(Linux)
/// threadCount − 1 worker threads that wait for regions, spinning for a while before they sleep.
final class SpinningWorkerPool: @unchecked Sendable {
    static let shared = SpinningWorkerPool(workers: Parallel.threadCount - 1)

    /// Even: a region is open to workers; odd: closed (the caller is between regions, writing or clearing one).
    /// It starts closed, so workers wait for the first region.
    private let generation = Atomic<Int>(1)
    private let nextChunk = Atomic<Int>(0)
    private let finishedChunks = Atomic<Int>(0)
    /// Workers inside a region (they may be reading `body`).
    private let busyWorkers = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    /// One caller at a time; a second caller (another thread, or a nested region) falls back to libdispatch.
    private let callerLock = NSLock()
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    // The region being run; written only while `generation` is odd and no worker is busy.
    private var body: ((Range<Int>) -> Void)?
    private var count = 0
    private var chunks = 0
    /// Polls of `generation` before a waiting worker sleeps (~50–100 µs).
    private let spinLimit = 20_000

    init(workers: Int) {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
        for _ in 0..<max(workers, 0) {
            let thread = Thread { [unowned self] in self.workerLoop() }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Runs the region on the calling thread and the workers; false if the pool is in use (nothing ran).
    func run(count: Int, chunks: Int, _ body: (Range<Int>) -> Void) -> Bool {
        guard callerLock.try() else { return false }
        defer { callerLock.unlock() }
        withoutActuallyEscaping(body) { escapable in
            // Closed (odd) since the last region: a worker that registers now sees a changed generation and backs out.
            while busyWorkers.load(ordering: .sequentiallyConsistent) != 0 {}
            self.body = escapable; self.count = count; self.chunks = chunks
            nextChunk.store(0, ordering: .relaxed)
            finishedChunks.store(0, ordering: .relaxed)
            generation.add(1, ordering: .sequentiallyConsistent)                 // even: open
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(&mutex); pthread_cond_broadcast(&condition); pthread_mutex_unlock(&mutex)
            }
            runChunks()
            while finishedChunks.load(ordering: .acquiring) < chunks {}
            // Close the region before the last look at busyWorkers: a worker registers (busy + 1) and then checks
            // the generation, both sequentially consistent, so it either is counted here or sees the region closed
            // and never reads `body`. (Clearing `body` after only waiting for busy == 0 let a late worker copy the
            // closure after the check: "closure argument was escaped in withoutActuallyEscaping block".)
            generation.add(1, ordering: .sequentiallyConsistent)                 // odd: closed
            while busyWorkers.load(ordering: .sequentiallyConsistent) != 0 {}  // nobody still holds `body`
            self.body = nil
        }
        return true
    }

    /// Claims and runs chunks until none are left.
    private func runChunks() {
        guard let body else { return }
        let (count, chunks) = (self.count, self.chunks)
        while true {
            let c = nextChunk.add(1, ordering: .relaxed).oldValue
            guard c < chunks else { return }
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            if lo < hi { body(lo..<hi) }
            finishedChunks.add(1, ordering: .releasing)
        }
    }

    private func workerLoop() {
        var seen = 0
        while true {
            var g = generation.load(ordering: .acquiring)
            var polls = 0
            while g == seen || g & 1 == 1 {
                polls += 1
                if polls >= spinLimit {
                    pthread_mutex_lock(&mutex)
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    g = generation.load(ordering: .sequentiallyConsistent)
                    while g == seen || g & 1 == 1 {
                        pthread_cond_wait(&condition, &mutex)
                        g = generation.load(ordering: .sequentiallyConsistent)
                    }
                    sleepers.subtract(1, ordering: .sequentiallyConsistent)
                    pthread_mutex_unlock(&mutex)
                    break
                }
                g = generation.load(ordering: .acquiring)
            }
            seen = g
            busyWorkers.add(1, ordering: .sequentiallyConsistent)
            if generation.load(ordering: .sequentiallyConsistent) == g { runChunks() }
            busyWorkers.subtract(1, ordering: .sequentiallyConsistent)
        }
    }
}
#endif
