// Parallel loops for latency-critical work (a decode step): the range is cut into several chunks per thread
// and threads take chunks as they finish, so one thread that the OS delays (another process on its core) does
// not hold up the whole call as it would with one fixed chunk per thread.
import Dispatch

extension Parallel {
    /// Runs `body(range)` over `0..<count` in about `chunksPerThread` × threadCount contiguous chunks of at least
    /// `minChunk` items, taken dynamically by the worker threads.
    public static func forBalancedRanges(_ count: Int, minChunk: Int = 1, chunksPerThread: Int = 4, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = min(threadCount * max(chunksPerThread, 1), max(1, count / max(minChunk, 1)))
        if chunks <= 1 || threadCount == 1 { body(0..<count); return }
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            if lo < hi { body(lo..<hi) }
        }
    }
}
