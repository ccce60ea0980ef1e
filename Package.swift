// swift-tools-version:6.0
// LoRAKit: parameter-efficient fine-tuning in Swift. Targets are the architecture's layers,
// lowest first; each depends only on layers below it (see docs/ARCHITECTURE.md).
import PackageDescription
import Foundation

// Numeric kernels are plain loops that must vectorise: build them optimised, without bounds checks in the hot
// paths that opt into unchecked pointers, and, like `-march=native`, for the vector units of the machine that
// builds them. On x86-64 the baseline is SSE2 (4 floats a vector); when the building CPU has AVX2 + FMA + F16C we
// target haswell = x86-64-v3 (8 floats, fused multiply-add, hardware half conversion): about 1.7x on the quantized kernels.
// LORAKIT_PORTABLE=1 builds for the baseline, for binaries that must run on older CPUs.
func hostSupportsX86_64_v3() -> Bool {
    #if arch(x86_64) && os(Linux)
    guard ProcessInfo.processInfo.environment["LORAKIT_PORTABLE"] != "1",
          let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let flags = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
    let set = Set(flags.split(separator: " ").map(String.init))
    return ["avx2", "fma", "f16c", "bmi2", "movbe"].allSatisfy(set.contains)
    #else
    return false
    #endif
}
let cpuFlags: [String] = hostSupportsX86_64_v3() ? ["-target-cpu", "haswell"] : []
let fast: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"] + cpuFlags, .when(configuration: .release))]

let package = Package(
    name: "LoRAKit",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "lorakit", targets: ["lorakit"]),
        .library(name: "LoRAKit", targets: ["TensorCore", "LinearAlgebra", "Autograd", "NN", "Formats",
                                            "PEFT", "Models", "Tokenizers", "Training", "Analysis", "Plots", "Collectives", "CUDA", "DeviceModels"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // Layer 0: dense Float32 tensors, RNG, BLAS/LAPACK binding, vectorised kernels.
        .target(name: "TensorCore", swiftSettings: fast, linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]),
        // Layer 1: SVD, QR, low-rank approximation (LAPACK-backed).
        .target(name: "LinearAlgebra", dependencies: ["TensorCore"], swiftSettings: fast),
        // Layer 1: reverse-mode autograd over fused ops with hand-written backwards.
        .target(name: "Autograd", dependencies: ["TensorCore"], swiftSettings: fast),
        // Layer 2: layers with named parameters, optimizers.
        .target(name: "NN", dependencies: ["TensorCore", "Autograd"], swiftSettings: fast),
        // Layer 2: file formats (safetensors, GGUF) and quantized blocks.
        .target(name: "Formats", dependencies: ["TensorCore"], swiftSettings: fast),
        // Layer 2: CUDA device layer: driver/NVRTC/cuBLAS loaded at run time, kernel sources, device tensors.
        .target(name: "CUDA", dependencies: ["TensorCore", "Formats"], swiftSettings: fast,
                linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]),
        // Layer 3: PEFT methods (LoRA, AdaLoRA): config, layer, injection.
        .target(name: "PEFT", dependencies: ["TensorCore", "LinearAlgebra", "Autograd", "NN", "Formats"], swiftSettings: fast),
        // Layer 3: tokenizers (byte-level BPE) and chat templates.
        .target(name: "Tokenizers", dependencies: ["Formats"], swiftSettings: fast),
        // Layer 4: model families (Llama).
        .target(name: "Models", dependencies: ["TensorCore", "Autograd", "NN", "Formats", "PEFT", "Tokenizers"], swiftSettings: fast),
        // Layer 4: model families run on a CUDA device through the CUDA layer's launchers.
        .target(name: "DeviceModels", dependencies: ["TensorCore", "Formats", "PEFT", "Models", "CUDA"], swiftSettings: fast),
        // Layer 0 (no numerics): SVG charts (line plots, heatmaps) written by hand.
        .target(name: "Plots"),
        // Layer 0 (no numerics): rank/size, all-reduce, broadcast for data parallelism; Open MPI loaded with dlopen.
        .target(name: "Collectives", linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]),
        // Layer 6: data, trainer, experiments (which use Analysis' subspace comparisons).
        .target(name: "Training", dependencies: ["TensorCore", "LinearAlgebra", "Autograd", "NN", "Formats", "PEFT", "Models", "Tokenizers", "Plots", "Analysis", "Collectives",
                                              .product(name: "Yams", package: "Yams")], swiftSettings: fast),
        // Layer 5: low-rank analysis of weights and adapters (spectrum, subspace similarity, amplification).
        .target(name: "Analysis", dependencies: ["TensorCore", "LinearAlgebra", "Formats", "PEFT", "Models", "Plots"], swiftSettings: fast),
        // Layer 7: the CLI, one file per subcommand.
        .executableTarget(name: "lorakit", dependencies: [
            "TensorCore", "LinearAlgebra", "Autograd", "NN", "Formats", "PEFT", "Models", "Tokenizers", "Training", "Analysis", "Plots", "Collectives", "CUDA", "DeviceModels",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: fast),
        // Reliability: one fuzz target per parser of outside files (Fuzz/Targets) and their driver, lorakit-fuzz
        // (libFuzzer when built by scripts/fuzz.sh; replay of saved inputs in any build). See docs/RELIABILITY.md.
        .target(name: "FuzzTargets", dependencies: ["TensorCore", "Autograd", "Formats", "PEFT", "Tokenizers", "Models", "Training"],
                path: "Fuzz/Targets"),
        .executableTarget(name: "lorakit-fuzz", dependencies: ["FuzzTargets"], path: "Fuzz/Driver"),

        // Shared by the test targets: fixture lookup, tolerances, finite-difference checks.
        .target(name: "TestSupport", dependencies: ["TensorCore", "PEFT", "Models"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "TestSupport"]),
        .testTarget(name: "LinearAlgebraTests", dependencies: ["TestSupport", "TensorCore", "LinearAlgebra"]),
        .testTarget(name: "AutogradTests", dependencies: ["TestSupport", "TensorCore", "Autograd"]),
        .testTarget(name: "NNTests", dependencies: ["TestSupport", "TensorCore", "Autograd", "NN"]),
        .testTarget(name: "FormatsTests", dependencies: ["TestSupport", "TensorCore", "Formats"]),
        .testTarget(name: "PEFTTests", dependencies: ["TestSupport", "TensorCore", "LinearAlgebra", "Autograd", "NN", "Formats", "PEFT"]),
        .testTarget(name: "TokenizersTests", dependencies: ["TestSupport", "Formats", "Tokenizers"]),
        .testTarget(name: "ModelsTests", dependencies: ["TestSupport", "TensorCore", "Autograd", "NN", "Formats", "PEFT", "Models", "Tokenizers"]),
        .testTarget(name: "AnalysisTests", dependencies: ["TestSupport", "TensorCore", "LinearAlgebra", "Formats", "PEFT", "Models", "Plots", "Analysis"]),
        .testTarget(name: "TrainingTests", dependencies: ["TestSupport", "TensorCore", "LinearAlgebra", "Autograd", "NN", "Formats", "PEFT", "Models", "Tokenizers", "Training", "Analysis", "Collectives"]),
        .testTarget(name: "CollectivesTests", dependencies: ["Collectives"]),
        .testTarget(name: "CUDATests", dependencies: ["TestSupport", "TensorCore", "Formats", "CUDA"]),
        .testTarget(name: "ReliabilityTests", dependencies: ["TestSupport", "TensorCore", "Formats", "PEFT", "Tokenizers", "Models", "Training", "FuzzTargets"]),
    ],
    swiftLanguageModes: [.v5]
)
