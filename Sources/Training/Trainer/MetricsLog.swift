// metrics.jsonl: one JSON object per line for every logged number, written as it happens (a crashed run keeps
// what it logged). Keys are sorted and floats printed in their shortest round-tripping form.
//   {"grad_norm":0.81,"learning_rate":0.0002,"loss":1.93,"split":"train","step":12,"tokens":812,...}
//   {"loss":1.87,"perplexity":6.49,"split":"valid","step":20,"targets":311,"tokens":1204}
import Foundation

/// A number or label in a metrics record.
public enum MetricValue: Equatable, Sendable {
    case int(Int)
    case double(Double)
    case string(String)

    var json: String {
        switch self {
        case .int(let i): return String(i)
        case .double(let d): return d.isFinite ? "\(d)" : "null"  // JSON has no NaN; a non-finite value is logged as null
        case .string(let s):
            let escaped = s.unicodeScalars.map { u -> String in
                switch u {
                case "\"": return "\\\""
                case "\\": return "\\\\"
                case "\n": return "\\n"
                default: return u.value < 0x20 ? String(format: "\\u%04x", u.value) : String(u)
                }
            }.joined()
            return "\"\(escaped)\""
        }
    }
}

/// Appends metric records to a JSONL file.
public final class MetricsLog {
    public let url: URL
    private let handle: FileHandle

    /// Opens `url` for appending. With `keepingStepsThrough`, lines of later steps are dropped first: a resumed run
    /// replaces what the interrupted run logged after its checkpoint.
    public init(url: URL, keepingStepsThrough lastStep: Int? = nil) throws {
        self.url = url
        let fm = FileManager.default
        do {
            try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            if let lastStep, fm.fileExists(atPath: url.path) {
                let kept = try Self.read(url).filter { ($0.step ?? 0) <= lastStep }.map(\.line)
                try Data(kept.map { $0 + "\n" }.joined().utf8).write(to: url, options: .atomic)
            } else if lastStep == nil || !fm.fileExists(atPath: url.path) {
                try Data().write(to: url)
            }
            handle = try FileHandle(forWritingTo: url)
            try handle.seekToEnd()
        } catch {
            throw TrainingError.file(path: url.path, reason: "cannot open the metrics log: \(error.localizedDescription)")
        }
    }

    deinit { try? handle.close() }

    /// Writes one record as a line.
    public func append(_ record: [String: MetricValue]) {
        let line = "{" + record.keys.sorted().map { "\"\($0)\":\(record[$0]!.json)" }.joined(separator: ",") + "}\n"
        handle.write(Data(line.utf8))
    }

    /// One parsed line of a metrics file.
    public struct Entry {
        public let line: String
        public let split: String?
        public let step: Int?
        public let loss: Double?
    }

    /// Reads a metrics file back (lines that do not parse are skipped).
    public static func read(_ url: URL) throws -> [Entry] {
        let text = try String(contentsOf: url, encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return Entry(line: String(line), split: object["split"] as? String, step: (object["step"] as? NSNumber)?.intValue,
                         loss: (object["loss"] as? NSNumber)?.doubleValue)
        }
    }
}
