import Foundation
import Hummingbird
import Logging
import NIOCore
import Testing
@testable import TTTTranscription

private let key = "gsk_test-secret-0123456789"

private var quietLogger: Logger {
    var logger = Logger(label: "tttd-asr-test")
    logger.logLevel = .critical
    return logger
}

/// What the test server received.
private struct Received: Sendable {
    var path: String
    var headers: HTTPFields
    var body: [UInt8]

    /// The form fields of a multipart body: name → (part headers, content).
    var parts: [String: (headers: String, content: [UInt8])] {
        get throws {
            let type = try #require(headers[.contentType])
            let boundary = try #require(type.components(separatedBy: "boundary=").last)
            #expect(type.hasPrefix("multipart/form-data; boundary="))
            let delimiter = Array("--\(boundary)".utf8)
            var starts: [Int] = []
            var index = 0
            while index + delimiter.count <= body.count {
                if body[index..<index + delimiter.count].elementsEqual(delimiter) {
                    starts.append(index)
                    index += delimiter.count
                } else {
                    index += 1
                }
            }
            #expect(body[starts.last!...].elementsEqual(Array("--\(boundary)--\r\n".utf8)))
            var fields: [String: (headers: String, content: [UInt8])] = [:]
            for (start, end) in zip(starts, starts.dropFirst()) {
                let part = Array(body[(start + delimiter.count + 2)..<(end - 2)])   // after CRLF, before CRLF
                let separator = Array("\r\n\r\n".utf8)
                let split = try #require((0...(part.count - 4)).first { part[$0..<$0 + 4].elementsEqual(separator) })
                let head = String(decoding: part[..<split], as: UTF8.self)
                let name = try #require(head.components(separatedBy: "name=\"").dropFirst().first?.components(separatedBy: "\"").first)
                fields[name] = (head, Array(part[(split + 4)...]))
            }
            return fields
        }
    }

    func field(_ name: String) throws -> String? {
        try parts[name].map { String(decoding: $0.content, as: UTF8.self) }
    }
}

private actor Inbox {
    var received: [Received] = []
    func add(_ request: Received) { received.append(request) }
}

/// How the test server answers.
private struct Reply: Sendable {
    var status: HTTPResponse.Status = .ok
    var headers: HTTPFields = [.contentType: "application/json"]
    var body: String
    var delay: Duration?
}

/// The test ASR answering `reply`, keeping what it received in the inbox.
private func withServer(_ reply: Reply, _ test: (_ baseURL: String, _ inbox: Inbox) async throws -> Void) async throws {
    let inbox = Inbox()
    try await withTestASR({ request in
        var request = request
        let body = try await request.collectBody(upTo: 50 << 20)
        await inbox.add(Received(path: request.uri.path, headers: request.headers, body: Array(body.readableBytesView)))
        if let delay = reply.delay { try await Task.sleep(for: delay) }
        return Response(status: reply.status, headers: reply.headers, body: .init(byteBuffer: ByteBuffer(string: reply.body)))
    }) { baseURL in try await test(baseURL, inbox) }
}

private func withTranscriber(_ baseURL: String, apiKey: String? = key, timeout: Duration = .seconds(60),
                             _ body: (OpenAITranscriber) async throws -> Void) async throws {
    let transcriber = OpenAITranscriber(baseURL: baseURL, apiKey: apiKey, timeout: timeout, logger: quietLogger)
    do {
        try await body(transcriber)
    } catch {
        await transcriber.shutdown()
        throw error
    }
    await transcriber.shutdown()
}

private let request = TranscriptionRequest(wav: WAV.encode((0..<1600).map { Int16($0 % 200) }), model: "whisper-large-v3-turbo", language: "fr")

/// The error a call throws (nil if it succeeded); the key must never be in it.
private func failure(_ transcriber: OpenAITranscriber, _ request: TranscriptionRequest = request) async -> TranscriptionError? {
    do {
        _ = try await transcriber.transcribe(request)
        return nil
    } catch {
        #expect(!"\(error)".contains(key) && !error.reason.contains(key), "the API key leaked: \(error)")
        return error
    }
}

private let fasterWhisperAnswer = """
{"task": "transcribe", "language": "fr", "language_probability": 0.9132, "duration": 0.1,
 "duration_after_vad": 0.1, "text": "Il faut attaquer.", "model": "base",
 "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": 0.1, "text": " Il faut attaquer.", "tokens": [1, 2],
   "temperature": 0.0, "avg_logprob": -0.31, "compression_ratio": 0.9, "no_speech_prob": 0.02}]}
"""

