import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOPosix
import Testing
@testable import TTTSim

/// Live FLV streams on a real socket, read by real ffmpeg and curl.
@Suite struct StreamTests {
    /// The `ao` URL that the api-live answer gives for `username`.
    func audioURL(_ client: some TestClientProtocol, _ username: String) async throws -> String {
        let body = try await client.get("/api-live/user/room/?aid=1988&uniqueId=\(username)&sourceType=54").object
        let pull = try #require((((body["data"] as? [String: Any])?["liveRoom"] as? [String: Any])?["streamData"] as? [String: Any])?["pull_data"] as? [String: Any])
        let text = try #require(pull["stream_data"] as? String)
        let streamData = try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        return try #require((((streamData["data"] as? [String: Any])?["ao"] as? [String: Any])?["main"] as? [String: Any])?["flv"] as? String)
    }

    @Test func ffmpegDecodesTheStreamInRealTime() async throws {
        let tone = try await makeTone(seconds: 3)
        defer { try? FileManager.default.removeItem(atPath: tone) }
        let pcm = FileManager.default.temporaryDirectory.appendingPathComponent("tttsim-\(UUID().uuidString).pcm").path
        defer { try? FileManager.default.removeItem(atPath: pcm) }
        let sim = makeSimulator()
        try await sim.makeApplication().test(.live) { client in
            _ = try await client.goLive("speaker", extra: #","audio":"\#(tone)","loop":false"#)
            let url = try await audioURL(client, "speaker")
            let port = try #require(client.port)
            #expect(url.hasPrefix("http://localhost:\(port)/game/stream-"))
            let result = try await run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", url, "-f", "s16le", "-ac", "1", "-ar", "16000", pcm])
            #expect(result.status == 0, "\(result.stderr)")
            let seconds = Double(try FileManager.default.attributesOfItem(atPath: pcm)[.size] as? Int ?? 0) / 32000
            #expect(abs(seconds - 3) < 0.25, "decoded \(seconds) s")
            // Real time: ffmpeg cannot finish much faster than the audio lasts.
            #expect(result.seconds >= 0.8 * 3, "decode took \(result.seconds) s")
            #expect(sim.state.streamClients == 0)
        }
    }

    @Test func loopingStreamCountsClientsAndEndsWithTheLive() async throws {
        let sim = makeSimulator()
        try await sim.makeApplication().test(.live) { client in
            _ = try await client.goLive("looper")  // no audio: looped silence
            let url = try #require(URL(string: try await audioURL(client, "looper")))
            let port = try #require(client.port)
            let path = url.path + "?" + (url.query ?? "")
            try await withRawConnection(port: port) { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: localhost:\(port)\r\nConnection: close\r\n\r\n"))
                var received = ByteBuffer()
                var iterator = inbound.makeAsyncIterator()
                // The FLV header is written after the client is registered.
                while received.readableBytesView.firstRange(of: Array("FLV".utf8)) == nil {
                    var chunk = try #require(try await iterator.next())
                    received.writeBuffer(&chunk)
                }
                let head = String(buffer: received)
                #expect(head.hasPrefix("HTTP/1.1 200"))
                #expect(head.lowercased().contains("content-type: video/x-flv"))
                #expect(sim.state.streamClients == 1)
                let stats = try await client.get("/_sim/stats").object
                #expect(stats["stream_clients"] as? Int == 1)
                #expect(try await client.get("/_sim/lives").array.first?["stream_clients"] as? Int == 1)

                #expect(try await client.delete("/_sim/lives/looper").status == .ok)
                // The response finishes (chunked terminator, then the server closes).
                while var chunk = try await iterator.next() { received.writeBuffer(&chunk) }
                #expect(String(buffer: received).hasSuffix("0\r\n\r\n"))
                #expect(sim.state.streamClients == 0)
            }
            // check_alive now says the room is not alive, and the URL answers 404.
            #expect(try await client.get(path).status == .notFound)
        }
    }

    @Test func dropStreamCutsTheStreamMidway() async throws {
        let sim = makeSimulator()
        try await sim.makeApplication().test(.live) { client in
            _ = try await client.goLive("dropped")
            let url = try await audioURL(client, "dropped")
            #expect(try await client.post("/_sim/faults", json: #"{"kind":"drop_stream"}"#).status == .created)
            let result = try await run(["curl", "-sS", "--max-time", "20", "-o", "-", url])
            #expect(result.status == 18, "curl: \(result.stderr)")  // "transfer closed with outstanding read data"
            #expect(result.stdout.count > 13)  // the header and the first burst arrived before the cut
            #expect(result.stdout.prefix(3) == Data("FLV".utf8))
            #expect(try await client.get("/_sim/stats").object["blocked"] as? Int == 1)
            #expect(sim.state.streamClients == 0)
        }
    }
}

/// A plain TCP connection, to watch a response arrive piece by piece.
func withRawConnection(
    port: Int,
    host: String = "localhost",
    _ body: (NIOAsyncChannelInboundStream<ByteBuffer>, NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws -> Void
) async throws {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: host, port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    try await channel.executeThenClose { inbound, outbound in
        try await body(inbound, outbound)
    }
}
