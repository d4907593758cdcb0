import CLibFuzzer
import Foundation

/// Runs libFuzzer with the command line's options, `test` called with each input. SwiftPM makes an
/// executable module's entry point the program's `main`, in place of libFuzzer's own, so each
/// target's `main` calls this with its `LLVMFuzzerTestOneInput`; that symbol must exist anyway,
/// since -sanitize=fuzzer links all of libFuzzer, its unused `main` included.
public func runLibFuzzer(_ test: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, test))
}

/// The input as a buffer (libFuzzer passes a null pointer for an empty input).
public func input(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> UnsafeBufferPointer<UInt8> {
    UnsafeBufferPointer(start: bytes, count: size)
}
