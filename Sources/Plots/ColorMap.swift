// Colour scales for heatmaps and the categorical palette for line series.
import Foundation

/// A sequential colour scale from low (t = 0) to high (t = 1) values.
public enum ColorMap: String, Sendable {
    /// Perceptually uniform dark purple → blue → green → yellow (viridis-like), readable in grey print.
    case viridis
    /// Black → white.
    case grayscale

    /// Anchor colours sampled evenly from viridis; linear interpolation between them is visually faithful.
    private static let viridisAnchors: [(Double, Double, Double)] = [
        (68, 1, 84), (72, 40, 120), (62, 73, 137), (49, 104, 142), (38, 130, 142),
        (31, 158, 137), (53, 183, 121), (110, 206, 88), (181, 222, 43), (253, 231, 37),
    ]

    /// The colour at `t` in 0...1 (clamped) as red, green, blue in 0...255.
    public func rgb(at t: Double) -> (red: Double, green: Double, blue: Double) {
        let t = t.isNaN ? 0 : min(1, max(0, t))
        switch self {
        case .grayscale:
            return (255 * t, 255 * t, 255 * t)
        case .viridis:
            let anchors = Self.viridisAnchors
            let scaled = t * Double(anchors.count - 1)
            let i = min(anchors.count - 2, Int(scaled))
            let f = scaled - Double(i)
            let a = anchors[i], b = anchors[i + 1]
            return (a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f, a.2 + (b.2 - a.2) * f)
        }
    }

    /// The colour at `t` as "#rrggbb".
    public func hex(at t: Double) -> String {
        let c = rgb(at: t)
        return String(format: "#%02x%02x%02x", Int(c.red.rounded()), Int(c.green.rounded()), Int(c.blue.rounded()))
    }

    /// Whether text drawn on the colour at `t` should be white (dark background) rather than black.
    func wantsLightText(at t: Double) -> Bool {
        let c = rgb(at: t)
        // Relative luminance with Rec. 709 weights on 0...255 values.
        return 0.2126 * c.red + 0.7152 * c.green + 0.0722 * c.blue < 128
    }
}

/// Distinct colours for line series, cycled when there are more series than colours.
let seriesPalette = ["#1f5fa8", "#e07b1a", "#2a9d4a", "#c9302c", "#7b52ab", "#8c5a3c", "#d45fa8", "#6b6b6b",
                     "#a8a21f", "#1fa8b5"]
