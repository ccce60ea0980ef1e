// The buffer pool: large freed tensors are handed out again (same address, no fresh pages), recycled buffers are
// still fully initialised by every Tensor initialiser, and the byte cap bounds what the cache holds.
import Foundation
import XCTest
import TensorCore

final class BufferPoolTests: XCTestCase {
    private var savedCapacity = 0

    override func setUp() { savedCapacity = BufferPool.capacityBytes; BufferPool.trim(); BufferPool.capacityBytes = 64 << 20 }
    override func tearDown() { BufferPool.trim(); BufferPool.capacityBytes = savedCapacity }

    /// Elements in a buffer of `megabytes` MiB.
    func elements(_ megabytes: Int) -> Int { megabytes << 18 }

    func address(_ t: Tensor) -> UnsafePointer<Float> { t.withUnsafeBufferPointer { $0.baseAddress! } }

    func testALargeFreedBufferIsReusedAndStillZeroed() {
        var first: Tensor? = Tensor(repeating: 7, shape: [elements(2)])
        let old = address(first!)
        first = nil
        XCTAssertEqual(BufferPool.cachedBytes, 2 << 20)
        let second = Tensor(zeros: [elements(2)])
        XCTAssertEqual(address(second), old, "same size: the cached buffer comes back")
        XCTAssertEqual(BufferPool.cachedBytes, 0)
        XCTAssertTrue(second.withUnsafeBufferPointer { $0.allSatisfy { $0 == 0 } }, "no stale 7s from the last owner")
        let other = Tensor(zeros: [elements(3)])
        XCTAssertNotEqual(address(other), old)
    }

    func testNearbySizesShareASizeClass() {
        // 4,000,000 and 4,040,000 bytes both round up to 4 MiB (classes of 256 KiB between 2 and 4 MiB).
        XCTAssertEqual(BufferPool.sizeClass(4_000_000), 4 << 20)
        XCTAssertEqual(BufferPool.sizeClass(4_040_000), 4 << 20)
        XCTAssertEqual(BufferPool.sizeClass(1 << 20), 1 << 20)
        XCTAssertEqual(BufferPool.sizeClass((1 << 20) + 1), (1 << 20) + (1 << 17))
        var shorter: Tensor? = Tensor(repeating: 3, shape: [1_000_000])
        let old = address(shorter!)
        shorter = nil
        let longer = Tensor(zeros: [1_010_000])  // a batch padded a little longer reuses the buffer
        XCTAssertEqual(address(longer), old)
        XCTAssertEqual(longer.count, 1_010_000)
        XCTAssertTrue(longer.withUnsafeBufferPointer { $0.allSatisfy { $0 == 0 } })
    }

    func testSmallBuffersAreLeftToMalloc() {
        var small: Tensor? = Tensor(zeros: [1000])
        XCTAssertNotNil(small)
        small = nil
        XCTAssertEqual(BufferPool.cachedBytes, 0)
    }

    func testTheCapEvictsOldestFirstAndZeroTurnsReuseOff() {
        BufferPool.capacityBytes = 5 << 20
        var a: Tensor? = Tensor(zeros: [elements(1)]), b: Tensor? = Tensor(zeros: [elements(2)]), c: Tensor? = Tensor(zeros: [elements(3)])
        let addressB = address(b!)
        a = nil; b = nil
        XCTAssertEqual(BufferPool.cachedBytes, 3 << 20)
        c = nil  // 1 + 2 + 3 > 5 MiB: the oldest (a) is freed
        XCTAssertEqual(BufferPool.cachedBytes, 5 << 20)
        let newA = Tensor(zeros: [elements(1)])  // a fresh buffer: nothing of a's size is cached
        XCTAssertEqual(BufferPool.cachedBytes, 5 << 20, "a's size is no longer cached")
        XCTAssertEqual(newA.count, elements(1))
        XCTAssertEqual(address(Tensor(zeros: [elements(2)])), addressB, "b survived")
        BufferPool.capacityBytes = 0
        XCTAssertEqual(BufferPool.cachedBytes, 0)
        var d: Tensor? = Tensor(zeros: [elements(2)])
        XCTAssertNotNil(d)
        d = nil
        XCTAssertEqual(BufferPool.cachedBytes, 0)
    }

    func testScratchBuffersComeFromThePool() {
        let count = elements(1)
        let first = BufferPool.withScratch(count: count) { p -> UnsafeMutablePointer<Float> in p.update(repeating: 1, count: count); return p }
        XCTAssertEqual(BufferPool.cachedBytes, 1 << 20)
        let second = BufferPool.withScratch(count: count) { $0 }
        XCTAssertEqual(first, second)
        BufferPool.trim()
        XCTAssertEqual(BufferPool.cachedBytes, 0)
    }

    func testConcurrentAllocationAndRelease() {
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            for j in 0..<20 {
                let t = Tensor(repeating: Float(i), shape: [elements(1 + (i + j) % 3)])
                XCTAssertEqual(t[flat: t.count - 1], Float(i))
            }
        }
        XCTAssertLessThanOrEqual(BufferPool.cachedBytes, BufferPool.capacityBytes)
    }
}
