// What a run shows while it trains: one live progress line (redrawn in place with \r on a terminal, one plain
// line per report otherwise, so logs and CI output stay readable), and the process's peak memory.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The numbers of one optimizer step, as logged and shown.
public struct StepMetrics: Equatable, Sendable {
    /// 1-based step just completed, and the run's total.
    public var step: Int
    public var totalSteps: Int
    /// Token-weighted mean loss over the step's micro-batches.
    public var loss: Float
    public var learningRate: Double
    /// Global gradient norm before clipping.
    public var gradientNorm: Float
    /// Real (non-padding) tokens and learnt targets in this step.
    public var tokens: Int
    public var targets: Int
    /// Throughput over the run so far (this process), and the estimated time left.
    public var tokensPerSecond: Double
    public var secondsRemaining: Double
    /// Peak resident memory of the process so far.
    public var peakMemoryBytes: Int
    /// AdaLoRA: the budget b(t) of the schedule at this step (nil for LoRA).
    public var budget: Int?
    /// A method's short status for the progress line (AdaLoRA: "budget 40/48").
    public var note: String?

    /// Groups a step's numbers.
    public init(step: Int, totalSteps: Int, loss: Float, learningRate: Double, gradientNorm: Float, tokens: Int, targets: Int,
                tokensPerSecond: Double, secondsRemaining: Double, peakMemoryBytes: Int, budget: Int? = nil, note: String? = nil) {
        self.step = step; self.totalSteps = totalSteps; self.loss = loss; self.learningRate = learningRate
        self.gradientNorm = gradientNorm; self.tokens = tokens; self.targets = targets
        self.tokensPerSecond = tokensPerSecond; self.secondsRemaining = secondsRemaining; self.peakMemoryBytes = peakMemoryBytes
        self.budget = budget; self.note = note
    }
}

/// Resident set size of this process.
public enum ProcessMemory {
    /// Bytes resident now: VmRSS from /proc/self/status on Linux (the peak elsewhere, where only that is known).
    public static func residentBytes() -> Int { statusBytes("VmRSS") ?? peakResidentBytes() }

    /// Bytes: VmHWM from /proc/self/status on Linux, getrusage's ru_maxrss elsewhere (0 when neither answers).
    public static func peakResidentBytes() -> Int {
        if let bytes = statusBytes("VmHWM") { return bytes }
        var usage = rusage()
        #if os(Linux)
        guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return 0 }
        return Int(usage.ru_maxrss) * 1024  // kilobytes on Linux
        #else
        guard getrusage(RUSAGE_SELF, &usage) == 0 else { return 0 }
        return Int(usage.ru_maxrss)  // bytes on Darwin
        #endif
    }

    /// A "<key>:  1234 kB" line of /proc/self/status in bytes (nil where there is no such file or line).
    private static func statusBytes(_ key: String) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }),
              let kb = Int(line.dropFirst(key.count + 1).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
        else { return nil }
        return kb * 1024
    }
}

/// Writes the live progress line and the permanent lines between updates.
public final class ProgressLine {
    /// Redraw one line in place (a terminal) or print each update on its own line.
    public let interactive: Bool
    private let write: (String) -> Void
    private var liveLength = 0

    /// Progress to standard output; interactive when it is a terminal.
    public convenience init() {
        self.init(interactive: isatty(STDOUT_FILENO) == 1) { text in
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }

    /// Progress through `write` (tests capture it).
    public init(interactive: Bool, write: @escaping (String) -> Void) {
        self.interactive = interactive; self.write = write
    }

    /// Shows a step's numbers: in place on a terminal, as a new line otherwise.
    public func update(_ m: StepMetrics) {
        let text = Self.format(m)
        if interactive {
            let padding = String(repeating: " ", count: max(0, liveLength - text.count))
            write("\r" + text + padding)
            liveLength = text.count
        } else {
            write(text + "\n")
        }
    }

    /// A line that stays (evaluation results, checkpoints, warnings); the live line is redrawn below it.
    public func print(_ line: String) {
        if interactive && liveLength > 0 {
            write("\r" + String(repeating: " ", count: liveLength) + "\r")
            liveLength = 0
        }
        write(line + "\n")
    }

    /// Ends the live line so following output starts on a fresh line.
    public func finish() {
        if interactive && liveLength > 0 { write("\n"); liveLength = 0 }
    }

    /// "step 12/200 | loss 1.2345 | lr 1.00e-04 | 523 tok/s | ETA 3m12s | mem 812 MB", then " | <note>" when the
    /// step has one (AdaLoRA: " | budget 40/48").
    public static func format(_ m: StepMetrics) -> String {
        let width = String(m.totalSteps).count
        let step = String(repeating: " ", count: max(0, width - String(m.step).count)) + String(m.step)
        return "step \(step)/\(m.totalSteps) | loss \(String(format: "%.4f", m.loss)) | lr \(String(format: "%.2e", m.learningRate))"
            + " | \(String(format: "%.0f", m.tokensPerSecond)) tok/s | ETA \(duration(m.secondsRemaining))"
            + " | mem \(m.peakMemoryBytes / 1_048_576) MB" + (m.note.map { " | " + $0 } ?? "")
    }

    /// Seconds as "45s", "3m12s" or "2h05m".
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m"
    }
}
