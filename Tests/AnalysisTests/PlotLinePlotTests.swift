// LinePlot and AxisScale: the SVG parses as XML with one group per series and one marker per point, log axes
// put decades at equal distances, nice ticks, NaN/≤0 values as gaps, typed errors, atomic writes.
import Foundation
import XCTest
import Plots

final class PlotLinePlotTests: XCTestCase {
    func testSeriesMarkersLegendAndEscapedTextParse() throws {
        var plot = LinePlot(title: "Spectrum <q_proj> & \"v\"", xLabel: "k", yLabel: "σ_k", series: [
            LineSeries(name: "a<b", y: [5, 4, 3, 2, 1]),
            LineSeries(name: "second", x: [0, 1, 2, 3, 4, 5, 6], y: [0, 1, 4, 9, 16, 25, 36]),
            LineSeries(name: "third", x: [1, 2, 3, 4], y: [-2, -1, 0, 1]),
        ])
        plot.showsMarkers = true
        let elements = try SVGTestParser.parse(try plot.render())

        XCTAssertEqual(elements.first?.name, "svg")
        let groups = elements.matching("g", class: "series")
        XCTAssertEqual(groups.map { $0.attributes["data-name"] }, ["a<b", "second", "third"])
        XCTAssertEqual(elements.matching("circle", class: "marker").count, 5 + 7 + 4)
        XCTAssertEqual(elements.matching("polyline", class: "line").count, 3)
        // Each polyline holds exactly its series' points.
        let pointCounts = elements.matching("polyline", class: "line").map {
            $0.attributes["points"]!.split(separator: " ").count
        }
        XCTAssertEqual(pointCounts, [5, 7, 4])
        XCTAssertEqual(elements.matching("text", class: "legend-label").map(\.text), ["a<b", "second", "third"])
        XCTAssertEqual(elements.matching("text", class: "title").first?.text, "Spectrum <q_proj> & \"v\"")
        XCTAssertEqual(elements.first { $0.name == "title" }?.text, "Spectrum <q_proj> & \"v\"")
    }

    func testLogAxisPlacesDecadesAtEqualDistances() throws {
        // y from 1e-3 to 10: five decades, each drawn the same height apart; markers sit on the tick lines.
        var plot = LinePlot(title: "log", xLabel: "x", yLabel: "y",
                            series: [LineSeries(name: "s", y: [1e-3, 1e-2, 1e-1, 1, 10])])
        plot.yScale = .log10
        plot.showsMarkers = true
        let elements = try SVGTestParser.parse(try plot.render())
        let tickValues = elements.matching("text", class: "tick-label", inside: "y-axis").compactMap { $0.double("data-value") }
        XCTAssertEqual(tickValues.count, 5)
        for (v, e) in zip(tickValues, [-3.0, -2, -1, 0, 1]) { XCTAssertEqual(log10(v), e, accuracy: 1e-12) }
        let tickY = elements.matching("line", class: "tick", inside: "y-axis").compactMap { $0.double("y1") }
        let markerY = elements.matching("circle", class: "marker").compactMap { $0.double("cy") }
        XCTAssertEqual(markerY.count, 5)
        for (t, m) in zip(tickY, markerY) { XCTAssertEqual(t, m, accuracy: 0.011) }
        // Plot area spans 44...384 px (title margin, bottom margin): 340 px / 4 decades = 85 px per decade.
        XCTAssertEqual(markerY.first!, 384, accuracy: 0.011)
        XCTAssertEqual(markerY.last!, 44, accuracy: 0.011)
        for i in 1..<markerY.count { XCTAssertEqual(markerY[i - 1] - markerY[i], 85, accuracy: 0.02) }
        // Minor ticks 2...9 × 10^k inside the domain: 8 per decade × 4 decades.
        let minorY = elements.matching("line", inside: "grid").filter { $0.attributes["stroke"] == "#f2f2f2" }
        XCTAssertEqual(minorY.count, 32)
    }

    func testLogScaleWidensToWholeDecadesAndPlacesIntermediateValues() throws {
        let axis = try AxisScale.fitting([0.03, 0.2, 7], kind: .log10, pixelStart: 300, pixelEnd: 0)
        XCTAssertEqual(axis.lower, 0.01, accuracy: 1e-15)
        XCTAssertEqual(axis.upper, 10, accuracy: 1e-12)
        XCTAssertEqual(axis.ticks.count, 4)
        // 10^-1.5 lies halfway between the 0.01 and 0.1 ticks: 3 decades over 300 px → 100 px each.
        XCTAssertEqual(axis.position(of: pow(10, -1.5))!, 250, accuracy: 1e-9)
        XCTAssertEqual(axis.position(of: 1)!, 100, accuracy: 1e-9)
        XCTAssertNil(axis.position(of: 0))
        XCTAssertNil(axis.position(of: -1))
        XCTAssertNil(axis.position(of: .nan))
        XCTAssertEqual(axis.label(for: 0.01), "1e-2")
        // 40 decades are labelled every 5th decade (at most 8 labels).
        let wide = try AxisScale.fitting([1e-30, 1e10], kind: .log10, pixelStart: 0, pixelEnd: 400)
        XCTAssertEqual(wide.ticks.count, 9)
        XCTAssertEqual(log10(wide.ticks[1]) - log10(wide.ticks[0]), 5, accuracy: 1e-9)
    }