@Suite struct OpenAITranscriberTests {
    @Test func sendsTheFormAndParsesVerboseJSON() async throws {
        try await withServer(Reply(body: fasterWhisperAnswer)) { baseURL, inbox in
            try await withTranscriber(baseURL + "/") { transcriber in
                let result = try await transcriber.transcribe(request)
                #expect(result == TranscriptionResult(
                    text: "Il faut attaquer.", language: "fr", languageProbability: 0.9132, duration: 0.1,
                    segments: [TranscriptSegment(start: 0, end: 0.1, text: " Il faut attaquer.", avgLogprob: -0.31,
                                                 compressionRatio: 0.9, noSpeechProb: 0.02)]))
            }
            let received = try #require(await inbox.received.first)
            #expect(received.path == "/v1/audio/transcriptions")
            #expect(received.headers[.authorization] == "Bearer \(key)")
            let parts = try received.parts
            #expect(Set(parts.keys) == ["file", "model", "language", "response_format", "temperature"])
            #expect(try received.field("model") == "whisper-large-v3-turbo")
            #expect(try received.field("language") == "fr")
            #expect(try received.field("response_format") == "verbose_json")
            #expect(try received.field("temperature") == "0")
            let file = try #require(parts["file"])
            #expect(file.headers.contains("filename=\"window.wav\""))
            #expect(file.headers.contains("Content-Type: audio/wav"))
            #expect(file.content == request.wav)
            #expect(WAV.decode(file.content) != nil)
        }
    }

    @Test func openAIStyleAnswerWithoutKeyOrLanguage() async throws {
        let answer = #"{"task":"transcribe","language":"english","duration":8.47,"text":"Thank you.","segments":[]}"#
        try await withServer(Reply(body: answer)) { baseURL, inbox in
            try await withTranscriber(baseURL, apiKey: nil) { transcriber in
                var request = request
                request.language = nil
                let result = try await transcriber.transcribe(request)
                #expect(result == TranscriptionResult(text: "Thank you.", language: "en", languageProbability: nil, duration: 8.47, segments: []))
            }
            let received = try #require(await inbox.received.first)
            #expect(received.path == "/v1/audio/transcriptions")
            #expect(received.headers[.authorization] == nil)
            #expect(try received.parts["language"] == nil)
            #expect(try received.parts["prompt"] == nil)
        }
    }

    @Test func detectedLanguageBeatsTheForcedOne() async throws {
        let answer = #"{"language":"fr","language_probability":1.0,"text":"Ne yibeoogo","detected_language":"ha","detected_language_probability":0.41}"#
        try await withServer(Reply(body: answer)) { baseURL, _ in
            try await withTranscriber(baseURL) { transcriber in
                let result = try await transcriber.transcribe(request)
                #expect(result.language == "ha" && result.languageProbability == 0.41 && result.segments.isEmpty)
            }
        }
    }

    @Test func serverErrorIsRetriableWithTheBody() async throws {
        // A body that echoes the key must not carry it into the error.
        let body = "upstream failed\nfor key \(key)\n" + String(repeating: "x", count: 500)
        try await withServer(Reply(status: .internalServerError, headers: [.contentType: "text/plain"], body: body)) { baseURL, _ in
            try await withTranscriber(baseURL) { transcriber in
                let error = try #require(await failure(transcriber))
                guard case .retriable(let reason, nil) = error else { Issue.record("\(error)"); return }
                #expect(reason.hasPrefix("HTTP 500: upstream failed for key [redacted] xxx"))
                #expect(!reason.contains("\n"))
                #expect(reason.count <= "HTTP 500: ".count + 200)
            }
        }
    }

    @Test func rateLimitedWithRetryAfter() async throws {
        let body = #"{"error":{"message":"Rate limit reached for model `whisper-large-v3-turbo`","type":"tokens","code":"rate_limit_exceeded"}}"#
        try await withServer(Reply(status: .tooManyRequests, headers: [.contentType: "application/json", .retryAfter: "7"], body: body)) { baseURL, _ in
            try await withTranscriber(baseURL) { transcriber in
                let error = await failure(transcriber)
                #expect(error == .retriable(reason: "HTTP 429 (retry after 7s): Rate limit reached for model `whisper-large-v3-turbo`",
                                            retryAfter: .seconds(7)))
            }
        }
    }

    @Test func htmlPageIsNotJSON() async throws {
        let page = "<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head><body>…</body></html>"
        try await withServer(Reply(headers: [.contentType: "text/html"], body: page)) { baseURL, _ in
            try await withTranscriber(baseURL) { transcriber in
                let error = await failure(transcriber)
                #expect(error == .retriable(reason: "not JSON (an HTML page: Attention Required! | Cloudflare)", retryAfter: nil))
            }
        }
    }

    @Test func malformedJSONIsRetriable() async throws {
        try await withServer(Reply(body: #"{"text": "Bonjour", "segments": [{"#)) { baseURL, _ in
            try await withTranscriber(baseURL) { transcriber in
                let error = try #require(await failure(transcriber))
                guard case .retriable(let reason, nil) = error else { Issue.record("\(error)"); return }
                #expect(reason.hasPrefix("malformed JSON: {\"text\""))
            }
        }
        try await withServer(Reply(body: #"{"segments": []}"#)) { baseURL, _ in
            try await withTranscriber(baseURL) { transcriber in
                let error = try #require(await failure(transcriber))
                #expect(error.reason.hasPrefix("unexpected JSON: no text"))
            }
        }
    }

    @Test func badRequestIsRejected() async throws {
        let body = #"{"error":{"message":"language 'xx' is not an ISO-639-1 code Whisper knows","type":"invalid_request_error","param":"language"}}"#
        try await withServer(Reply(status: .badRequest, body: body)) { baseURL, _ in
            try await withTranscriber(baseURL) { transcriber in
                let error = await failure(transcriber)
                #expect(error == .rejected(reason: "HTTP 400: language 'xx' is not an ISO-639-1 code Whisper knows"))
            }
        }
    }

    @Test func badKeyWaitsForTheAdmin() async throws {
        let body = #"{"error":{"message":"Invalid API Key \#(key)","type":"invalid_request_error","code":"invalid_api_key"}}"#
        try await withServer(Reply(status: .unauthorized, body: body)) { baseURL, _ in
            try await withTranscriber(baseURL) { transcriber in
                let error = await failure(transcriber)
                #expect(error == .retriable(reason: "HTTP 401: Invalid API Key [redacted]", retryAfter: .seconds(300)))
            }
        }
    }

    @Test func slowServerTimesOut() async throws {
        try await withServer(Reply(body: fasterWhisperAnswer, delay: .seconds(3))) { baseURL, _ in
            try await withTranscriber(baseURL, timeout: .milliseconds(500)) { transcriber in
                let error = await failure(transcriber)
                // The reason says the client's own limit fired (the server would have answered after 3 s).
                #expect(error == .retriable(reason: "timed out after 0.5 s", retryAfter: nil))
            }
        }
    }

    @Test func connectionRefusedIsRetriable() async throws {
        // Port 1 (tcpmux) is not served on a test machine.
        try await withTranscriber("http://127.0.0.1:1/v1", timeout: .seconds(1)) { transcriber in
            let error = await failure(transcriber)
            #expect(error == .retriable(reason: "connection refused", retryAfter: nil))
        }
    }

    @Test func statusClasses() throws {
        func outcome(_ status: Int, retryAfter: String? = nil, body: String = "") -> TranscriptionError? {
            do {
                _ = try OpenAITranscriber.interpret(status: status, body: Array(body.utf8), contentType: nil,
                                                    retryAfter: retryAfter, apiKey: key)
                return nil
            } catch {
                return error
            }
        }
        for status in [400, 405, 413, 415, 422] {
            guard case .rejected = outcome(status) else { Issue.record("\(status) is not rejected"); continue }
        }
        for status in [408, 500, 502, 503, 504] {
            guard case .retriable(_, nil) = outcome(status) else { Issue.record("\(status) is not retriable"); continue }
        }
        #expect(outcome(503, retryAfter: "1") == .retriable(reason: "HTTP 503: (empty body)", retryAfter: .seconds(1)))
        #expect(outcome(403, retryAfter: "900") == .retriable(reason: "HTTP 403: (empty body)", retryAfter: .seconds(900)))
        #expect(outcome(404, body: #"{"detail":"Not Found"}"#) == .retriable(reason: "HTTP 404: Not Found", retryAfter: .seconds(300)))
        #expect(outcome(200, body: "") == .retriable(reason: "empty body", retryAfter: nil))
        #expect(outcome(200, body: #"{"text":"  ok "}"#) == nil)
    }

    @Test func descriptionsAreShort() {
        #expect(TranscriptionError.retriable(reason: "HTTP 429", retryAfter: .seconds(7)).description == "retriable after 7 s: HTTP 429")
        #expect(TranscriptionError.rejected(reason: "HTTP 413: too big").description == "rejected: HTTP 413: too big")
    }
}
