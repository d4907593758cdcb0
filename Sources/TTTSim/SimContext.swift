import Hummingbird
import NIOCore

/// Request context that keeps the connection's channel, which the `reset` fault closes.
public struct SimContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