    func testLinearTicksAreNiceAndCoverTheData() throws {
        let axis = try AxisScale.fitting([0.3, 9.7], kind: .linear, pixelStart: 0, pixelEnd: 100)
        XCTAssertEqual(axis.ticks, [0, 2, 4, 6, 8, 10])
        XCTAssertEqual(axis.ticks.map { axis.label(for: $0) }, ["0", "2", "4", "6", "8", "10"])
        let small = try AxisScale.fitting([0, 0.37], kind: .linear, pixelStart: 0, pixelEnd: 100)
        XCTAssertEqual(small.ticks.map { small.label(for: $0) }, ["0", "0.1", "0.2", "0.3", "0.4"])
        XCTAssertEqual(small.position(of: 0.2)!, 50, accuracy: 1e-9)
        let negative = try AxisScale.fitting([-3.2, 1.1], kind: .linear, pixelStart: 0, pixelEnd: 100)
        XCTAssertEqual(negative.ticks, [-4, -3, -2, -1, 0, 1, 2])
        // A constant series still gets a span around its value.
        let constant = try AxisScale.fitting([5, 5], kind: .linear, pixelStart: 0, pixelEnd: 100)
        XCTAssertLessThan(constant.lower, 5)
        XCTAssertGreaterThan(constant.upper, 5)
    }

    func testNonFiniteAndNonPositiveValuesBecomeGaps() throws {
        var plot = LinePlot(title: "", xLabel: "x", yLabel: "y",
                            series: [LineSeries(name: "s", y: [1, 2, .nan, 4, 5, .infinity, 7])])
        plot.showsMarkers = true
        var elements = try SVGTestParser.parse(try plot.render())
        let segments = elements.matching("polyline", class: "line").map { $0.attributes["points"]!.split(separator: " ").count }
        XCTAssertEqual(segments, [2, 2])  // [1,2] | [4,5] | lone 7 is only a marker
        XCTAssertEqual(elements.matching("circle", class: "marker").count, 5)

        // On a log axis 0 and negative values have no position: isolated points are drawn as dots.
        plot = LinePlot(title: "", xLabel: "x", yLabel: "y", series: [LineSeries(name: "s", y: [1, 0, 10, -1, 100])])
        plot.yScale = .log10
        elements = try SVGTestParser.parse(try plot.render())
        XCTAssertEqual(elements.matching("polyline", class: "line").count, 0)
        XCTAssertEqual(elements.matching("circle", class: "isolated").count, 3)
    }

    func testBadInputThrowsTypedErrors() {
        let allNaN = LinePlot(title: "t", xLabel: "", yLabel: "", series: [LineSeries(name: "s", y: [.nan, .nan])])
        XCTAssertThrowsError(try allNaN.render()) { XCTAssertEqual($0 as? PlotError, .noPlottableData(chart: "line plot 't'")) }
        var logZeros = LinePlot(title: "z", xLabel: "", yLabel: "", series: [LineSeries(name: "s", y: [0, 0])])
        logZeros.yScale = .log10
        XCTAssertThrowsError(try logZeros.render()) { XCTAssertEqual($0 as? PlotError, .noPlottableData(chart: "line plot 'z'")) }
        let mismatch = LinePlot(title: "", xLabel: "", yLabel: "", series: [LineSeries(name: "m", x: [1, 2], y: [1])])
        XCTAssertThrowsError(try mismatch.render()) {
            XCTAssertEqual($0 as? PlotError, .seriesLengthMismatch(series: "m", xCount: 2, yCount: 1))
            XCTAssertTrue("\($0)".contains("'m'"))
        }
        var tiny = LinePlot(title: "", xLabel: "", yLabel: "", series: [LineSeries(name: "s", y: [1, 2])])
        tiny.width = 10
        XCTAssertThrowsError(try tiny.render()) { guard case .invalidArgument? = $0 as? PlotError else { return XCTFail("\($0)") } }
    }

    func testWriteIsAtomicAndReportsUnwritablePaths() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lorakit-plots-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let plot = LinePlot(title: "w", xLabel: "x", yLabel: "y", series: [LineSeries(name: "s", y: [3, 1, 2])])
        let target = directory.appendingPathComponent("plot.svg")
        try Data("old".utf8).write(to: target)
        try plot.write(to: target)
        XCTAssertEqual(try String(contentsOf: target, encoding: .utf8), try plot.render())
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["plot.svg"])
        let missing = directory.appendingPathComponent("no/such/dir/plot.svg")
        XCTAssertThrowsError(try plot.write(to: missing)) {
            guard case let .writeFailed(path, _)? = $0 as? PlotError else { return XCTFail("\($0)") }
            XCTAssertEqual(path, missing.path)
        }
    }

    func testLongLegendsGrowTheChartInsteadOfBeingClipped() throws {
        let series = (0..<40).map { LineSeries(name: "model.layers.\($0).self_attn.q_proj", y: [3, 2, 1]) }
        let elements = try SVGTestParser.parse(try LinePlot(title: "t", xLabel: "k", yLabel: "σ", series: series).render())
        let svg = elements[0]
        let labels = elements.matching("text", class: "legend-label")
        XCTAssertEqual(labels.count, 40)
        XCTAssertEqual(labels.last?.text, "model.layers.39.self_attn.q_proj")   // not truncated: the chart widened
        XCTAssertGreaterThan(svg.double("width")!, 720)
        // 40 rows × 20 px below the 44 px title margin, plus the 56 px bottom margin.
        XCTAssertEqual(svg.double("height")!, 44 + 8 + 40 * 20 + 56, accuracy: 0.01)
        XCTAssertLessThan(labels.compactMap { $0.double("y") }.max()!, svg.double("height")!)
    }

    func testEscapeXMLHandlesSpecialAndControlCharacters() {
        XCTAssertEqual(escapeXML("a<b>&\"c'\u{01}d"), "a&lt;b&gt;&amp;&quot;c&apos;d")
        XCTAssertEqual(escapeXML("layers.0.self_attn.q_proj φ"), "layers.0.self_attn.q_proj φ")
    }
}
