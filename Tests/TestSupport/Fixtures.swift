// Test helpers shared by every test target: where the fixtures live and numeric comparisons.
import Foundation
import TensorCore

public enum Fixtures {
    /// Tests/Fixtures, found from this file's path so tests never depend on the working directory.
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    public static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

    /// The directory where scripts/fetch-models.sh unpacks real models (LORAKIT_MODELS overrides).
    public static var modelsDirectory: URL {
        if let env = ProcessInfo.processInfo.environment["LORAKIT_MODELS"] { return URL(fileURLWithPath: env) }
        return root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("models")
    }
}

/// max |a − b| over all elements; shapes must match.
public func maxAbsDifference(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.shape == b.shape, "shape \(a.shape) vs \(b.shape)")
    var m: Float = 0
    a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in
        for i in 0..<pa.count { let d = abs(pa[i] - pb[i]); if d > m || d.isNaN { m = d.isNaN ? .infinity : d } }
    } }
    return m
}
