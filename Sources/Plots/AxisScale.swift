// Axis scales: map data values to pixels on a linear or base-10 logarithmic axis and choose "nice" ticks
// (1, 2, 5 × 10^k steps on linear axes, whole decades on log axes).
import Foundation

/// How an axis maps values to positions.
public enum ScaleKind: String, Sendable {
    /// Equal distances for equal differences.
    case linear
    /// Equal distances for equal ratios; only values > 0 have a position.
    case log10
}

/// A fitted axis: its domain in data units, the pixel span it maps onto, and its ticks.
public struct AxisScale: Sendable {
    /// Linear or log10.
    public let kind: ScaleKind
    /// Data value drawn at `pixelStart`.
    public let lower: Double
    /// Data value drawn at `pixelEnd`.
    public let upper: Double
    /// Pixel coordinate of `lower` (for a y axis: the bottom of the plot area).
    public let pixelStart: Double
    /// Pixel coordinate of `upper`.
    public let pixelEnd: Double
    /// Major tick values, ascending, all within lower...upper.
    public let ticks: [Double]
    /// Minor tick values (log axes: 2...9 × 10^k when few decades are shown), ascending.
    public let minorTicks: [Double]
    /// Linear tick spacing (0 on log axes); decides how many decimals labels show.
    let step: Double

    /// Fits an axis to `values` (values without a position, such as NaN or ≤ 0 on a log axis, are ignored).
    /// With `niceBounds` the domain widens to whole ticks (or decades); otherwise it is exactly min...max.
    public static func fitting(_ values: [Double], kind: ScaleKind, pixelStart: Double, pixelEnd: Double,
                               niceBounds: Bool = true, targetTickCount: Int = 6,
                               minimumStep: Double? = nil) throws -> AxisScale {
        let usable = values.filter { $0.isFinite && (kind == .linear || $0 > 0) }
        guard let lo = usable.min(), let hi = usable.max() else {
            throw PlotError.noPlottableData(chart: "axis")
        }
        guard targetTickCount >= 2 else {
            throw PlotError.invalidArgument(argument: "targetTickCount", reason: "\(targetTickCount) < 2")
        }
        switch kind {
        case .linear:
            if let m = minimumStep, !(m.isFinite && m > 0) {
                throw PlotError.invalidArgument(argument: "minimumStep", reason: "\(m) must be finite and > 0")
            }
            return linear(lo: lo, hi: hi, pixelStart: pixelStart, pixelEnd: pixelEnd, niceBounds: niceBounds,
                          targetTickCount: targetTickCount, minimumStep: minimumStep)
        case .log10:
            return logarithmic(lo: lo, hi: hi, pixelStart: pixelStart, pixelEnd: pixelEnd, niceBounds: niceBounds)
        }
    }

    /// The pixel coordinate of `value`, or nil when it has none (non-finite, or ≤ 0 on a log axis).
    public func position(of value: Double) -> Double? {
        guard value.isFinite else { return nil }
        let t: Double
        switch kind {
        case .linear:
            t = (value - lower) / (upper - lower)
        case .log10:
            guard value > 0 else { return nil }
            t = (Foundation.log10(value) - Foundation.log10(lower)) / (Foundation.log10(upper) - Foundation.log10(lower))
        }
        return pixelStart + t * (pixelEnd - pixelStart)
    }

    /// A plain-text tick label: "0.25", "1500", "1e-3" (log axes use powers of ten).
    public func label(for value: Double) -> String {
        switch kind {
        case .log10:
            guard Self.isPowerOfTen(value) else { return String(format: "%g", value) }
            let e = Int(Foundation.log10(value).rounded())
            return e == 0 ? "1" : "1e\(e)"
        case .linear:
            if value == 0 { return "0" }
            let magnitude = max(abs(lower), abs(upper))
            if magnitude >= 1e6 || magnitude < 1e-3 { return String(format: "%.3g", value) }
            let decimals = step > 0 ? max(0, -Int(Foundation.floor(Foundation.log10(step) + 1e-9))) : 2
            return String(format: "%.\(min(decimals, 6))f", value)
        }
    }

    /// Label markup for SVG: powers of ten as 10 with a superscript exponent, other labels escaped text.
    func labelMarkup(for value: Double) -> String {
        guard kind == .log10, Self.isPowerOfTen(value) else { return escapeXML(label(for: value)) }
        let e = Int(Foundation.log10(value).rounded())
        if e == 0 { return "1" }
        if e == 1 { return "10" }
        let exponent = e < 0 ? "\u{2212}\(-e)" : "\(e)"
        return "10<tspan dy=\"-0.45em\" font-size=\"75%\">\(exponent)</tspan>"
    }

    static func isPowerOfTen(_ value: Double) -> Bool {
        let e = Foundation.log10(value)
        return abs(e - e.rounded()) < 1e-9
    }

