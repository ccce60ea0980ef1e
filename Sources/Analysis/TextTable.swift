// Plain-text tables for terminal reports: a header, rows, columns padded to their widest cell (numbers
// right-aligned, text left-aligned).
import Foundation

/// A table of strings printed with aligned columns.
public struct TextTable: Sendable {
    /// Column titles.
    public let header: [String]
    /// Rows; each has one cell per column.
    public private(set) var rows: [[String]] = []
    /// Right-align column i when `rightAligned[i]` (numeric columns).
    public let rightAligned: [Bool]

    /// A table with `header`; columns listed in `numericColumns` are right-aligned.
    public init(header: [String], numericColumns: Set<Int> = []) {
        self.header = header
        rightAligned = header.indices.map { numericColumns.contains($0) }
    }

    /// Appends a row (missing cells print empty, extra cells are dropped).
    public mutating func append(_ row: [String]) {
        rows.append(header.indices.map { $0 < row.count ? row[$0] : "" })
    }

    /// The table as lines, indented by `indent` spaces, with a rule under the header.
    public func render(indent: Int = 2) -> String {
        let widths = header.indices.map { c in ([header[c]] + rows.map { $0[c] }).map(\.count).max() ?? 0 }
        let pad = String(repeating: " ", count: indent)
        func line(_ cells: [String]) -> String {
            let padded = cells.indices.map { c -> String in
                let fill = String(repeating: " ", count: widths[c] - cells[c].count)
                return rightAligned[c] ? fill + cells[c] : cells[c] + fill
            }
            return pad + padded.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        var out = line(header) + "\n"
        out += pad + widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n"
        for row in rows { out += line(row) + "\n" }
        return out
    }
}

/// A number in 4 significant digits, switching to exponent form for very large or small magnitudes.
public func formatNumber(_ value: Double) -> String {
    guard value.isFinite else { return value.isNaN ? "nan" : (value > 0 ? "inf" : "-inf") }
    if value == 0 { return "0" }
    let magnitude = abs(value)
    return magnitude >= 1e5 || magnitude < 1e-3 ? String(format: "%.3e", value) : String(format: "%.4g", value)
}
