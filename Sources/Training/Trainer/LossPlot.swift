// loss.svg at the end of a run: train loss per step and valid loss per evaluation, read back from metrics.jsonl
// (so a resumed run plots the whole run, not only its own part).
import Foundation
import Plots

public enum LossPlot {
    /// Writes the train/valid loss curves of `metricsFile` to `url` as SVG. Throws if the log holds no loss.
    public static func write(metricsFile: URL, to url: URL, title: String = "LoRA training loss") throws {
        let entries = try MetricsLog.read(metricsFile)
        func series(_ split: String, _ name: String) -> LineSeries? {
            let points = entries.filter { $0.split == split }.compactMap { e in e.step.flatMap { s in e.loss.map { (Double(s), $0) } } }
            return points.isEmpty ? nil : LineSeries(name: name, x: points.map(\.0), y: points.map(\.1))
        }
        var plot = LinePlot(title: title, xLabel: "step", yLabel: "cross-entropy loss",
                            series: [series("train", "train"), series("valid", "valid")].compactMap { $0 })
        plot.showsMarkers = plot.series.count > 1 && plot.series[1].x.count <= 50  // evaluations are sparse: mark them
        try plot.write(to: url)
    }
}
