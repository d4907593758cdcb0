/// Rings the loops that wait for the work an event brings: a live that starts or ends for the
/// pipelines, a transcribed window (a row of the analysis queue) for the analysis, an event a
/// channel takes (rows of the outbox, written by trigger) for the deliveries. The announcement
/// comes back through LISTEN from whichever node wrote the event, so work starts at once
/// everywhere while each loop looks on its own only every few seconds.
public struct WorkAnnouncer: Sendable {
    var pipelines: Wakeup?
    var analysis: Wakeup?
    var delivery: Wakeup?
    /// The event types some channel takes (`pipeline_failed` is a `pipeline_state` event).
    var deliveredTypes: Set<String>

    public init(pipelines: Wakeup?, analysis: Wakeup?, delivery: Wakeup?, channels: [Store.Channel]) {
        self.pipelines = pipelines
        self.analysis = analysis
        self.delivery = delivery
        var types = Set(channels.flatMap(\.eventTypes))
        if types.contains("pipeline_failed") { types.insert("pipeline_state") }
        deliveredTypes = types
    }

    /// `type` nil: announcements may have been missed (LISTEN was down), every loop looks.
    public func wakeups(for type: Substring?) -> [Wakeup] {
        guard let type else { return [pipelines, analysis, delivery].compactMap { $0 } }
        var woken = [Wakeup?]()
        switch type {
        case "live_started", "live_ended": woken.append(pipelines)
        case "transcript": woken.append(analysis)
        default: break
        }
        if deliveredTypes.contains(String(type)) { woken.append(delivery) }
        return woken.compactMap { $0 }
    }

    public func announce(_ type: Substring?) {
        for wakeup in wakeups(for: type) { wakeup.ring() }
    }
}
