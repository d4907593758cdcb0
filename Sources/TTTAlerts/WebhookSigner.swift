import Crypto
import Foundation

/// Standard Webhooks signatures (standardwebhooks.com): `v1,` + base64 HMAC-SHA256 of
/// `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the base64 part of a `whsec_` secret.
public struct WebhookSigner: Sendable {
    private let key: SymmetricKey

    public enum SecretError: Error, CustomStringConvertible {
        case notBase64
        public var description: String { "a webhook secret is whsec_ followed by base64" }
    }

    public init(secret: String) throws(SecretError) {
        let encoded = secret.hasPrefix("whsec_") ? String(secret.dropFirst(6)) : secret
        guard let bytes = Data(base64Encoded: encoded), !bytes.isEmpty else { throw .notBase64 }
        key = SymmetricKey(data: bytes)
    }

    public func signature(id: String, timestamp: Int, body: [UInt8]) -> String {
        var message = Data("\(id).\(timestamp).".utf8)
        message.append(contentsOf: body)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: key)
        return "v1," + Data(mac).base64EncodedString()
    }
}
