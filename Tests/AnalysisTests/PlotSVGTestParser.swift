// Parses rendered SVG with Foundation's XMLParser so plot tests check real document structure, not substrings.
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest

/// One parsed element: name, attributes, the classes of its enclosing <g> groups, and its direct text.
struct SVGElement {
    let name: String
    let attributes: [String: String]
    let ancestorClasses: [String]
    var text: String = ""

    /// The element's class list.
    var classes: [String] { (attributes["class"] ?? "").split(separator: " ").map(String.init) }

    func double(_ attribute: String) -> Double? { attributes[attribute].flatMap(Double.init) }
}

/// All elements of an SVG document in document order; fails the test when the text is not well-formed XML.
final class SVGTestParser: NSObject, XMLParserDelegate {
    private(set) var elements: [SVGElement] = []
    private var stack: [Int] = []
    private var error: Error?

    static func parse(_ svg: String, file: StaticString = #filePath, line: UInt = #line) throws -> [SVGElement] {
        let delegate = SVGTestParser()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = delegate
        let ok = parser.parse()
        XCTAssertTrue(ok, "SVG is not well-formed XML: \(String(describing: parser.parserError ?? delegate.error))",
                      file: file, line: line)
        if !ok { throw parser.parserError ?? NSError(domain: "SVGTestParser", code: 1) }
        return delegate.elements
    }

    func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]) {
        let ancestors = stack.flatMap { elements[$0].classes }
        elements.append(SVGElement(name: elementName, attributes: attributeDict, ancestorClasses: ancestors))
        stack.append(elements.count - 1)
    }

    func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName qName: String?) {
        stack.removeLast()
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if let top = stack.last { elements[top].text += string }
    }

    func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) { error = parseError }
}

extension Array where Element == SVGElement {
    /// Elements named `name` that carry class `cls` (and, when given, sit inside a group of class `inside`).
    func matching(_ name: String, class cls: String? = nil, inside: String? = nil) -> [SVGElement] {
        filter { e in
            e.name == name && (cls.map { e.classes.contains($0) } ?? true)
                && (inside.map { e.ancestorClasses.contains($0) } ?? true)
        }
    }
}
