import Foundation
import TTTStore
import TTTTikTok

/// Where a pipeline writes its states and transcripts (the store; a test may record in memory).
public protocol PipelineRecorder: Sendable {
    func setPipelineState(_ pipelineID: Int64, liveID: Int64, node: String, state: String, reason: String?) async throws(StoreError)
    @discardableResult
    func recordTranscript(_ row: Store.TranscriptRow, liveID: Int64, pipelineID: Int64,
                          progress: Store.PipelineProgress) async throws(StoreError) -> Int64
}

extension Store: PipelineRecorder {}

/// A fresh stream URL for a room, when the one in hand expired or failed.
public protocol StreamLocator: Sendable {
    func streamURL(roomID: String) async -> String?
}

/// Asks TikTok's room info endpoint (audio-only first, else the smallest video, TIKTOK.md).
public struct TikTokStreamLocator: StreamLocator {
    let client: any TikTokClient

    public init(client: any TikTokClient) {
        self.client = client
    }

    public func streamURL(roomID: String) async -> String? {
        if case .live(let room) = await client.roomInfo(roomID) { return room.streams.best }
        return nil
    }
}
