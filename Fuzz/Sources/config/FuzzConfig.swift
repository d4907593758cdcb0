import Foundation
import FuzzSupport
@testable import TTTConfig

/// The configuration as `tttd` and `tttd check-config` load it. The input is the file; when its
/// first line starts with `[` that line is `TTTD_ALERTS_WEBHOOKS` (a YAML flow sequence) and the
/// rest is the file. The file is an unlinked temporary file read through /proc/self/fd, so that
/// nothing is left behind and no disk path is shared between fuzzing processes.
private let file: (descriptor: Int32, path: String) = {
    var template = Array((NSTemporaryDirectory() + "/tttd-fuzz-config-XXXXXX").utf8CString)
    let descriptor = mkstemp(&template)
    precondition(descriptor >= 0, "mkstemp: errno \(errno)")
    unlink(template)
    return (descriptor, "/proc/self/fd/\(descriptor)")
}()

@main enum FuzzConfig {
    static func main() { runLibFuzzer(testOneInput) }
}

@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzConfig(input(bytes, size))
    return 0
}

func fuzzConfig(_ input: UnsafeBufferPointer<UInt8>) {
    var environment: [String: String] = [:]
    var fileBytes = input[...]
    if input.first == UInt8(ascii: "[") {
        let newline = input.firstIndex(of: 0x0A) ?? input.endIndex
        environment["TTTD_ALERTS_WEBHOOKS"] = String(decoding: input[..<newline], as: UTF8.self)
        fileBytes = input[min(newline + 1, input.endIndex)...]
    }
    precondition(ftruncate(file.descriptor, 0) == 0)
    let written = fileBytes.withContiguousStorageIfAvailable { pwrite(file.descriptor, $0.baseAddress, $0.count, 0) }
    precondition(written == fileBytes.count)

    // The loader without its one asynchronous step, reading a credentials directory (none here).
    do throws(ConfigProblems) {
        _ = try ConfigLoader.load(path: file.path, environment: environment, credentials: .none)
    } catch {
        precondition(!error.problems.isEmpty, "a configuration refused without a problem")
    }
}
