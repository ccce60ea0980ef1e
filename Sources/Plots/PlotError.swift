// Typed errors of the Plots module. Each names the chart part at fault (series, row, argument) so a caller can
// report exactly which input was wrong.
import Foundation

/// Why a chart refused its input or could not be written.
public enum PlotError: Error, CustomStringConvertible, Equatable {
    /// Series `series` has `xCount` x values but `yCount` y values.
    case seriesLengthMismatch(series: String, xCount: Int, yCount: Int)
    /// No series has a single point that can be placed on the axes (all empty, non-finite or ≤ 0 on a log axis).
    case noPlottableData(chart: String)
    /// Heatmap row `row` has `count` values but row 0 has `expected`.
    case raggedRow(row: Int, count: Int, expected: Int)
    /// A label list has `count` entries but the grid has `expected` rows or columns (`axis`).
    case labelCountMismatch(axis: String, count: Int, expected: Int)
    /// The heatmap has no rows or no columns.
    case emptyGrid
    /// Any other bad setting (`argument`), with the reason.
    case invalidArgument(argument: String, reason: String)
    /// Writing the SVG to `path` failed.
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .seriesLengthMismatch(series, xCount, yCount):
            return "plot series '\(series)' has \(xCount) x values but \(yCount) y values"
        case let .noPlottableData(chart):
            return "\(chart): no finite point to plot (series empty, all NaN/Inf, or all ≤ 0 on a log axis)"
        case let .raggedRow(row, count, expected):
            return "heatmap row \(row) has \(count) values, expected \(expected) like row 0"
        case let .labelCountMismatch(axis, count, expected):
            return "heatmap has \(count) \(axis) labels for \(expected) \(axis)s"
        case .emptyGrid:
            return "heatmap grid has no rows or no columns"
        case let .invalidArgument(argument, reason):
            return "plot: invalid \(argument): \(reason)"
        case let .writeFailed(path, reason):
            return "could not write SVG to \(path): \(reason)"
        }
    }
}
