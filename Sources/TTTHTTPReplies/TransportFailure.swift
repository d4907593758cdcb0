import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix

/// Why a request to an HTTP API (the ASR, the model) got no answer, in a few words.
public enum TransportFailure {
    /// `timeout` and `maxBodyBytes` are the request's limits, `url` where it went (a base URL from
    /// the configuration, never a key).
    public static func describe(_ error: any Error, timeout: Duration, url: String, maxBodyBytes: Int) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .writeTimeout:
                return "timed out after \(ServerText.seconds(timeout)) s"
            case .connectTimeout, .getConnectionFromPoolTimeout:
                return "connect timed out"
            case .remoteConnectionClosed:
                return "connection closed by the server"
            case .invalidURL, .emptyHost, .emptyScheme:
                return "invalid URL \(url)"
            case .cancelled:
                return "cancelled"
            default:
                return ServerText.oneLine("\(error)")
            }
        }
        if let error = error as? NIOConnectionError {
            // The first attempt's error says why, e.g. ECONNREFUSED.
            if let attempt = error.connectionErrors.first { return describeSocket(attempt.error) }
            return "cannot resolve \(error.host)"
        }
        if error is NIOTooManyBytesError { return "answer over \(maxBodyBytes / 1024 / 1024) MB" }
        if error is CancellationError { return "cancelled" }
        return describeSocket(error)
    }

    private static func describeSocket(_ error: any Error) -> String {
        if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED: return "connection refused"
            case ECONNRESET: return "connection reset"
            case ENETUNREACH, EHOSTUNREACH: return "network unreachable"
            case ETIMEDOUT: return "connect timed out"
            default: break
            }
        }
        return ServerText.oneLine("\(error)")
    }
}
