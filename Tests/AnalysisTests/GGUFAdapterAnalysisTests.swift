// Analyses of llama.cpp GGUF LoRA files: the spectrum of a GGUF adapter (read without its base) and the
// amplification against a GGUF base equal those of the PEFT adapter it was exported from.
import XCTest
import Foundation
import TensorCore
import Formats
import Models
import Analysis
import TestSupport

final class GGUFAdapterAnalysisTests: XCTestCase {
    func testSpectrumAndAmplificationMatchThePEFTAdapter() throws {
        let directory = try temporaryDirectory(self, "gguf-analysis")
        let gguf = directory.appendingPathComponent("tiny.gguf"), adapterFile = directory.appendingPathComponent("a.gguf")
        try TinyLlamaGGUF.write(baseLlama: try SafeTensorsFile(contentsOf: Fixtures.url("peft/base_llama/model.safetensors")).tensors(), to: gguf)
        let peftDirectory = Fixtures.url("peft/llama_rslora/adapter")
        let base = try GGUFLoRABase(gguf: GGUFFile(url: gguf))
        try GGUFLoRAAdapter.export(peftAdapter: peftDirectory, base: base, to: adapterFile)
        let peft = try AdapterWeights.load(from: peftDirectory)

        let selfDescribed = try AdapterWeights.load(adapter: adapterFile)
        XCTAssertEqual(selfDescribed.modulePaths, peft.modulePaths)
        for (a, b) in zip(try Spectrum.of(adapter: selfDescribed), try Spectrum.of(adapter: peft)) {
            XCTAssertEqual(a.name, b.name)
            for (x, y) in zip(a.singularValues, b.singularValues) { XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, y), a.name) }
        }
        let withBase = try AdapterWeights.load(adapter: adapterFile) { base }
        let source = try TensorSource(url: gguf)
        let ours = try AmplificationReport.measure(adapter: withBase, base: source)
        let reference = try AmplificationReport.measure(adapter: peft, base: source)
        XCTAssertEqual(ours.modules.count, reference.modules.count)
        for (a, b) in zip(ours.modules, reference.modules) {
            XCTAssertEqual(a.module, b.module)
            XCTAssertEqual(a.projectionOnDelta, b.projectionOnDelta, accuracy: 1e-5 * max(1, b.projectionOnDelta), a.module)
        }
    }
}
