// lorakit-fuzz: the driver of the fuzz targets in FuzzTargets.
//   lorakit-fuzz TARGET [libFuzzer flags] [corpus dirs]   coverage-guided fuzzing (built by scripts/fuzz.sh with
//                                                        -DLORAKIT_LIBFUZZER, sanitizer coverage and ASan)
//   lorakit-fuzz TARGET --replay FILE...                 runs each file once and prints accepted / the typed error
// Any build (also the plain `swift build` one) can replay; only the fuzz build links libFuzzer.
import Foundation
import FuzzTargets

// libFuzzer's -fork mode re-runs this binary without the target name: it then comes from LORAKIT_FUZZ_TARGET.
var arguments = CommandLine.arguments
if let name = ProcessInfo.processInfo.environment["LORAKIT_FUZZ_TARGET"], arguments.count < 2 || FuzzTarget(rawValue: arguments[1]) == nil {
    arguments.insert(name, at: 1)
}
guard arguments.count >= 2, let target = FuzzTarget(rawValue: arguments[1]) else {
    FileHandle.standardError.write(Data("usage: lorakit-fuzz TARGET [--replay FILE... | libFuzzer options]\ntargets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: " "))\n".utf8))
    exit(2)
}

if arguments.count >= 3 && arguments[2] == "--replay" {
    for path in arguments.dropFirst(3) {
        guard let data = FileManager.default.contents(atPath: path) else { print("\(path): cannot read"); exit(1) }
        do { try target.run([UInt8](data)); print("\(path): accepted") } catch let violation as FuzzInvariantViolation {
            print("\(path): \(violation)"); exit(1)
        } catch { print("\(path): rejected: \(error)") }
    }
    exit(0)
}

#if LORAKIT_LIBFUZZER
// libFuzzer's own entry point (libclang_rt.fuzzer_no_main): parses its flags from argv and calls back per input.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

FuzzDriver.target = target
setenv("LORAKIT_FUZZ_TARGET", target.rawValue, 1)
// libFuzzer must not see the target name: pass argv[0] followed by the remaining flags.
var fuzzArguments: [UnsafeMutablePointer<CChar>?] = [strdup(arguments[0])] + arguments.dropFirst(2).map { strdup($0) } + [nil]
var argc = CInt(fuzzArguments.count - 1)
let status = fuzzArguments.withUnsafeMutableBufferPointer { buffer -> CInt in
    var argv = buffer.baseAddress!
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        let bytes = data.map { [UInt8](UnsafeBufferPointer(start: $0, count: size)) } ?? []
        do { try FuzzDriver.target.run(bytes) } catch let violation as FuzzInvariantViolation {
            fatalError("\(violation)")  // a silent misread is a finding: libFuzzer saves the input as a crash
        } catch {}
        return 0
    }
}
exit(status)
#else
FileHandle.standardError.write(Data("lorakit-fuzz: this build has no libFuzzer; build with scripts/fuzz.sh, or use --replay\n".utf8))
exit(2)
#endif
