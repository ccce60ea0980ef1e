// Human-readable reports and SVG charts of the analyses: spectra as log-scale line plots, φ grids as heatmaps in
// the style of the LoRA paper's figures, and aligned text tables for the terminal.
import Foundation
import Plots

extension Spectrum {
    /// The k values a text table shows: all when there are ≤ 16, else 1–8, then doublings, plus the last k.
    static func tableRanks(count: Int, numericalRank: Int) -> [Int] {
        guard count > 16 else { return Array(1...max(1, count)).filter { $0 <= count } }
        var ks = Array(1...8)
        var k = 16
        while k < count { ks.append(k); k *= 2 }
        ks.append(count)
        if numericalRank > 0 { ks.append(numericalRank) }
        return Array(Set(ks)).sorted()
    }

    /// A table of σ_k, the energy of the top k and the best rank-k relative error for selected k.
    public func detailTable() -> String {
        var table = TextTable(header: ["k", "sigma_k", "energy(top-k)", "rel. error rank-k"], numericColumns: [0, 1, 2, 3])
        for k in Self.tableRanks(count: singularValues.count, numericalRank: numericalRank) {
            table.append(["\(k)", formatNumber(singularValues[k - 1]), String(format: "%.6f", energy(topK: k)),
                          String(format: "%.6f", relativeError(rank: k))])
        }
        var out = "\(name)  \(shape[0])×\(shape[1])  ‖M‖_F = \(formatNumber(frobeniusNorm))  numerical rank \(numericalRank)"
        out += " (tolerance \(formatNumber(tolerance)))  stable rank \(String(format: "%.2f", stableRank))\n"
        return out + (singularValues.isEmpty ? "  (no singular values: the matrix is zero)\n" : table.render())
    }

    /// One line per spectrum: shape, count, numerical rank, ‖·‖_F, σ_1, σ_last, energy of the top direction.
    public static func summaryTable(_ spectra: [Spectrum]) -> String {
        var table = TextTable(header: ["module", "shape", "values", "num. rank", "‖·‖_F", "sigma_1", "sigma_last",
                                       "energy(top-1)", "stable rank"], numericColumns: [2, 3, 4, 5, 6, 7, 8])
        for s in spectra {
            table.append([s.name, "\(s.shape[0])×\(s.shape[1])", "\(s.singularValues.count)", "\(s.numericalRank)",
                          formatNumber(s.frobeniusNorm), formatNumber(s.singularValues.first ?? 0),
                          formatNumber(s.singularValues.last ?? 0),
                          s.singularValues.isEmpty ? "-" : String(format: "%.4f", s.energy(topK: 1)),
                          String(format: "%.2f", s.stableRank)])
        }
        return table.render()
    }

    /// σ_k against k on a log10 axis, one series per spectrum (zero values have no position and leave gaps).
    public static func plot(_ spectra: [Spectrum], title: String) -> LinePlot {
        var plot = LinePlot(title: title, xLabel: "k", yLabel: "singular value σ_k",
                            series: spectra.map { LineSeries(name: $0.name, y: $0.singularValues) })
        plot.yScale = .log10
        plot.showsMarkers = (spectra.map(\.singularValues.count).max() ?? 0) <= 64
        plot.integerXTicks = true
        return plot
    }
}

extension ModuleSimilarity {
    /// The φ(i, j) grid as a heatmap: i (first adapter) down, j (second adapter) across, colours fixed to 0…1.
    public func heatmap(firstLabel: String = "first adapter", secondLabel: String = "second adapter") -> Heatmap {
        var map = Heatmap(title: "φ(i, j): \(module) (\(source.rawValue))", values: phi,
                          rowLabels: (1...phi.count).map(String.init),
                          columnLabels: (1...(phi.first?.count ?? 0)).map(String.init))
        map.xLabel = "j (\(secondLabel))"
        map.yLabel = "i (\(firstLabel))"
        map.colorBarLabel = "φ"
        map.valueRange = 0...1
        map.annotatesCells = phi.count <= 12 && (phi.first?.count ?? 0) <= 12
        return map
    }
}

extension AdapterSimilarity {
    /// Per module: ranks, φ(1,1), φ(1, r₂), mean φ(i, i), and the random level 1/n for comparison.
    public func summaryTable() -> String {
        var table = TextTable(header: ["module", "r1", "r2", "n", "phi(1,1)", "phi(1,r2)", "mean phi(i,i)", "random 1/n"],
                              numericColumns: [1, 2, 3, 4, 5, 6, 7])
        for m in modules {
            let diagonal = (0..<min(m.phi.count, m.phi.first?.count ?? 0)).map { m.phi[$0][$0] }
            let mean = diagonal.reduce(0, +) / Double(max(diagonal.count, 1))
            table.append([m.module, "\(m.ranks[0])", "\(m.ranks[1])", "\(m.dimension)",
                          String(format: "%.4f", m.topDirectionOverlap), String(format: "%.4f", m.topDirectionInSecond),
                          String(format: "%.4f", mean), String(format: "%.4f", m.randomExpectation(i: 1, j: 1))])
        }
        var out = "subspace similarity (\(source.rawValue)) for \(modules.count) shared modules\n" + table.render()
        if !onlyInFirst.isEmpty { out += "only in the first adapter: \(onlyInFirst.joined(separator: ", "))\n" }
        if !onlyInSecond.isEmpty { out += "only in the second adapter: \(onlyInSecond.joined(separator: ", "))\n" }
        for s in skipped { out += "skipped \(s.module): \(s.reason)\n" }
        return out
    }
}

extension AmplificationReport {
    /// The paper's Table 7 per module: ‖W‖_F, ‖ΔW‖_F, ‖UᵀWV‖_F for ΔW's, W's and random subspaces, and the factor.
    public func table() -> String {
        var table = TextTable(header: ["module", "r", "‖W‖_F", "‖ΔW‖_F", "‖UᵀWV‖ ΔW", "‖UᵀWV‖ W", "‖UᵀWV‖ random",
                                       "amplification"], numericColumns: [1, 2, 3, 4, 5, 6, 7])
        for m in modules {
            table.append([m.module, "\(m.rank)", formatNumber(m.weightNorm), formatNumber(m.deltaNorm),
                          formatNumber(m.projectionOnDelta), formatNumber(m.projectionOnWeight) + (m.weightSubspaceIsApproximate ? "~" : ""),
                          formatNumber(m.projectionOnRandom), m.amplificationFactor.map(formatNumber) ?? "unbounded"])
        }
        var out = "amplification ‖ΔW‖_F / ‖UᵀWV‖_F (U, V: top-r singular vectors of ΔW; random subspaces seed \(seed))\n"
        out += table.render()
        if modules.contains(where: \.weightSubspaceIsApproximate) { out += "~ randomized SVD estimate (matrix side > 1024)\n" }
        return out
    }
}
