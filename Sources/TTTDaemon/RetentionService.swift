import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TTTConfig
import TTTStore

/// The daily purge of what `retention.*` says is old enough: in batches of a thousand rows with a
/// pause between them, so that tttd's own writes never queue behind it. What an unacknowledged
/// alert refers to stays; evidence files go with their rows. The first purge runs 10 s after
/// start (a restart does not postpone it by a day).
final class RetentionService: Sendable {
    static let batch = 1000
    static let firstRun = Duration.seconds(10)
    static let period = Duration.seconds(24 * 3600)

    let store: Store
    let logger: Logger
    private let retention: Mutex<TTTConfiguration.Retention>

    init(store: Store, retention: TTTConfiguration.Retention, logger: Logger) {
        self.store = store
        self.retention = Mutex(retention)
        self.logger = logger
    }

    func update(_ new: TTTConfiguration.Retention) { retention.withLock { $0 = new } }

    func run() async {
        var first = true
        while !Task.isShuttingDownGracefully {
            let wait = first ? Self.firstRun : Self.period
            first = false
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) } } catch { return }
            await purgeOnce()
        }
    }

    /// One pass over every kind; returns the rows removed per kind.
    @discardableResult
    func purgeOnce() async -> [String: Int] {
        let retention = self.retention.withLock { $0 }
        var removed = [String: Int]()
        let kinds: [(String, RetentionPeriod, @Sendable (Duration) async throws(StoreError) -> Store.Purged)] = [
            ("events", retention.events, { [store] age throws(StoreError) in try await store.purgeEvents(olderThan: age, batch: Self.batch) }),
            ("evidence", retention.evidence, { [store] age throws(StoreError) in try await store.purgeEvidence(olderThan: age, batch: Self.batch) }),
            ("analyses", retention.analyses, { [store] age throws(StoreError) in try await store.purgeAnalyses(olderThan: age, batch: Self.batch) }),
            ("transcripts", retention.transcripts, { [store] age throws(StoreError) in try await store.purgeTranscripts(olderThan: age, batch: Self.batch) }),
        ]
        for (kind, period, purge) in kinds {
            guard case .duration(let age) = period else { continue }
            var total = 0
            var files = 0
            while !Task.isShuttingDownGracefully {
                let purged: Store.Purged
                do { purged = try await purge(age) } catch {
                    logger.warning("retention: purge of \(kind) interrupted", metadata: ["reason": "\(error)"])
                    break
                }
                total += purged.rows
                for path in purged.evidenceFiles {
                    do {
                        try FileManager.default.removeItem(atPath: path)
                        files += 1
                    } catch {
                        logger.warning("retention: evidence file not removed", metadata: ["path": "\(path)", "error": "\(error)"])
                    }
                }
                if purged.rows < Self.batch { break }
                try? await Task.sleep(for: .milliseconds(200))
            }
            removed[kind] = total
            if total > 0 {
                logger.notice("retention: removed old \(kind)", metadata: [
                    "rows": "\(total)", "evidence_files": "\(files)", "older_than": "\(period)"])
            }
        }
        return removed
    }
}
