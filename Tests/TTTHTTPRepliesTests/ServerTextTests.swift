import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
import TTTHTTPReplies

@Suite("what a server said")
struct ServerTextTests {
    @Test("the message of a JSON error, the title of an HTML page, else the start of the body")
    func snippets() {
        func snippet(_ text: String) -> String { ServerText.snippet(Array(text.utf8)) }
        #expect(snippet(#"{"error":{"message":"Rate limit\n reached","type":"tokens"}}"#) == "Rate limit reached")
        #expect(snippet(#"{"detail":"Not Found"}"#) == "Not Found")
        #expect(snippet(#"{"error":"model not loaded"}"#) == "model not loaded")
        #expect(snippet("<html><head><TITLE>502 Bad Gateway</title></head><body>nginx</body></html>") == "an HTML page: 502 Bad Gateway")
        #expect(snippet("upstream\tconnect error") == "upstream connect error")
        #expect(snippet("") == "(empty body)")
        #expect(snippet(String(repeating: "x ", count: 500)).count == 200)
        // Not UTF-8: read as text, not a crash.
        #expect(!ServerText.snippet([0x7B, 0xFB, 0xFF, 0xFF, 0x01, 0x04]).isEmpty)
    }

    @Test("the API key is redacted from error text, also when the text was cut in the middle of it")
    func redactsTheKeyWholeOrCut() {
        let key = "gsk_live_0123456789abcdefghij"
        #expect(ServerText.redact("401: invalid key \(key) given", secret: key) == "401: invalid key [redacted] given")
        let cut = "401: invalid key " + key.prefix(12)
        #expect(ServerText.redact(cut, secret: key) == "401: invalid key [redacted]")
        #expect(ServerText.redact("nothing to hide", secret: key) == "nothing to hide")
        #expect(ServerText.redact("no key configured", secret: nil) == "no key configured")
    }

    @Test("durations in whole seconds when they are whole")
    func seconds() {
        #expect(ServerText.seconds(.seconds(7)) == "7")
        #expect(ServerText.seconds(.milliseconds(500)) == "0.5")
    }

    @Test("why a request got no answer, in a few words")
    func transportFailures() {
        func describe(_ error: any Error) -> String {
            TransportFailure.describe(error, timeout: .seconds(30), url: "http://asr.local/v1/audio/transcriptions", maxBodyBytes: 4 << 20)
        }
        #expect(describe(HTTPClientError.readTimeout) == "timed out after 30 s")
        #expect(describe(HTTPClientError.connectTimeout) == "connect timed out")
        #expect(describe(HTTPClientError.remoteConnectionClosed) == "connection closed by the server")
        #expect(describe(IOError(errnoCode: ECONNREFUSED, reason: "connect")) == "connection refused")
        #expect(describe(NIOTooManyBytesError(maxBytes: 4 << 20)) == "answer over 4 MB")
        #expect(describe(CancellationError()) == "cancelled")
    }
}
