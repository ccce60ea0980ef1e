// The spinning worker pool behind `Parallel.forBalancedRanges` (decode's ~150 regions per token): every index is
// visited exactly once per region, over many back-to-back regions of varied sizes (the hand-over between regions
// is where a late worker could still hold the previous region's closure), and nested or concurrent callers fall
// back to libdispatch with the same result.
import Foundation
import Synchronization
import XCTest
import TensorCore

final class ParallelBalancedTests: XCTestCase {
    func testEveryIndexOnceAcrossManyBackToBackRegions() {
        let capacity = 4096
        let visits = UnsafeMutablePointer<Int32>.allocate(capacity: capacity)
        defer { visits.deallocate() }
        for region in 0..<20_000 {
            let count = 1 + (region * 7919) % capacity
            visits.initialize(repeating: 0, count: count)
            Parallel.forBalancedRanges(count, minChunk: 1 + region % 64) { range in
                for i in range { visits[i] += 1 }
            }
            let ok = UnsafeBufferPointer(start: visits, count: count).allSatisfy { $0 == 1 }
            if !ok { XCTFail("region \(region) (count \(count)): some index not visited exactly once"); return }
        }
    }

    func testConcurrentAndNestedCallersGetTheSameSums() {
        let total = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<200 {
                Parallel.forBalancedRanges(1000, minChunk: 10) { outer in
                    Parallel.forBalancedRanges(outer.count, minChunk: 5) { inner in
                        total.add(inner.count, ordering: .relaxed)
                    }
                }
            }
        }
        XCTAssertEqual(total.load(ordering: .relaxed), 4 * 200 * 1000)
    }
}
