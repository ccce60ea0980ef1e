// Heatmaps: a grid of values drawn as coloured cells with row/column labels, a colour bar with ticks, a title
// and optional value annotations, in the style of the LoRA paper's subspace-similarity figures.
//
// Missing values: a NaN or ±Inf cell is drawn in neutral grey (class "cell missing"), is left out of the colour
// range and gets no annotation; the rest of the grid renders normally. A grid with no finite value at all
// throws `PlotError.noPlottableData`.
import Foundation

/// A heatmap rendered as a standalone SVG document. `values[row][column]`; row 0 is drawn at the top.
public struct Heatmap: Sendable {
    /// Heading above the grid.
    public var title: String
    /// The grid, row-major: every row must have the same length.
    public var values: [[Double]]
    /// One label per row, drawn left of the grid (thinned out when rows are too small to label each).
    public var rowLabels: [String]
    /// One label per column, drawn under the grid (thinned likewise).
    public var columnLabels: [String]
    /// Label under the column labels.
    public var xLabel: String = ""
    /// Label left of the row labels (rotated).
    public var yLabel: String = ""
    /// Label beside the colour bar.
    public var colorBarLabel: String = ""
    /// Colour scale.
    public var colorMap: ColorMap = .viridis
    /// Values mapped to the ends of the colour scale; nil = min...max of the finite values. Values outside clamp.
    public var valueRange: ClosedRange<Double>? = nil
    /// Print each cell's value in the cell (only legible for small grids).
    public var annotatesCells: Bool = false
    /// Decimals of cell annotations.
    public var annotationDecimals: Int = 2
    /// Side of a square cell in pixels; nil = fit the grid into about 480 px.
    public var cellSize: Double? = nil

    /// A heatmap of `values` with one label per row and column; options keep their defaults until set.
    public init(title: String, values: [[Double]], rowLabels: [String], columnLabels: [String]) {
        self.title = title; self.values = values; self.rowLabels = rowLabels; self.columnLabels = columnLabels
    }

