import Foundation
import FuzzSupport
@testable import TTTAnalysis

private let apiKey = "gsk-fuzz-0123456789abcdef"

/// The model's replies as analysis reads them: the input is the model's text (what the verdict
/// parser gets) and also a chat-completions response body, read as a 200 (whose content then goes
/// to the verdict parser) and as a 400 (Groq's failed_generation, a response_format refusal). No
/// reason may quote the API key, whatever the server echoes.
@main enum FuzzLLM {
    static func main() { runLibFuzzer(testOneInput) }
}

@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzLLM(input(bytes, size))
    return 0
}

func fuzzLLM(_ input: UnsafeBufferPointer<UInt8>) {
    let body = Array(input)
    _ = try? VerdictParser.parse(String(decoding: body, as: UTF8.self))
    for status in [200, 400] {
        do {
            let reply = try OpenAIChatAnalyzer.interpret(status: status, body: body, contentType: "application/json",
                                                         retryAfter: nil, mode: .jsonSchema, apiKey: apiKey)
            switch reply {
            case .content(let raw):
                precondition(!raw.contains(apiKey))
                _ = try? VerdictParser.parse(raw)
            case .unusable(let reason, let raw), .rejected(let reason, let raw):
                precondition(!reason.contains(apiKey) && !raw.contains(apiKey))
            case .unsupported(let reason):
                precondition(!reason.contains(apiKey))
            }
        } catch {
            precondition(!error.reason.contains(apiKey))
        }
    }
}
