// The fast part of the fuzzing work: every committed seed (Fuzz/Corpus/<target>/) and every crash reproducer
// found by scripts/fuzz.sh (Fuzz/Regressions/<target>/) is run through its fuzz target in-process. Seeds must
// be accepted (they are valid files, some with hostile but legal values such as r = 2^62); a reproducer (an
// input that once crashed, hung or allocated without bound) must now finish fast, either accepted with the
// target's invariants holding or refused with one of LoRAKit's own typed errors — never a crash, a hang, or a
// Foundation error that names no field.
import Foundation
import XCTest
import FuzzTargets

final class FuzzCorpusReplayTests: XCTestCase {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fuzz")

    func files(_ kind: String, _ target: FuzzTarget) -> [URL] {
        let directory = Self.fuzzDirectory.appendingPathComponent(kind).appendingPathComponent(target.rawValue)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") && $0 != "README.md" }.sorted().map { directory.appendingPathComponent($0) }
    }

    /// The error's type is declared in one of LoRAKit's modules (a typed error that names what is wrong).
    func isLoRAKitError(_ error: Error) -> Bool {
        let type = String(reflecting: Swift.type(of: error))
        return ["Formats.", "PEFT.", "Tokenizers.", "Models.", "Training.", "TensorCore."].contains { type.hasPrefix($0) }
    }

    func testEverySeedIsAccepted() throws {
        var count = 0
        for target in FuzzTarget.allCases {
            let seeds = files("Corpus", target)
            XCTAssertFalse(seeds.isEmpty, "no seeds for \(target.rawValue)")
            for url in seeds {
                count += 1
                XCTAssertNoThrow(try target.run([UInt8](try Data(contentsOf: url))), "\(target.rawValue)/\(url.lastPathComponent)")
            }
        }
        print("fuzz seeds replayed: \(count)")
    }

    func testEveryReproducerFinishesFastWithoutCrashing() throws {
        var count = 0, refused = 0
        for target in FuzzTarget.allCases {
            for url in files("Regressions", target) {
                count += 1
                let started = Date()
                do {
                    try target.run([UInt8](try Data(contentsOf: url)))
                } catch let violation as FuzzInvariantViolation {
                    XCTFail("\(violation)")
                } catch {
                    XCTAssertTrue(isLoRAKitError(error), "\(target.rawValue)/\(url.lastPathComponent): untyped \(String(reflecting: Swift.type(of: error))): \(error)")
                    XCTAssertFalse("\(error)".isEmpty)
                    refused += 1
                }
                XCTAssertLessThan(Date().timeIntervalSince(started), 5, "\(target.rawValue)/\(url.lastPathComponent) is slow to refuse")
            }
        }
        XCTAssertGreaterThan(count, 0)
        print("fuzz reproducers replayed: \(count), refused with a typed error: \(refused)")
    }
}
