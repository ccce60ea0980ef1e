import Training
import XCTest

/// Values derived by hand from transformers' get_{cosine,linear,constant}_schedule_with_warmup formulas.
final class LRScheduleTests: XCTestCase {
    func testWarmupThenCosineLinearConstant() throws {
        let peak = 1e-3
        let cosine = try LRSchedule(peakLearningRate: peak, warmupSteps: 10, totalSteps: 110, decay: .cosine)
        let linear = try LRSchedule(peakLearningRate: peak, warmupSteps: 10, totalSteps: 110, decay: .linear)
        let constant = try LRSchedule(peakLearningRate: peak, warmupSteps: 10, totalSteps: 110, decay: .constant)
        for s in [cosine, linear, constant] {
            XCTAssertEqual(s.learningRate(at: 0), 0)               // HF: the first warmed-up step has lr 0
            XCTAssertEqual(s.learningRate(at: 1), 1e-4, accuracy: 1e-15)
            XCTAssertEqual(s.learningRate(at: 5), 5e-4, accuracy: 1e-15)
            XCTAssertEqual(s.learningRate(at: 10), peak, accuracy: 1e-15)
        }
        // Progress p = (step − 10) / 100.
        XCTAssertEqual(cosine.learningRate(at: 35), peak * 0.5 * (1 + 2.0.squareRoot() / 2), accuracy: 1e-15)  // p = ¼
        XCTAssertEqual(cosine.learningRate(at: 60), 5e-4, accuracy: 1e-15)                                     // p = ½
        XCTAssertEqual(cosine.learningRate(at: 85), peak * 0.5 * (1 - 2.0.squareRoot() / 2), accuracy: 1e-15)  // p = ¾
        XCTAssertEqual(cosine.learningRate(at: 110), 0, accuracy: 1e-18)
        XCTAssertEqual(cosine.learningRate(at: 500), 0, accuracy: 1e-18)  // clamped past the end, no second cycle
        XCTAssertEqual(linear.learningRate(at: 35), 7.5e-4, accuracy: 1e-15)
        XCTAssertEqual(linear.learningRate(at: 109), 1e-5, accuracy: 1e-15)
        XCTAssertEqual(constant.learningRate(at: 109), peak)
    }

    func testNoWarmupAndMinimumLearningRate() throws {
        let s = try LRSchedule(peakLearningRate: 1e-3, totalSteps: 100, decay: .cosine, minLearningRate: 1e-4)
        XCTAssertEqual(s.learningRate(at: 0), 1e-3, accuracy: 1e-15)
        XCTAssertEqual(s.learningRate(at: 50), 5.5e-4, accuracy: 1e-15)
        XCTAssertEqual(s.learningRate(at: 100), 1e-4, accuracy: 1e-15)
        let l = try LRSchedule(peakLearningRate: 2e-4, totalSteps: 4, decay: .linear)
        XCTAssertEqual((0..<4).map { l.learningRate(at: $0) }, [2e-4, 1.5e-4, 1e-4, 0.5e-4].map { $0 }, accuracy: 1e-18)
    }

    func testRejectsBadValues() {
        XCTAssertThrowsError(try LRSchedule(peakLearningRate: -1, totalSteps: 10))
        XCTAssertThrowsError(try LRSchedule(peakLearningRate: .nan, totalSteps: 10))
        XCTAssertThrowsError(try LRSchedule(peakLearningRate: 1e-3, totalSteps: 0))
        XCTAssertThrowsError(try LRSchedule(peakLearningRate: 1e-3, warmupSteps: -1, totalSteps: 10))
        XCTAssertThrowsError(try LRSchedule(peakLearningRate: 1e-3, totalSteps: 10, minLearningRate: 2e-3)) {
            XCTAssertTrue("\($0)".contains("min learning rate"))
        }
    }
}

private func XCTAssertEqual(_ a: [Double], _ b: [Double], accuracy: Double, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: accuracy, file: file, line: line) }
}
