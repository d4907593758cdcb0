import Foundation
import Hummingbird

/// Responses with TikTok's content types and a few of its headers.
enum Reply {
    static let jsonType = "application/json; charset=utf-8"
    static let htmlType = "text/html; charset=utf-8"
    static let logId = HTTPFields.Element.Name("x-tt-logid")!
    static let retryAfter = HTTPFields.Element.Name("Retry-After")!

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        bytes(value.bytes, type: jsonType, status: status)
    }

    static func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        bytes(Array(text.utf8), type: htmlType, status: status)
    }

    static func text(_ text: String, status: HTTPResponse.Status) -> Response {
        bytes(Array(text.utf8), type: "text/plain; charset=utf-8", status: status)
    }

    static func bytes(_ bytes: [UInt8], type: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers: HTTPFields = [.contentType: type]
        headers[logId] = newLogId()
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// Control API errors: `{"error": "…"}`.
    static func error(_ message: String, status: HTTPResponse.Status) -> Response {
        json(["error": .string(message)], status: status)
    }

    /// TikTok's log ids: a UTC timestamp then 18 hex digits.
    static func newLogId() -> String {
        var generator = SystemRandomNumberGenerator()
        var seconds = time_t(Date().timeIntervalSince1970)
        var utc = tm()
        gmtime_r(&seconds, &utc)
        let stamp = String(format: "%04d%02d%02d%02d%02d%02d", utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday,
                           utc.tm_hour, utc.tm_min, utc.tm_sec)
        return stamp + String(format: "%018llX", generator.next() >> 8)
    }
}
