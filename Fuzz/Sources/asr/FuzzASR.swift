import Foundation
import FuzzSupport
@testable import TTTTranscription

private let apiKey = "sk-fuzz-0123456789abcdef"

/// The ASR's answers as a pipeline reads them: the input is a response body, read as a 200
/// (`verbose_json`, then the hallucination filter on the transcription) and as a 400 (an error
/// to describe). No reason may quote the API key, whatever the server echoes.
@main enum FuzzASR {
    static func main() { runLibFuzzer(testOneInput) }
}

@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzASR(input(bytes, size))
    return 0
}

func fuzzASR(_ input: UnsafeBufferPointer<UInt8>) {
    let body = Array(input)
    for status in [200, 400] {
        do {
            let result = try OpenAITranscriber.interpret(status: status, body: body, contentType: "application/json",
                                                         retryAfter: nil, apiKey: apiKey)
            let first = HallucinationFilter.judge(result, configuredLanguage: "fr", previousText: nil)
            _ = HallucinationFilter.judge(result, configuredLanguage: nil, previousText: first.keptText)
        } catch {
            switch error {
            case .retriable(let reason, _), .rejected(let reason): precondition(!reason.contains(apiKey))
            }
        }
    }
}
