import Hummingbird
import NIOCore
import ServiceLifecycle

/// Serves a live's FLV in real time to one client. The audio is shared and immutable; a client
/// costs a cursor and one wake-up per batch. Timestamps start at 0 for each client and follow
/// the wall clock from its connection; like a CDN, the client is kept `leadMs` ahead (which
/// makes the first batch a burst). Every client hears the audio from its beginning, so a
/// watcher that connects late still gets the whole speech in tests.
struct LiveStreamer: Sendable {
    let state: SimState
    let faults: FaultBoard
    let stats: RequestStats
    var leadMs = 1000
    var batchMs = 200

    struct StreamCut: Error {}

    func response(for live: Live, path: String) -> Response {
        var headers: HTTPFields = [.contentType: "video/x-flv", .cacheControl: "no-cache"]
        headers[Reply.logId] = Reply.newLogId()
        headers[.accessControlAllowOrigin] = "*"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            try await self.stream(live, path: path, to: &writer)
        })
    }

    private func stream(_ live: Live, path: String, to writer: inout any ResponseBodyWriter) async throws {
        guard state.addStreamClient(roomId: live.roomId) else {
            try await writer.finish(nil)
            return
        }
        // The client is unregistered before the last write, so that a client that has seen the
        // end of its stream also sees the count drop.
        do {
            try await pace(live, path: path, to: &writer)
        } catch {
            state.removeStreamClient(roomId: live.roomId)
            throw error
        }
        state.removeStreamClient(roomId: live.roomId)
        try await writer.finish(nil)
    }

    private func pace(_ live: Live, path: String, to writer: inout any ResponseBodyWriter) async throws {
        let clock = ContinuousClock()
        let start = clock.now
        var cursor = FLVCursor(audio: live.audio, loop: live.loop)
        var buffer = ByteBuffer()
        FLVWriter.writeHeader(into: &buffer)
        FLVWriter.write(live.audio.sequenceHeader, timestamp: 0, into: &buffer)
        var drawnFaults = Set<Int>()
        var tick = 0
        while true {
            let elapsed = start.duration(to: clock.now)
            let elapsedMs = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
            cursor.write(upTo: elapsedMs + leadMs, into: &buffer)
            if buffer.readableBytes > 0 {
                try await writer.write(buffer)
                buffer = ByteBuffer()
            }
            // A non-looping live's stream ends when the audio would have finished playing.
            if cursor.finished, elapsedMs >= live.audio.durationMs { return }
            tick += 1
            try? await Task.sleep(until: start + .milliseconds(tick * batchMs), tolerance: .milliseconds(20), clock: clock)
            if Task.isCancelled || Task.isShuttingDownGracefully || !state.isLive(roomId: live.roomId) { return }
            if faults.shouldDropStream(drawn: &drawnFaults, path: path) {
                stats.recordBlocked()
                throw StreamCut()  // the connection closes mid-body: the client sees a truncated stream
            }
        }
    }
}
