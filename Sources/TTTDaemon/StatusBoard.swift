import Foundation
import Logging
import Metrics
import TTTMetrics
import TTTStore
import TTTDomain
import TTTSystemd

/// What `tttctl status` and systemd's STATUS= show, kept in memory so that `status` costs no query.
/// Refreshed from the database every few seconds and right after a change made through the socket.
actor StatusBoard {
    struct Snapshot: Sendable {
        var uptime: Double
        var accounts: Int
        var livesActive: Int
        var pipelinesActive: Int
        var analysisBacklog: Int
        var database: String
    }

    private let store: Store
    private let notifier: SystemdNotifier
    private let logger: Logger
    /// This node's running pipelines (0 when transcription is off).
    private let pipelineCount: @Sendable () -> Int
    private let startedAt = ContinuousClock.now
    private var counts = Store.Counts(accounts: 0, livesActive: 0)
    private var databaseState = "starting"
    private var lastStatusLine = ""
    /// When the last refresh finished, whatever its outcome: the watchdog's sign that this loop is alive.
    private(set) var lastRefresh = ContinuousClock.now
    /// The counts as gauges, for the metrics endpoint.
    private let gauges = (accounts: Gauge(label: TTTMetric.accounts.name), lives: Gauge(label: TTTMetric.lives.name),
                          analysisBacklog: Gauge(label: TTTMetric.analysisBacklog.name),
                          deliveriesPending: Gauge(label: TTTMetric.deliveriesPending.name))

    init(store: Store, notifier: SystemdNotifier, logger: Logger, pipelineCount: @escaping @Sendable () -> Int = { 0 }) {
        self.pipelineCount = pipelineCount
        self.store = store
        self.notifier = notifier
        self.logger = logger
    }

    func snapshot() -> Snapshot {
        Snapshot(uptime: (ContinuousClock.now - startedAt).asSeconds, accounts: counts.accounts,
                 livesActive: counts.livesActive, pipelinesActive: pipelineCount(),
                 analysisBacklog: counts.analysisBacklog, database: databaseState)
    }

    var statusLine: String {
        let base = "\(counts.accounts) accounts, \(counts.livesActive) lives, \(pipelineCount()) pipelines"
        return databaseState == "ok" ? base : "\(base); database \(databaseState)"
    }

    /// `loginRefused`: the server's own reason, logged even when the database was already unavailable
    /// for a vaguer one (a timeout).
    func setDatabaseState(_ state: String, loginRefused: Bool = false) {
        if state != databaseState {
            if state == "ok" && databaseState != "starting" { logger.notice("database reachable again") }
            else if databaseState == "ok" || loginRefused { logger.error("database unavailable", metadata: ["reason": "\(state)"]) }
        }
        databaseState = state
        publish()
    }

    /// A request found the database away. Once it is, the status loop keeps the reason: it knows more.
    func databaseFailed(_ reason: String) {
        guard databaseState == "ok" || databaseState == "starting" else { return }
        setDatabaseState("unavailable: \(reason)")
    }

    /// Re-reads the counts; a failure marks the database unavailable instead of throwing.
    func refresh() async {
        do {
            counts = try await store.counts()
            gauges.accounts.record(counts.accounts)
            gauges.lives.record(counts.livesActive)
            gauges.analysisBacklog.record(counts.analysisBacklog)
            gauges.deliveriesPending.record(counts.deliveriesPending)
            setDatabaseState("ok")
        } catch {
            // Stopping: the query was cut short, which says nothing about the database.
            if Task.isCancelled { return }
            if case .unavailable(let reason) = error {
                // The pool retries a login the server refuses (a password changed under a running
                // tttd) without saying why: its queries only run out of time. A login of our own does.
                if let refusal = await store.loginRefusal() {
                    setDatabaseState("unavailable: \(refusal)", loginRefused: true)
                } else {
                    setDatabaseState("unavailable: \(reason)")
                }
            } else {
                setDatabaseState("error: \(error)")
            }
        }
        lastRefresh = .now
    }

    func accountsChanged() async { await refresh() }

    /// Sends the counts again after another STATUS= line (a reload's) replaced them.
    func republish() {
        lastStatusLine = ""
        publish()
    }

    /// Sends STATUS= only when the line changed.
    func publish() {
        let line = statusLine
        guard line != lastStatusLine else { return }
        lastStatusLine = line
        notifier.status(line)
    }
}
