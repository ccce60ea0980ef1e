// What an AdaLoRA run reports about where its rank went:
//   metrics.jsonl  budget, total_rank, adalora_phase (and orth_reg) every step; "rank.<module>" at every allocation
//   table          final ranks, rows = layers, columns = module types (q_proj, v_proj, …), with totals
//   ranks.svg      the same grid as a heatmap
//   rank_history.svg  rank of every module (rows) at every allocation step (columns), read back from metrics.jsonl
//                  so a resumed run shows the whole run
import Foundation
import PEFT
import Plots

/// The metrics.jsonl fields of an AdaLoRA step, and the rank history read back from a log.
public enum AdaLoRARankLog {
    /// Prefix of the per-module rank keys ("rank.model.layers.0.self_attn.q_proj").
    public static let rankPrefix = "rank."

    /// budget, total_rank and adalora_phase every step, orth_reg when applied, and each module's rank at allocation
    /// steps (the reduction's masking steps and the final fixing step; not the re-applications after it).
    static func record(_ a: RankAllocation, regularization: Float?) -> [String: MetricValue] {
        var r: [String: MetricValue] = ["budget": .int(a.budget), "total_rank": .int(a.totalRank), "adalora_phase": .string(a.phase.rawValue)]
        if let regularization { r["orth_reg"] = .double(Double(regularization)) }
        if a.masked && a.phase != .final { for m in a.ranks { r[rankPrefix + m.module] = .int(m.rank) } }
        return r
    }

    /// Every allocation logged in a metrics file: modules (layer-number order), logged steps (1-based, ascending),
    /// and `ranks[module][step]`. Throws when the log holds no allocation.
    public static func history(metricsFile: URL) throws -> (modules: [String], steps: [Int], ranks: [[Int]]) {
        let entries: [MetricsLog.Entry]
        do { entries = try MetricsLog.read(metricsFile) } catch {
            throw TrainingError.file(path: metricsFile.path, reason: "cannot read the metrics log: \(error.localizedDescription)")
        }
        var rows: [(step: Int, ranks: [String: Int])] = []
        for entry in entries where entry.split == "train" {
            guard let step = entry.step,
                  let object = try? JSONSerialization.jsonObject(with: Data(entry.line.utf8)) as? [String: Any] else { continue }
            var ranks: [String: Int] = [:]
            for (key, value) in object where key.hasPrefix(rankPrefix) {
                if let n = value as? NSNumber { ranks[String(key.dropFirst(rankPrefix.count))] = n.intValue }
            }
            if !ranks.isEmpty { rows.append((step, ranks)) }
        }
        guard !rows.isEmpty else {
            throw TrainingError.file(path: metricsFile.path, reason: "holds no AdaLoRA allocation (\(rankPrefix)<module> fields)")
        }
        rows.sort { $0.step < $1.step }
        let modules = Set(rows.flatMap { $0.ranks.keys }).sorted(by: ModulePath.precedes)
        return (modules, rows.map(\.step), modules.map { m in rows.map { $0.ranks[m] ?? -1 } })
    }

    /// rank_history.svg: rank of each module (rows) at each allocation step (columns); `initRank` tops the colour scale.
    public static func historyHeatmap(metricsFile: URL, initRank: Int) throws -> Heatmap {
        let h = try history(metricsFile: metricsFile)
        var map = Heatmap(title: "AdaLoRA rank per module over training",
                          values: h.ranks.map { $0.map { $0 < 0 ? .nan : Double($0) } },
                          rowLabels: h.modules.map(ModulePath.shortLabel), columnLabels: h.steps.map(String.init))
        map.xLabel = "step (allocations)"; map.yLabel = "module"; map.colorBarLabel = "rank (kept triplets)"
        map.valueRange = 0...Double(max(1, initRank))
        map.annotatesCells = max(h.modules.count, h.steps.count) <= 24
        map.annotationDecimals = 0
        // Every module labelled: 14 px rows (the label font is 11 px); larger cells while the grid is small.
        map.cellSize = max(h.modules.count, h.steps.count) <= 24 ? 24 : 14
        return map
    }
}

/// Final AdaLoRA ranks as a grid: rows = layers, columns = module types.
public struct AdaLoRARankMap: Equatable, Sendable {
    /// Layer indices ("0", "1", …), or the module's parent path for modules outside numbered layers.
    public let rowLabels: [String]
    /// Module types (the last path component: q_proj, v_proj, …) in first-seen order.
    public let columnLabels: [String]
    /// `ranks[row][column]`; nil where that layer has no such module.
    public let ranks: [[Int?]]

