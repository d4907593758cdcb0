import Foundation

/// Signs and checks stream URLs the way TikTok's CDN does: `expire` (unix seconds) and a `sign`
/// that only the server can compute. The key is per process (random unless given), so URLs from
/// an earlier tttsim run answer 403, as stale TikTok URLs do.
public struct StreamSigner: Sendable {
    /// How far ahead TikTok's pull URLs expire.
    public static let lifetime: TimeInterval = 14 * 24 * 3600

    private let key: [UInt8]

    public init(key: [UInt8]) { self.key = key }

    public static func random() -> StreamSigner {
        var generator = SystemRandomNumberGenerator()
        return StreamSigner(key: (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }

    /// 32 hex digits, the length of TikTok's signs.
    public func sign(streamId: Int64, expire: Int64) -> String {
        let mac = SHA256.hmac(key: key, message: Array("\(streamId):\(expire)".utf8))
        return SHA256.hex(Array(mac.prefix(16)))
    }

    public func isValid(streamId: Int64, expire: Int64, sign: String, now: Date) -> Bool {
        guard Double(expire) > now.timeIntervalSince1970 else { return false }
        let expected = Array(self.sign(streamId: streamId, expire: expire).utf8)
        let given = Array(sign.lowercased().utf8)
        // Constant-time comparison: cheap, and the habit costs nothing.
        guard expected.count == given.count else { return false }
        return zip(expected, given).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

/// The quality variants of one live's FLV. TikTok serves a different file per quality; tttsim has
/// no video, so every variant serves the same audio-only FLV (the names stay so clients that pick
/// `ld`/`sd` or a `flv_pull_url` entry still work).
public enum StreamQuality: String, CaseIterable, Sendable {
    case origin, hd, sd, ld, ao

    /// File-name suffix, as on TikTok's CDN (`stream-ID_hd.flv`); origin and ao share the origin file.
    var fileSuffix: String {
        switch self {
        case .origin, .ao: ""
        case .hd: "_hd"
        case .sd: "_sd"
        case .ld: "_ld"
        }
    }
}

/// Builds and parses `/game/stream-{streamId}{suffix}.flv?expire=…&sign=…[&only_audio=1]`.
public struct StreamURLs: Sendable {
    public let signer: StreamSigner

    public init(signer: StreamSigner) { self.signer = signer }

    public func url(base: String, streamId: Int64, quality: StreamQuality, now: Date) -> String {
        let expire = Int64(now.timeIntervalSince1970 + StreamSigner.lifetime)
        let sign = signer.sign(streamId: streamId, expire: expire)
        var url = "\(base)/game/stream-\(streamId)\(quality.fileSuffix).flv?expire=\(expire)&sign=\(sign)"
        if quality == .ao { url += "&only_audio=1" }
        return url
    }

    /// The stream id in a stream file name (`stream-123_hd.flv` → 123), nil when it is not one.
    public static func streamId(fileName: Substring) -> Int64? {
        guard fileName.hasPrefix("stream-"), fileName.hasSuffix(".flv") else { return nil }
        var core = fileName.dropFirst("stream-".count).dropLast(".flv".count)
        if let underscore = core.firstIndex(of: "_") {
            guard ["_hd", "_sd", "_ld", "_uhd"].contains(core[underscore...]) else { return nil }
            core = core[..<underscore]
        }
        guard !core.isEmpty, core.allSatisfy(\.isASCII), core.allSatisfy(\.isNumber) else { return nil }
        return Int64(core)
    }
}
