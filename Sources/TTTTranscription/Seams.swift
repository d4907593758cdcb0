import Foundation
import Synchronization
import TTTStore
import TTTTikTok

/// Where a pipeline writes its states and transcripts (the store; a test may record in memory).
public protocol PipelineRecorder: Sendable {
    /// `retryAfter`: after `failed`, how long the live waits for its next pipeline.
    func setPipelineState(_ pipelineID: Int64, liveID: Int64, node: String, state: String, reason: String?,
                          retryAfter: Duration) async throws(StoreError)
    @discardableResult
    func recordTranscript(_ row: Store.TranscriptRow, liveID: Int64, pipelineID: Int64,
                          progress: Store.PipelineProgress, analyse: Bool) async throws(StoreError) -> Int64
}

extension Store: PipelineRecorder {}

/// A fresh stream URL for a room, when the one in hand expired or failed.
public protocol StreamLocator: Sendable {
    func streamURL(roomID: String) async -> String?
}

/// Asks TikTok's room info endpoint (audio-only first, else the smallest video, TIKTOK.md), at
/// most once per `spacing` for all pipelines together: these requests are outside detection's
/// budget, and a network blip that restarts every ffmpeg must not turn into a burst TikTok blocks.
/// When it is not the time, it answers nil and the pipeline uses the URL detection last stored.
public final class TikTokStreamLocator: StreamLocator {
    let client: any TikTokClient
    let spacing: Duration
    private let next = Mutex<ContinuousClock.Instant>(.now)

    public init(client: any TikTokClient, spacing: Duration = .seconds(5)) {
        self.client = client
        self.spacing = spacing
    }

    public func streamURL(roomID: String) async -> String? {
        let allowed = next.withLock { next -> Bool in
            guard ContinuousClock.now >= next else { return false }
            next = .now + spacing
            return true
        }
        guard allowed else { return nil }
        if case .live(let room) = await client.roomInfo(roomID) { return room.streams.best }
        return nil
    }
}
