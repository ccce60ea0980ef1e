// Thread policy: all cores by default, LORAKIT_THREADS overrides. Our own parallel loops and BLAS
// never run at the same time (BLAS is always called from one thread), so threads never oversubscribe.
import Foundation
import Dispatch

public enum Parallel {
    public static let threadCount: Int = {
        if let text = ProcessInfo.processInfo.environment["LORAKIT_THREADS"], let n = Int(text), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Runs `body(range)` over `0..<count` split into contiguous chunks, in parallel when the work is big enough.
    /// `minChunk` is the smallest chunk worth a thread (tune so a chunk is ≥ ~20 µs of work).
    public static func forRanges(_ count: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = min(threadCount, max(1, count / max(minChunk, 1)))
        if chunks <= 1 { body(0..<count); return }
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            if lo < hi { body(lo..<hi) }
        }
    }
}
