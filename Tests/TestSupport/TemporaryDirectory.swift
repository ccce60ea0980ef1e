// A scratch directory per test, removed when the test finishes (pass or fail).
import Foundation
import XCTest

/// A fresh directory under the system's temporary directory, named `lorakit-<label>-<uuid>`, removed by a teardown
/// block of `test` (so it may be called from `setUp` or from a test).
public func temporaryDirectory(_ test: XCTestCase, _ label: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("lorakit-\(label)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}
