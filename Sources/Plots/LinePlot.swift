// Line charts: several named series of (x, y) points on linear or log10 axes, with ticks, grid, axis labels,
// title, legend and optional point markers.
//
// Missing values: a point whose x or y is NaN or ±Inf, or ≤ 0 on a log axis, has no position; it is not drawn
// and breaks its series' line into separate segments (a gap), so one bad value never hides the rest of a series.
// A chart in which no point at all can be placed throws `PlotError.noPlottableData`.
import Foundation

/// One named series of a line chart.
public struct LineSeries: Sendable {
    /// Shown in the legend.
    public var name: String
    /// x coordinates, one per point.
    public var x: [Double]
    /// y coordinates, one per point.
    public var y: [Double]

    /// A series with explicit x and y values (the counts must match; `render` checks).
    public init(name: String, x: [Double], y: [Double]) {
        self.name = name; self.x = x; self.y = y
    }

    /// A series whose x values are 1, 2, ..., y.count (an index such as "k" in a spectrum plot).
    public init(name: String, y: [Double]) {
        self.init(name: name, x: (0..<y.count).map { Double($0 + 1) }, y: y)
    }
}

/// A line chart rendered as a standalone SVG document.
public struct LinePlot: Sendable {
    /// Heading above the plot area.
    public var title: String
    /// Label under the x axis.
    public var xLabel: String
    /// Label left of the y axis (rotated).
    public var yLabel: String
    /// The series, drawn in order with distinct colours.
    public var series: [LineSeries]
    /// Scale of the x axis.
    public var xScale: ScaleKind = .linear
    /// Scale of the y axis.
    public var yScale: ScaleKind = .linear
    /// Draw a circle at every placed point.
    public var showsMarkers: Bool = false
    /// Draw the legend right of the plot area.
    public var showsLegend: Bool = true
    /// Keep linear x ticks on whole numbers (x is an index such as a rank k).
    public var integerXTicks: Bool = false
    /// Width of the whole SVG in pixels (the legend takes part of it; more when a wide legend needs it).
    public var width: Double = 720
    /// Height of the whole SVG in pixels (more when the legend needs it).
    public var height: Double = 440

