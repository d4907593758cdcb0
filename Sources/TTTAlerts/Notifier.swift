import Foundation

/// One delivery attempt's outcome class: the worker retries `.retriable` with backoff and gives up on `.permanent`.
public enum DeliveryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Worth trying again later: the receiver is down, slow, busy or asked to wait (`retryAfter`,
    /// from a `Retry-After` header, when it said how long).
    case retriable(String, retryAfter: Duration?)
    /// Trying again cannot help: the receiver refused the event for good, or the channel is misconfigured.
    case permanent(String)

    public var description: String {
        switch self {
        case .retriable(let reason, let retryAfter):
            if let retryAfter { return "\(reason) (retry after \(retryAfter.components.seconds) s)" }
            return reason
        case .permanent(let reason):
            return reason
        }
    }

    /// The reason, without the class.
    public var reason: String {
        switch self {
        case .retriable(let reason, _), .permanent(let reason): reason
        }
    }

    public var isRetriable: Bool {
        if case .retriable = self { return true }
        return false
    }
}

/// A channel an event is delivered on (e-mail, a webhook); a test or another provider can stand in.
public protocol Notifier: Sendable {
    /// "email" or "webhook:<name>" — the `deliveries.channel` value.
    var channel: String { get }
    /// Delivers one event. `deliveryID` is stable across retries (webhook-id); `event` is the
    /// event's JSON object bytes (INTERFACES.md keys, with "type").
    func deliver(event: [UInt8], type: String, deliveryID: String) async throws(DeliveryError)
}

/// Keeps what a receiver says readable and short in a reason: control characters become spaces,
/// at most `limit` characters.
func snippet(_ text: String, limit: Int = 200) -> String {
    var out = String.UnicodeScalarView()
    var count = 0
    var lastWasSpace = false
    for scalar in text.unicodeScalars {
        if count >= limit { return String(out).trimmingCharacters(in: .whitespaces) + "…" }
        let space = scalar.properties.generalCategory == .control || scalar.properties.isWhitespace
        if space && lastWasSpace { continue }
        out.append(space ? " " : scalar)
        lastWasSpace = space
        count += 1
    }
    return String(out).trimmingCharacters(in: .whitespaces)
}