    /// The SVG document text.
    public func render() throws -> String {
        let rows = values.count
        guard rows > 0, let columns = values.first?.count, columns > 0 else { throw PlotError.emptyGrid }
        for (r, row) in values.enumerated() where row.count != columns {
            throw PlotError.raggedRow(row: r, count: row.count, expected: columns)
        }
        guard rowLabels.count == rows else { throw PlotError.labelCountMismatch(axis: "row", count: rowLabels.count, expected: rows) }
        guard columnLabels.count == columns else {
            throw PlotError.labelCountMismatch(axis: "column", count: columnLabels.count, expected: columns)
        }
        guard (0...6).contains(annotationDecimals) else {
            throw PlotError.invalidArgument(argument: "annotationDecimals", reason: "\(annotationDecimals) is outside 0...6")
        }
        let finite = values.joined().filter { $0.isFinite }
        guard let dataMin = finite.min(), let dataMax = finite.max() else {
            throw PlotError.noPlottableData(chart: "heatmap '\(title)'")
        }
        var lo = dataMin, hi = dataMax
        if let range = valueRange {
            guard range.lowerBound.isFinite, range.upperBound.isFinite, range.lowerBound < range.upperBound else {
                throw PlotError.invalidArgument(argument: "valueRange", reason: "\(range) must be finite with lower < upper")
            }
            lo = range.lowerBound; hi = range.upperBound
        } else if lo == hi {
            // A constant grid: give the colour bar a span so its ticks are meaningful.
            lo -= lo == 0 ? 1 : abs(lo) * 0.5
            hi += hi == 0 ? 1 : abs(hi) * 0.5
        }

        let cell: Double
        if let fixed = cellSize {
            guard fixed.isFinite, fixed >= 1, fixed <= 200 else {
                throw PlotError.invalidArgument(argument: "cellSize", reason: "\(fixed) is outside 1...200 px")
            }
            cell = fixed
        } else {
            cell = min(40, max(3, (480 / Double(max(rows, columns))).rounded(.down)))
        }
        let fontSize = 11.0
        // Label every stride-th row/column so labels never overlap (at least ~fontSize + 3 px apart).
        let labelStride = max(1, Int(((fontSize + 3) / cell).rounded(.up)))
        let rowLabelWidth = rowLabels.map { estimatedTextWidth($0, fontSize: fontSize) }.max() ?? 0
        let columnLabelWidth = columnLabels.map { estimatedTextWidth($0, fontSize: fontSize) }.max() ?? 0
        let rotateColumnLabels = columnLabelWidth > cell * Double(labelStride) - 4

        let gridLeft = 14 + (yLabel.isEmpty ? 0 : 22) + rowLabelWidth + 8
        let gridTop = title.isEmpty ? 16.0 : 44.0
        let gridWidth = cell * Double(columns), gridHeight = cell * Double(rows)
        let columnLabelSpace = rotateColumnLabels ? columnLabelWidth * 0.75 + 14 : fontSize + 10
        let bottom = columnLabelSpace + (xLabel.isEmpty ? 8 : 28)
        let barLeft = gridLeft + gridWidth + 18, barWidth = 16.0
        let barHeight = max(gridHeight, 120)
        let barTickLabelWidth = 44.0
        let width = max(barLeft + barWidth + barTickLabelWidth + (colorBarLabel.isEmpty ? 8 : 26),
                        estimatedTextWidth(title, fontSize: 15) + 20)
        let height = gridTop + max(gridHeight + bottom, barHeight + 12)

        var svg = SVGDocument(width: width, height: height)
        let palette = colorMap
        func fraction(_ v: Double) -> Double { (v - lo) / (hi - lo) }

        svg.open("g", [("class", "cells"), ("shape-rendering", "crispEdges")])
        for r in 0..<rows {
            for c in 0..<columns {
                let v = values[r][c]
                let x = gridLeft + Double(c) * cell, y = gridTop + Double(r) * cell
                let tooltip = "\(rowLabels[r]), \(columnLabels[c]): \(v.isFinite ? String(format: "%.4g", v) : "missing")"
                let common = [("x", SVGDocument.px(x)), ("y", SVGDocument.px(y)), ("width", SVGDocument.px(cell)),
                              ("height", SVGDocument.px(cell)), ("data-row", "\(r)"), ("data-column", "\(c)")]
                if v.isFinite {
                    svg.open("rect", common + [("class", "cell"), ("data-value", "\(v)"), ("fill", palette.hex(at: fraction(v)))])
                } else {
                    svg.open("rect", common + [("class", "cell missing"), ("fill", "#d0d0d0")])
                }
                svg.open("title"); svg.appendText(tooltip); svg.close("title")
                svg.close("rect")
            }
        }
        svg.close("g")

        if annotatesCells {
            let annotationSize = min(12, cell * 0.32)
            svg.open("g", [("class", "annotations"), ("font-size", SVGDocument.px(annotationSize)), ("text-anchor", "middle")])
            for r in 0..<rows {
                for c in 0..<columns where values[r][c].isFinite {
                    let v = values[r][c]
                    let colour = palette.wantsLightText(at: fraction(v)) ? "white" : "black"
                    svg.text(String(format: "%.\(annotationDecimals)f", v), x: gridLeft + (Double(c) + 0.5) * cell,
                             y: gridTop + (Double(r) + 0.5) * cell + annotationSize * 0.35,
                             [("class", "annotation"), ("fill", colour)])
                }
            }
            svg.close("g")
        }

        svg.rect(x: gridLeft, y: gridTop, width: gridWidth, height: gridHeight,
                 [("class", "frame"), ("fill", "none"), ("stroke", "#333333"), ("stroke-width", "1")])
        drawLabels(&svg, rows: rows, columns: columns, cell: cell, stride: labelStride, gridLeft: gridLeft,
                   gridTop: gridTop, gridWidth: gridWidth, gridHeight: gridHeight, rotate: rotateColumnLabels,
                   columnLabelSpace: columnLabelSpace, fontSize: fontSize)
        try drawColorBar(&svg, lo: lo, hi: hi, x: barLeft, top: gridTop, width: barWidth, height: barHeight,
                         fontSize: fontSize)
        if !title.isEmpty {
            svg.text(title, x: width / 2, y: 26, [("class", "title"), ("text-anchor", "middle"), ("font-size", "15"),
                                                  ("font-weight", "bold")])
        }
        return svg.finish(title: title)
    }