    /// A chart with the given texts and series; scales and options keep their defaults until set.
    public init(title: String, xLabel: String, yLabel: String, series: [LineSeries]) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.series = series
    }

    /// The SVG document text.
    public func render() throws -> String {
        guard width >= 200, height >= 150, width.isFinite, height.isFinite else {
            throw PlotError.invalidArgument(argument: "size", reason: "\(width) × \(height) px is below 200 × 150")
        }
        for s in series where s.x.count != s.y.count {
            throw PlotError.seriesLengthMismatch(series: s.name, xCount: s.x.count, yCount: s.y.count)
        }
        // Only points with a position on both axes decide the domains.
        let placeable = series.flatMap { s in zip(s.x, s.y).filter { isPlaceable($0.0, xScale) && isPlaceable($0.1, yScale) } }
        guard !placeable.isEmpty else { throw PlotError.noPlottableData(chart: "line plot '\(title)'") }

        let fontSize = 12.0
        let legendWidth = showsLegend && !series.isEmpty
            ? min(420, 50 + (series.map { estimatedTextWidth($0.name, fontSize: fontSize) }.max() ?? 0)) : 0
        let left = 78.0, right = 18.0 + legendWidth, top = title.isEmpty ? 20.0 : 44.0, bottom = 56.0
        // The chart grows wider rather than squeezing the plot area below 360 px for a wide legend.
        let width = max(self.width, left + 360 + right)
        // The chart grows taller when the legend needs more rows than the plot area is high: never clip it.
        let legendHeight = legendWidth > 0 ? 8 + Double(series.count) * (fontSize + 8) : 0
        let height = max(self.height, top + legendHeight + bottom)
        let plotLeft = left, plotRight = width - right, plotTop = top, plotBottom = height - bottom
        guard plotRight - plotLeft >= 60 else {
            throw PlotError.invalidArgument(argument: "width", reason: "\(width) px leaves no room for the plot area")
        }

        let xAxis = try AxisScale.fitting(placeable.map { $0.0 }, kind: xScale, pixelStart: plotLeft, pixelEnd: plotRight,
                                          minimumStep: integerXTicks ? 1 : nil)
        let yAxis = try AxisScale.fitting(placeable.map { $0.1 }, kind: yScale, pixelStart: plotBottom, pixelEnd: plotTop)

        var svg = SVGDocument(width: width, height: height)
        drawGridAndAxes(&svg, xAxis: xAxis, yAxis: yAxis, plot: (plotLeft, plotRight, plotTop, plotBottom), fontSize: fontSize)

        for (index, s) in series.enumerated() {
            let colour = seriesPalette[index % seriesPalette.count]
            svg.open("g", [("class", "series"), ("data-name", s.name), ("stroke", colour), ("fill", "none")])
            var segment: [(Double, Double)] = []
            var markers: [(Double, Double)] = []
            func flush() {
                if segment.count >= 2 {
                    let points = segment.map { "\(SVGDocument.px($0.0)),\(SVGDocument.px($0.1))" }.joined(separator: " ")
                    svg.empty("polyline", [("class", "line"), ("points", points), ("stroke-width", "1.8"),
                                           ("stroke-linejoin", "round")])
                } else if segment.count == 1 && !showsMarkers {
                    // An isolated point between gaps would otherwise be invisible.
                    svg.empty("circle", [("class", "isolated"), ("cx", SVGDocument.px(segment[0].0)),
                                         ("cy", SVGDocument.px(segment[0].1)), ("r", "2"), ("fill", colour)])
                }
                segment.removeAll()
            }
            for (x, y) in zip(s.x, s.y) {
                if let px = xAxis.position(of: x), let py = yAxis.position(of: y) {
                    segment.append((px, py)); markers.append((px, py))
                } else {
                    flush()
                }
            }
            flush()
            if showsMarkers {
                for (px, py) in markers {
                    svg.empty("circle", [("class", "marker"), ("cx", SVGDocument.px(px)), ("cy", SVGDocument.px(py)),
                                         ("r", "3"), ("fill", colour)])
                }
            }
            svg.close("g")
        }

        if legendWidth > 0 { drawLegend(&svg, x: plotRight + 14, y: plotTop, width: legendWidth - 18, fontSize: fontSize) }
        if !title.isEmpty {
            svg.text(title, x: width / 2, y: 26, [("class", "title"), ("text-anchor", "middle"),
                                                  ("font-size", "15"), ("font-weight", "bold")])
        }
        return svg.finish(title: title)
    }

    /// Renders and writes the SVG to `url` atomically (temporary file, then rename).
    public func write(to url: URL) throws {
        try writeAtomically(try render(), to: url)
    }

    private func isPlaceable(_ v: Double, _ scale: ScaleKind) -> Bool {
        v.isFinite && (scale == .linear || v > 0)
    }

    private func drawGridAndAxes(_ svg: inout SVGDocument, xAxis: AxisScale, yAxis: AxisScale,
                                 plot: (left: Double, right: Double, top: Double, bottom: Double), fontSize: Double) {
        svg.open("g", [("class", "grid"), ("stroke", "#e4e4e4"), ("stroke-width", "1")])
        for v in xAxis.minorTicks { if let x = xAxis.position(of: v) {
            svg.line(x1: x, y1: plot.top, x2: x, y2: plot.bottom, [("stroke", "#f2f2f2")]) } }
        for v in yAxis.minorTicks { if let y = yAxis.position(of: v) {
            svg.line(x1: plot.left, y1: y, x2: plot.right, y2: y, [("stroke", "#f2f2f2")]) } }
        for v in xAxis.ticks { if let x = xAxis.position(of: v) { svg.line(x1: x, y1: plot.top, x2: x, y2: plot.bottom, []) } }
        for v in yAxis.ticks { if let y = yAxis.position(of: v) { svg.line(x1: plot.left, y1: y, x2: plot.right, y2: y, []) } }
        svg.close("g")

        svg.rect(x: plot.left, y: plot.top, width: plot.right - plot.left, height: plot.bottom - plot.top,
                 [("class", "frame"), ("fill", "none"), ("stroke", "#333333"), ("stroke-width", "1")])

        svg.open("g", [("class", "x-axis"), ("font-size", "\(Int(fontSize))"), ("fill", "#222222")])
        for v in xAxis.ticks {
            guard let x = xAxis.position(of: v) else { continue }
            svg.line(x1: x, y1: plot.bottom, x2: x, y2: plot.bottom + 5, [("class", "tick"), ("stroke", "#333333")])
            svg.text(xAxis.label(for: v), x: x, y: plot.bottom + 19,
                     [("class", "tick-label"), ("data-value", "\(v)"), ("text-anchor", "middle")],
                     raw: xAxis.labelMarkup(for: v))
        }
        svg.text(xLabel, x: (plot.left + plot.right) / 2, y: plot.bottom + 42,
                 [("class", "axis-label"), ("text-anchor", "middle"), ("font-size", "13")])
        svg.close("g")

        svg.open("g", [("class", "y-axis"), ("font-size", "\(Int(fontSize))"), ("fill", "#222222")])
        for v in yAxis.ticks {
            guard let y = yAxis.position(of: v) else { continue }
            svg.line(x1: plot.left - 5, y1: y, x2: plot.left, y2: y, [("class", "tick"), ("stroke", "#333333")])
            svg.text(yAxis.label(for: v), x: plot.left - 8, y: y + fontSize * 0.35,
                     [("class", "tick-label"), ("data-value", "\(v)"), ("text-anchor", "end")],
                     raw: yAxis.labelMarkup(for: v))
        }
        let midY = (plot.top + plot.bottom) / 2
        svg.text(yLabel, x: 18, y: midY, [("class", "axis-label"), ("text-anchor", "middle"), ("font-size", "13"),
                                          ("transform", "rotate(-90 18 \(SVGDocument.px(midY)))")])
        svg.close("g")
    }

    private func drawLegend(_ svg: inout SVGDocument, x: Double, y: Double, width: Double, fontSize: Double) {
        svg.open("g", [("class", "legend"), ("font-size", "\(Int(fontSize))")])
        for (index, s) in series.enumerated() {
            let colour = seriesPalette[index % seriesPalette.count]
            let rowY = y + 8 + Double(index) * (fontSize + 8)
            svg.line(x1: x, y1: rowY, x2: x + 22, y2: rowY, [("stroke", colour), ("stroke-width", "2.5")])
            if showsMarkers {
                svg.empty("circle", [("cx", SVGDocument.px(x + 11)), ("cy", SVGDocument.px(rowY)), ("r", "3"),
                                     ("fill", colour)])
            }
            svg.text(truncated(s.name, toWidth: width - 28, fontSize: fontSize), x: x + 28, y: rowY + fontSize * 0.35, [("class", "legend-label"), ("fill", "#222222")])
        }
        svg.close("g")
    }

    /// `text` shortened with an ellipsis so that it fits in `width` pixels.
    private func truncated(_ text: String, toWidth width: Double, fontSize: Double) -> String {
        guard estimatedTextWidth(text, fontSize: fontSize) > width else { return text }
        let keep = max(1, Int(width / (fontSize * 0.58)) - 1)
        return String(text.prefix(keep)) + "\u{2026}"
    }
}
