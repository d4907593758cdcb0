import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import TestSupport
import Testing
@testable import TTTSim

/// A fixed signing key, so tests can forge valid and expired stream URLs.
let testKey = Array("tttsim-test-signing-key".utf8)

func makeSimulator(accounts: Int = 0, seed: UInt64 = 42) -> Simulator {
    var configuration = SimConfiguration(host: "127.0.0.1", port: 0, accounts: accounts, seed: seed)
    configuration.signingKey = testKey
    var logger = Logger(label: "tttsim-test")
    logger.logLevel = .warning
    return Simulator(configuration: configuration, logger: logger)
}

extension TestResponse {
    var text: String { String(buffer: body) }

    /// The body through JSONSerialization, as a client in another language would read it.
    var object: [String: Any] {
        get throws {
            try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        }
    }

    var array: [[String: Any]] {
        get throws {
            try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]])
        }
    }

    var contentType: String? { headers[.contentType] }
}

extension TestClientProtocol {
    @discardableResult
    func post(_ uri: String, json: String) async throws -> TestResponse {
        try await execute(uri: uri, method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: json))
    }

    func get(_ uri: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        try await execute(uri: uri, method: .get, headers: headers)
    }

    @discardableResult
    func delete(_ uri: String) async throws -> TestResponse {
        try await execute(uri: uri, method: .delete)
    }

    /// Creates the account and starts a live; returns the room id string.
    func goLive(_ username: String, restricted: Bool = false, extra: String = "") async throws -> String {
        try await post("/_sim/accounts", json: #"{"username":"\#(username)","restricted":\#(restricted)}"#)
        let response = try await post("/_sim/lives", json: #"{"username":"\#(username)"\#(extra)}"#)
        #expect(response.status == .created, "\(response.text)")
        return try #require(response.object["room_id"] as? String)
    }
}

/// Every integer written after `"key":` in raw JSON text, parsed straight to Int64 (no Double).
func rawIntegers(_ key: String, in text: String) -> [Int64] {
    var results: [Int64] = []
    var rest = text[...]
    while let range = rest.range(of: "\"\(key)\":") {
        let digits = rest[range.upperBound...].prefix { $0.isNumber || $0 == "-" }
        if let value = Int64(digits) { results.append(value) }
        rest = rest[range.upperBound...]
    }
    return results
}

/// Runs a command to completion; returns status, stdout, stderr, seconds.
func run(_ arguments: [String]) async throws -> (status: Int32, stdout: Data, stderr: String, seconds: Double) {
    let start = ContinuousClock.now
    let result = try await runCommand("/usr/bin/env", arguments)
    let elapsed = start.duration(to: .now)
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return (result.status, result.output, result.stderr, seconds)
}

/// A 440 Hz tone of `seconds` as WAV, made with ffmpeg.
func makeTone(seconds: Int) async throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("tttsim-tone-\(UUID().uuidString).wav").path
    let result = try await run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=f=440:d=\(seconds)", path])
    #expect(result.status == 0, "\(result.stderr)")
    return path
}
