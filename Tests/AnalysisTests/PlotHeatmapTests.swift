// Heatmap: one cell per value with the colour-map colour, annotations, thinned labels on large grids, a colour
// bar with ticks inside the range, NaN cells drawn as "missing", typed errors for malformed grids.
import Foundation
import XCTest
import Plots

final class PlotHeatmapTests: XCTestCase {
    private func grid(rows: Int, columns: Int) -> [[Double]] {
        (0..<rows).map { r in (0..<columns).map { c in Double(r * columns + c) / Double(rows * columns - 1) } }
    }

    func testCellsAnnotationsLabelsAndColoursParse() throws {
        var map = Heatmap(title: "φ(i, j) <q_proj>", values: grid(rows: 4, columns: 6),
                          rowLabels: (1...4).map(String.init), columnLabels: (1...6).map(String.init))
        map.annotatesCells = true
        map.xLabel = "j"; map.yLabel = "i"; map.colorBarLabel = "φ"
        let elements = try SVGTestParser.parse(try map.render())
        let cells = elements.matching("rect", class: "cell")
        XCTAssertEqual(cells.count, 24)
        XCTAssertEqual(elements.matching("text", class: "annotation").count, 24)
        XCTAssertEqual(elements.matching("text", class: "row-label").map(\.text), ["1", "2", "3", "4"])
        XCTAssertEqual(elements.matching("text", class: "column-label").map(\.text), ["1", "2", "3", "4", "5", "6"])
        // Ends of the data range take the ends of the viridis scale.
        XCTAssertEqual(cells.first?.attributes["fill"], ColorMap.viridis.hex(at: 0))
        XCTAssertEqual(cells.last?.attributes["fill"], ColorMap.viridis.hex(at: 1))
        XCTAssertEqual(ColorMap.viridis.hex(at: 0), "#440154")
        XCTAssertEqual(ColorMap.viridis.hex(at: 1), "#fde725")
        // Row 0 is at the top, columns go left to right.
        let cell = { (r: Int, c: Int) in cells.first { $0.attributes["data-row"] == "\(r)" && $0.attributes["data-column"] == "\(c)" }! }
        XCTAssertLessThan(cell(0, 0).double("y")!, cell(1, 0).double("y")!)
        XCTAssertLessThan(cell(0, 0).double("x")!, cell(0, 1).double("x")!)
        XCTAssertEqual(cell(2, 3).double("data-value")!, 15.0 / 23, accuracy: 1e-12)
        // Colour-bar ticks lie within the data range 0...1.
        let barTicks = elements.matching("text", class: "tick-label", inside: "colorbar").compactMap { $0.double("data-value") }
        XCTAssertEqual(barTicks, [0, 0.2, 0.4, 0.6, 0.8, 1.0].map { $0 }, "colour-bar ticks")
        XCTAssertEqual(elements.matching("stop").count, 17)
        XCTAssertEqual(elements.matching("text", class: "title").first?.text, "φ(i, j) <q_proj>")
    }

    func testLargeGridThinsLabelsButDrawsEveryCell() throws {
        let map = Heatmap(title: "64", values: grid(rows: 64, columns: 64),
                          rowLabels: (1...64).map(String.init), columnLabels: (1...64).map(String.init))
        let elements = try SVGTestParser.parse(try map.render())
        XCTAssertEqual(elements.matching("rect", class: "cell").count, 4096)
        // 480 px / 64 = 7 px cells; labels need 14 px: every 2nd row and column is labelled.
        let rowLabels = elements.matching("text", class: "row-label").map(\.text)
        XCTAssertEqual(rowLabels.count, 32)
        XCTAssertEqual(rowLabels.prefix(3), ["1", "3", "5"])
        XCTAssertEqual(elements.matching("text", class: "column-label").count, 32)
        XCTAssertEqual(elements.matching("rect", class: "cell").first?.double("width"), 7)
    }

    func testNaNCellsAreDrawnAsMissingAndLeftOutOfTheColourRange() throws {
        var values: [[Double]] = [[0.5, .nan], [1.5, 2.5]]
        var map = Heatmap(title: "", values: values, rowLabels: ["a", "b"], columnLabels: ["x", "y"])
        map.annotatesCells = true
        var elements = try SVGTestParser.parse(try map.render())
        let missing = elements.matching("rect", class: "missing")
        XCTAssertEqual(missing.count, 1)
        XCTAssertEqual(missing.first?.attributes["data-column"], "1")
        XCTAssertNil(missing.first?.attributes["data-value"])
        XCTAssertEqual(elements.matching("text", class: "annotation").map(\.text), ["0.50", "1.50", "2.50"])
        let finiteCells = elements.matching("rect", class: "cell").filter { !$0.classes.contains("missing") }
        XCTAssertEqual(finiteCells.map { $0.attributes["fill"]! },
                       [ColorMap.viridis.hex(at: 0), ColorMap.viridis.hex(at: 0.5), ColorMap.viridis.hex(at: 1)])

        // An explicit range clamps values outside it to the ends of the scale.
        values = [[-1, 0.25], [0.5, 3]]
        map = Heatmap(title: "", values: values, rowLabels: ["a", "b"], columnLabels: ["x", "y"])
        map.valueRange = 0...1
        elements = try SVGTestParser.parse(try map.render())
        XCTAssertEqual(elements.matching("rect", class: "cell").map { $0.attributes["fill"]! },
                       [ColorMap.viridis.hex(at: 0), ColorMap.viridis.hex(at: 0.25), ColorMap.viridis.hex(at: 0.5),
                        ColorMap.viridis.hex(at: 1)])
    }

    func testMalformedGridsThrowTypedErrors() {
        func expect(_ map: Heatmap, _ expected: PlotError, line: UInt = #line) {
            XCTAssertThrowsError(try map.render(), line: line) { XCTAssertEqual($0 as? PlotError, expected, line: line) }
        }
        expect(Heatmap(title: "", values: [], rowLabels: [], columnLabels: []), .emptyGrid)
        expect(Heatmap(title: "", values: [[1, 2], [3]], rowLabels: ["a", "b"], columnLabels: ["x", "y"]),
               .raggedRow(row: 1, count: 1, expected: 2))
        expect(Heatmap(title: "", values: [[1, 2]], rowLabels: ["a", "b"], columnLabels: ["x", "y"]),
               .labelCountMismatch(axis: "row", count: 2, expected: 1))
        expect(Heatmap(title: "", values: [[1, 2]], rowLabels: ["a"], columnLabels: ["x"]),
               .labelCountMismatch(axis: "column", count: 1, expected: 2))
        expect(Heatmap(title: "n", values: [[.nan]], rowLabels: ["a"], columnLabels: ["x"]),
               .noPlottableData(chart: "heatmap 'n'"))
        var badRange = Heatmap(title: "", values: [[1]], rowLabels: ["a"], columnLabels: ["x"])
        badRange.valueRange = 1...1
        XCTAssertThrowsError(try badRange.render()) { guard case .invalidArgument? = $0 as? PlotError else { return XCTFail("\($0)") } }
    }

    func testHeatmapWriteRoundTrips() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lorakit-heatmap-\(UUID().uuidString).svg")
        defer { try? FileManager.default.removeItem(at: url) }
        let map = Heatmap(title: "w", values: [[0, 1], [1, 0]], rowLabels: ["1", "2"], columnLabels: ["1", "2"])
        try map.write(to: url)
        XCTAssertEqual(try SVGTestParser.parse(try String(contentsOf: url, encoding: .utf8)).matching("rect", class: "cell").count, 4)
    }
}
