// A minimal SVG builder: elements appended as text with escaped attributes and content, plus the atomic file
// write shared by every chart. Coordinates are pixels with the origin at the top left (SVG convention).
import Foundation

/// Escapes the five XML special characters so arbitrary labels are safe as text or attribute values.
public func escapeXML(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for ch in text.unicodeScalars {
        switch ch {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        default:
            // Control characters other than tab/newline are not allowed in XML 1.0 at all: drop them.
            if ch.value < 0x20 && ch != "\t" && ch != "\n" && ch != "\r" { continue }
            out.unicodeScalars.append(ch)
        }
    }
    return out
}

/// An SVG document under construction; `finish()` returns the complete text.
struct SVGDocument {
    private(set) var body: String = ""
    let width: Double
    let height: Double

    init(width: Double, height: Double) {
        self.width = width
        self.height = height
    }

    /// Pixel coordinates with two decimals: enough precision, small files.
    static func px(_ v: Double) -> String { String(format: "%.2f", v) }

    private static func attributeText(_ attributes: [(String, String)]) -> String {
        attributes.map { " \($0.0)=\"\(escapeXML($0.1))\"" }.joined()
    }

    mutating func open(_ name: String, _ attributes: [(String, String)] = []) {
        body += "<\(name)\(Self.attributeText(attributes))>\n"
    }

    mutating func close(_ name: String) { body += "</\(name)>\n" }

    /// Escaped character data inside the currently open element.
    mutating func appendText(_ content: String) { body += escapeXML(content) }

    mutating func empty(_ name: String, _ attributes: [(String, String)]) {
        body += "<\(name)\(Self.attributeText(attributes))/>\n"
    }

    /// A text element; `content` is escaped. `raw` is pre-built markup (tspans) and is not escaped.
    mutating func text(_ content: String, x: Double, y: Double, _ attributes: [(String, String)] = [],
                       raw: String? = nil) {
        let attrs = [("x", Self.px(x)), ("y", Self.px(y))] + attributes
        body += "<text\(Self.attributeText(attrs))>\(raw ?? escapeXML(content))</text>\n"
    }

    mutating func line(x1: Double, y1: Double, x2: Double, y2: Double, _ attributes: [(String, String)]) {
        empty("line", [("x1", Self.px(x1)), ("y1", Self.px(y1)), ("x2", Self.px(x2)), ("y2", Self.px(y2))] + attributes)
    }

    mutating func rect(x: Double, y: Double, width: Double, height: Double, _ attributes: [(String, String)]) {
        empty("rect", [("x", Self.px(x)), ("y", Self.px(y)), ("width", Self.px(width)), ("height", Self.px(height))]
              + attributes)
    }

    func finish(title: String) -> String {
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Self.px(width))\" height=\"\(Self.px(height))\" "
        out += "viewBox=\"0 0 \(Self.px(width)) \(Self.px(height))\" font-family=\"Helvetica, Arial, sans-serif\">\n"
        out += "<title>\(escapeXML(title))</title>\n"
        out += "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += body
        out += "</svg>\n"
        return out
    }
}

/// Writes `text` to `url` atomically: a temporary file in the same directory, then a rename over the target,
/// so a reader never sees half a chart.
func writeAtomically(_ text: String, to url: URL) throws {
    let directory = url.deletingLastPathComponent()
    let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
    do {
        try Data(text.utf8).write(to: temporary)
    } catch {
        throw PlotError.writeFailed(path: url.path, reason: "\(error.localizedDescription)")
    }
    if rename(temporary.path, url.path) != 0 {
        let reason = String(cString: strerror(errno))
        try? FileManager.default.removeItem(at: temporary)
        throw PlotError.writeFailed(path: url.path, reason: reason)
    }
}

/// An approximate text width in pixels for Helvetica-like fonts, used to lay out labels and legends.
func estimatedTextWidth(_ text: String, fontSize: Double) -> Double {
    Double(text.count) * fontSize * 0.58
}