    /// Renders and writes the SVG to `url` atomically (temporary file, then rename).
    public func write(to url: URL) throws {
        try writeAtomically(try render(), to: url)
    }

    private func drawLabels(_ svg: inout SVGDocument, rows: Int, columns: Int, cell: Double, stride: Int,
                            gridLeft: Double, gridTop: Double, gridWidth: Double, gridHeight: Double, rotate: Bool,
                            columnLabelSpace: Double, fontSize: Double) {
        svg.open("g", [("class", "row-labels"), ("font-size", "\(Int(fontSize))"), ("text-anchor", "end"), ("fill", "#222222")])
        for r in Swift.stride(from: 0, to: rows, by: stride) {
            svg.text(rowLabels[r], x: gridLeft - 6, y: gridTop + (Double(r) + 0.5) * cell + fontSize * 0.35,
                     [("class", "row-label")])
        }
        svg.close("g")
        svg.open("g", [("class", "column-labels"), ("font-size", "\(Int(fontSize))"), ("fill", "#222222")])
        let labelY = gridTop + gridHeight + fontSize + 4
        for c in Swift.stride(from: 0, to: columns, by: stride) {
            let x = gridLeft + (Double(c) + 0.5) * cell
            if rotate {
                svg.text(columnLabels[c], x: x, y: labelY, [("class", "column-label"), ("text-anchor", "end"),
                         ("transform", "rotate(-45 \(SVGDocument.px(x)) \(SVGDocument.px(labelY)))")])
            } else {
                svg.text(columnLabels[c], x: x, y: labelY, [("class", "column-label"), ("text-anchor", "middle")])
            }
        }
        svg.close("g")
        if !xLabel.isEmpty {
            svg.text(xLabel, x: gridLeft + gridWidth / 2, y: gridTop + gridHeight + columnLabelSpace + 18,
                     [("class", "axis-label"), ("text-anchor", "middle"), ("font-size", "13")])
        }
        if !yLabel.isEmpty {
            let midY = gridTop + gridHeight / 2
            svg.text(yLabel, x: 18, y: midY, [("class", "axis-label"), ("text-anchor", "middle"), ("font-size", "13"),
                                              ("transform", "rotate(-90 18 \(SVGDocument.px(midY)))")])
        }
    }

    private func drawColorBar(_ svg: inout SVGDocument, lo: Double, hi: Double, x: Double, top: Double,
                              width: Double, height: Double, fontSize: Double) throws {
        // The gradient runs bottom (lo) to top (hi) through evenly spaced stops of the colour map.
        svg.open("defs")
        svg.open("linearGradient", [("id", "colorbar-gradient"), ("x1", "0"), ("y1", "1"), ("x2", "0"), ("y2", "0")])
        for i in 0...16 {
            let t = Double(i) / 16
            svg.empty("stop", [("offset", String(format: "%.4f", t)), ("stop-color", colorMap.hex(at: t))])
        }
        svg.close("linearGradient")
        svg.close("defs")
        svg.open("g", [("class", "colorbar"), ("font-size", "\(Int(fontSize))"), ("fill", "#222222")])
        svg.rect(x: x, y: top, width: width, height: height,
                 [("fill", "url(#colorbar-gradient)"), ("stroke", "#333333"), ("stroke-width", "1")])
        let scale = try AxisScale.fitting([lo, hi], kind: .linear, pixelStart: top + height, pixelEnd: top,
                                          niceBounds: false, targetTickCount: 5)
        for v in scale.ticks {
            guard let y = scale.position(of: v) else { continue }
            svg.line(x1: x + width, y1: y, x2: x + width + 4, y2: y, [("class", "tick"), ("stroke", "#333333")])
            svg.text(scale.label(for: v), x: x + width + 7, y: y + fontSize * 0.35,
                     [("class", "tick-label"), ("data-value", "\(v)")])
        }
        if !colorBarLabel.isEmpty {
            let lx = x + width + 52, midY = top + height / 2
            svg.text(colorBarLabel, x: lx, y: midY, [("class", "axis-label"), ("text-anchor", "middle"), ("font-size", "13"),
                                                     ("transform", "rotate(90 \(SVGDocument.px(lx)) \(SVGDocument.px(midY)))")])
        }
        svg.close("g")
    }
}