    /// 1, 2 or 5 × 10^k, the nearest "round" step to `x` > 0, as (mantissa, exponent).
    static func niceStep(_ x: Double) -> (mantissa: Int, exponent: Int) {
        let exponent = Int(Foundation.floor(Foundation.log10(x)))
        let fraction = x / Foundation.pow(10, Double(exponent))
        if fraction < 1.5 { return (1, exponent) }
        if fraction < 3 { return (2, exponent) }
        if fraction < 7 { return (5, exponent) }
        return (1, exponent + 1)
    }

    /// multiple × mantissa × 10^exponent, dividing by an exact power of ten for negative exponents so that
    /// 3 × 0.2 prints as 0.6, not 0.6000000000000001.
    static func tickValue(_ multiple: Int, mantissa: Int, exponent: Int) -> Double {
        let whole = Double(multiple * mantissa)
        let value = exponent >= 0 ? whole * Foundation.pow(10, Double(exponent)) : whole / Foundation.pow(10, Double(-exponent))
        return value + 0.0  // -0 becomes 0
    }

    private static func linear(lo: Double, hi: Double, pixelStart: Double, pixelEnd: Double, niceBounds: Bool,
                               targetTickCount: Int, minimumStep: Double?) -> AxisScale {
        var lo = lo, hi = hi
        if lo == hi {
            // A constant series still needs a visible span: centre it.
            let half = lo == 0 ? 1 : abs(lo) * 0.5
            lo -= half; hi += half
        }
        let nice = niceStep(max((hi - lo) / Double(targetTickCount - 1), minimumStep ?? 0))
        let step = tickValue(1, mantissa: nice.mantissa, exponent: nice.exponent)
        var first = Int(Foundation.floor(lo / step + 1e-9))
        var last = Int(Foundation.ceil(hi / step - 1e-9))
        if niceBounds {
            lo = tickValue(first, mantissa: nice.mantissa, exponent: nice.exponent)
            hi = tickValue(last, mantissa: nice.mantissa, exponent: nice.exponent)
        } else {
            first = Int(Foundation.ceil(lo / step - 1e-9))
            last = Int(Foundation.floor(hi / step + 1e-9))
        }
        // Ticks from integer multiples of the step: no accumulated rounding.
        let ticks = first <= last ? (first...last).map { tickValue($0, mantissa: nice.mantissa, exponent: nice.exponent) } : []
        return AxisScale(kind: .linear, lower: lo, upper: hi, pixelStart: pixelStart, pixelEnd: pixelEnd,
                         ticks: ticks, minorTicks: [], step: step)
    }

    private static func logarithmic(lo: Double, hi: Double, pixelStart: Double, pixelEnd: Double,
                                    niceBounds: Bool) -> AxisScale {
        var firstDecade = Int(Foundation.floor(Foundation.log10(lo) + 1e-12))
        var lastDecade = Int(Foundation.ceil(Foundation.log10(hi) - 1e-12))
        if lastDecade == firstDecade { lastDecade += 1 }
        // At most ~8 labelled decades: step over several when the data spans many.
        let stride = max(1, Int((Double(lastDecade - firstDecade) / 8).rounded(.up)))
        lastDecade = firstDecade + ((lastDecade - firstDecade + stride - 1) / stride) * stride
        var lower = Foundation.pow(10, Double(firstDecade))
        var upper = Foundation.pow(10, Double(lastDecade))
        if !niceBounds {
            lower = lo; upper = hi > lo ? hi : lo * 10
            firstDecade = Int(Foundation.ceil(Foundation.log10(lower) - 1e-12))
        }
        var ticks: [Double] = []
        var decade = firstDecade
        while decade <= lastDecade {
            let v = Foundation.pow(10, Double(decade))
            if v >= lower * (1 - 1e-12) && v <= upper * (1 + 1e-12) { ticks.append(v) }
            decade += stride
        }
        // Spanning at most two decades, 2×10^k and 5×10^k become labelled ticks too: a lone "10⁻¹ … 1" axis
        // would otherwise give no reading aid.
        if stride == 1 && lastDecade - firstDecade <= 2 {
            for d in (firstDecade - 1)..<lastDecade {
                for m in [2.0, 5.0] {
                    let v = m * Foundation.pow(10, Double(d))
                    if v > lower && v < upper { ticks.append(v) }
                }
            }
            ticks.sort()
        }
        var minor: [Double] = []
        if stride == 1 && lastDecade - firstDecade <= 6 {
            for d in (firstDecade - 1)..<lastDecade {
                for m in 2...9 {
                    let v = Double(m) * Foundation.pow(10, Double(d))
                    if v > lower && v < upper && !ticks.contains(where: { abs($0 - v) <= 1e-9 * v }) { minor.append(v) }
                }
            }
        }
        return AxisScale(kind: .log10, lower: lower, upper: upper, pixelStart: pixelStart, pixelEnd: pixelEnd,
                         ticks: ticks, minorTicks: minor, step: 0)
    }
}