    /// The grid of `ranks` (model order decides row and column order).
    public init(_ ranks: [RankAllocator.ModuleRank]) {
        var rows: [String] = [], columns: [String] = [], cells: [String: Int] = [:]
        for m in ranks {
            let (row, column) = ModulePath.split(m.module)
            if !rows.contains(row) { rows.append(row) }
            if !columns.contains(column) { columns.append(column) }
            cells[row + "\u{0}" + column] = m.rank
        }
        rowLabels = rows; columnLabels = columns
        self.ranks = rows.map { r in columns.map { c in cells[r + "\u{0}" + c] } }
    }

    /// Σ of every rank.
    public var total: Int { ranks.joined().reduce(0) { $0 + ($1 ?? 0) } }

    /// A plain-text table with a total column and a total row; "-" where a layer lacks the module.
    public func table() -> String {
        let header = ["layer"] + columnLabels + ["total"]
        var body: [[String]] = zip(rowLabels, ranks).map { label, row in
            [label] + row.map { $0.map(String.init) ?? "-" } + [String(row.reduce(0) { $0 + ($1 ?? 0) })]
        }
        body.append(["total"] + columnLabels.indices.map { c in String(ranks.reduce(0) { $0 + ($1[c] ?? 0) }) } + [String(total)])
        let widths = header.indices.map { c in ([header] + body).map { $0[c].count }.max()! }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { c, text in
                c == 0 ? text.padding(toLength: widths[0], withPad: " ", startingAt: 0)
                       : String(repeating: " ", count: widths[c] - text.count) + text
            }.joined(separator: "  ")
        }
        let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
        return ([line(header), rule] + body.dropLast().map(line) + [rule, line(body.last!)]).joined(separator: "\n")
    }

    /// ranks.svg: the grid as a heatmap coloured from 0 to `initRank`, each cell annotated with its rank. Drawn with
    /// the longer side across (a model's many layers as columns, its few module types as rows) so it reads on a page.
    public func heatmap(initRank: Int, title: String = "AdaLoRA final rank per module") -> Heatmap {
        let values = ranks.map { $0.map { $0.map(Double.init) ?? .nan } }
        let wide = rowLabels.count > columnLabels.count
        var map = wide
            ? Heatmap(title: title, values: columnLabels.indices.map { c in values.map { $0[c] } }, rowLabels: columnLabels, columnLabels: rowLabels)
            : Heatmap(title: title, values: values, rowLabels: rowLabels, columnLabels: columnLabels)
        (map.xLabel, map.yLabel) = wide ? ("layer", "module") : ("module", "layer")
        map.colorBarLabel = "rank (kept triplets)"
        map.valueRange = 0...Double(max(1, initRank))
        map.annotatesCells = rowLabels.count * columnLabels.count <= 400
        map.annotationDecimals = 0
        if max(rowLabels.count, columnLabels.count) <= 40 { map.cellSize = 28 }  // room for the annotations
        return map
    }
}

/// Reading module paths such as "model.layers.12.self_attn.q_proj".
enum ModulePath {
    /// (row, column): the first all-digit component (the layer index) and the last component; without a layer
    /// index, the parent path.
    static func split(_ path: String) -> (row: String, column: String) {
        let parts = path.split(separator: ".").map(String.init)
        let column = parts.last ?? path
        if let layer = parts.dropLast().first(where: { !$0.isEmpty && $0.allSatisfy(\.isNumber) }) { return (layer, column) }
        return (parts.count > 1 ? parts.dropLast().joined(separator: ".") : "-", column)
    }

    /// "L12 q_proj" for layered modules, the path otherwise.
    static func shortLabel(_ path: String) -> String {
        let (row, column) = split(path)
        return row.allSatisfy(\.isNumber) ? "L\(row) \(column)" : path
    }

    /// Natural order: numeric components compare as numbers (layers.2 before layers.10).
    static func precedes(_ a: String, _ b: String) -> Bool {
        let x = a.split(separator: "."), y = b.split(separator: ".")
        for (p, q) in zip(x, y) where p != q {
            if let i = Int(p), let j = Int(q) { return i < j }
            return p < q
        }
        return x.count < y.count
    }
}
