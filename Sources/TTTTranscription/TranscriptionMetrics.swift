import Metrics
import TTTMetrics
import TTTStore

/// The pipelines' metrics, made once by the supervisor and shared by its pipelines.
struct TranscriptionMetrics: Sendable {
    private let starting, capturing, reconnecting: Meter
    let failures = Counter(label: TTTMetric.pipelineFailures.name)
    private let transcribed, silent, filtered, skipped: Counter
    /// Windows pushed by the captures and not yet taken by their transcription loops.
    let backlog = Meter(label: TTTMetric.transcriptionBacklog.name)

    init() {
        func meter(_ state: String) -> Meter { Meter(label: TTTMetric.pipelines.name, dimensions: [("state", state)]) }
        (starting, capturing, reconnecting) = (meter("starting"), meter("capturing"), meter("reconnecting"))
        func counter(_ outcome: String) -> Counter {
            Counter(label: TTTMetric.windows.name, dimensions: [("outcome", outcome)])
        }
        (transcribed, silent, filtered, skipped) = (counter("transcribed"), counter("silent"), counter("filtered"), counter("skipped"))
    }

    /// A pipeline changed state; nil: it just began. Ended pipelines (stopped, failed) are not counted.
    func pipeline(from old: String?, to new: String) {
        old.flatMap(meter(for:))?.decrement()
        meter(for: new)?.increment()
    }

    private func meter(for state: String) -> Meter? {
        switch state {
        case "starting": starting
        case "capturing": capturing
        case "reconnecting": reconnecting
        default: nil
        }
    }

    func recorded(_ row: Store.TranscriptRow) {
        if row.silent { silent.increment() }
        else if row.skipped { skipped.increment() }
        else if row.filtered { filtered.increment() }
        else { transcribed.increment() }
    }
}
