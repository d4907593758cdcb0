import Foundation
import Logging
import TTTControl
import TTTDetection
import TTTDomain
import TTTStore
import Crypto
import TTTModeration
import TTTTranscription

/// The implementation of each control method. The daemon owns the state; tttctl only asks.
struct ControlMethods: Sendable {
    let store: Store
    let status: StatusBoard
    let roles: RoleResolver
    let detection: DetectionService?
    let feed: EventFeed
    let pipelines: PipelineSupervisor?
    let analysis: AnalysisService?
    /// Why analysis is off, when it is.
    let analysisOff: String?
    let logger: Logger

    func call(_ method: ControlMethod, params data: Data, decoder: JSONDecoder, peer: Peer, role: Role,
              encoder: JSONEncoder, id: RPCID) async throws -> Data {
        switch method {
        case .status:
            return try encode(await statusResult(role: role), id: id, encoder: encoder)
        case .accountsAdd:
            let params = try decode(AccountsAddParams.self, data, decoder)
            return try encode(try await addAccounts(params, peer: peer), id: id, encoder: encoder)
        case .accountsRemove:
            let params = try decode(AccountsRemoveParams.self, data, decoder)
            return try encode(try await removeAccounts(params, peer: peer), id: id, encoder: encoder)
        case .accountsList:
            let params = try RPC.params(AccountsListParams.self, from: data, decoder: decoder) ?? AccountsListParams()
            let accounts = try await storeCall { try await store.listAccounts(label: params.label) }
            return try encode(accounts.map(AccountInfo.init), id: id, encoder: encoder)
        case .accountsImport:
            let params = try decode(AccountsImportParams.self, data, decoder)
            return try encode(try await importAccounts(params, peer: peer), id: id, encoder: encoder)
        case .livesList:
            let params = try RPC.params(LivesListParams.self, from: data, decoder: decoder) ?? LivesListParams()
            let username = try params.username.map { raw in
                do { return try Username(validating: raw).value } catch { throw ControlError(.invalidUsername, "\(error)") }
            }
            let limit = min(max(params.limit ?? 50, 1), 10_000)
            let lives = try await storeCall { try await store.listLives(activeOnly: params.active, username: username, limit: limit) }
            return try encode(lives.map(LiveInfo.init), id: id, encoder: encoder)
        case .livesShow:
            let params = try decode(LivesShowParams.self, data, decoder)
            guard let live = try await storeCall({ try await store.live(id: params.id) }) else {
                throw ControlError(.notFound, "no live with id \(params.id)")
            }
            var info = LiveInfo(live)
            let transcripts = try await storeCall { try await store.transcripts(liveID: live.id) }
            info.transcripts = try transcripts.map { try decoder.decode(JSONValue.self, from: Data($0.utf8)) }
            let analyses = try await storeCall { try await store.analyses(liveID: live.id) }
            info.analyses = try analyses.map { try decoder.decode(JSONValue.self, from: Data($0.utf8)) }
            return try encode(info, id: id, encoder: encoder)
        case .pipelinesList:
            return try encode(try await listPipelines(), id: id, encoder: encoder)
        case .pipelinesStop:
            let params = try decode(PipelinesStopParams.self, data, decoder)
            guard let pipelines else { throw ControlError(.notFound, "transcription is not running on this node") }
            guard try await storeCall({ try await pipelines.stop(pipelineID: params.id, by: peer.name) }) else {
                throw ControlError(.notFound, "no running pipeline with id \(params.id) (see tttctl pipelines)")
            }
            logger.notice("pipeline stop requested", metadata: ["pipeline_id": "\(params.id)", "by": "\(peer.name)"])
            return try encode(PipelinesStopResult(id: params.id, stopping: true), id: id, encoder: encoder)
        case .alertsList:
            let params = try RPC.params(AlertsListParams.self, from: data, decoder: decoder) ?? AlertsListParams()
            let limit = min(max(params.limit ?? 100, 1), 10_000)
            let alerts = try await storeCall { try await store.alerts(unackedOnly: params.unacked, limit: limit) }
            return try encode(try alerts.map { try decoder.decode(JSONValue.self, from: Data($0.utf8)) }, id: id, encoder: encoder)
        case .alertsAck:
            let params = try decode(AlertsAckParams.self, data, decoder)
            switch try await storeCall({ try await store.ackAlert(id: params.id, by: peer.name) }) {
            case .notFound:
                throw ControlError(.notFound, "no alert with id \(params.id) (see tttctl alerts)")
            case .alreadyAcked(let by):
                return try encode(AlertsAckResult(id: params.id, ackedBy: by ?? "?", already: true), id: id, encoder: encoder)
            case .acked:
                logger.notice("alert acknowledged", metadata: ["alert_id": "\(params.id)", "by": "\(peer.name)"])
                return try encode(AlertsAckResult(id: params.id, ackedBy: peer.name, already: false), id: id, encoder: encoder)
            }
        case .evidenceExport:
            let params = try decode(EvidenceExportParams.self, data, decoder)
            return try encode(try await exportEvidence(params.id, peer: peer, decoder: decoder), id: id, encoder: encoder)
        case .follow:
            // Answered by the dispatcher, which hands the connection over to the event feed.
            throw ControlError(.invalidRequest, "follow needs its own connection")
        }
    }

    // MARK: Methods

    private func statusResult(role: Role) async -> StatusResult {
        let snapshot = await status.snapshot()
        var result = StatusResult(
            version: TTTVersion.current, uptimeS: snapshot.uptime, accounts: snapshot.accounts,
            livesActive: snapshot.livesActive, pipelinesActive: snapshot.pipelinesActive,
            database: snapshot.database, role: role)
        if let analysis {
            let health = analysis.currentHealth
            result.analysis = health.state == "ok" ? "ok" : "\(health.state): \(health.detail ?? "")"
        } else {
            result.analysis = "off: \(analysisOff ?? "not configured")"
        }
        result.analysisBacklog = snapshot.analysisBacklog
        if let detection = await detection?.snapshot() {
            result.detection = DetectionStatus(
                node: detection.nodeID, intervalS: detection.intervalS, roundS: detection.roundS,
                stretched: detection.stretched, budgetRps: detection.budgetRPS,
                egresses: detection.egresses.map {
                    EgressStatus(name: $0.name, rateRps: $0.rateRPS, slowdown: $0.slowdown, pausedForS: $0.pausedForS,
                                 lastBlock: $0.lastBlock, requests: $0.requests, blocks: $0.blocks)
                })
        }
        return result
    }

    /// An alert's evidence for a moderator or a court: the manifest (alert, verdict, transcript,
    /// model, prompt hash, hashes) and the clip, checked against the hash recorded at the time.
    private func exportEvidence(_ alertID: Int64, peer: Peer, decoder: JSONDecoder) async throws -> EvidenceExportResult {
        guard let object = try await storeCall({ try await store.alert(id: alertID) }) else {
            throw ControlError(.notFound, "no alert with id \(alertID) (see tttctl alerts)")
        }
        let alert = try decoder.decode(JSONValue.self, from: Data(object.utf8))
        var manifest: [String: JSONValue] = [
            "alert": alert, "exported_at": .string(ISO8601DateFormatter().string(from: Date())),
            "exported_by": .string(peer.name), "tttd_version": .string(TTTVersion.current),
        ]
        var clipName: String?
        var clipBase64: String?
        if let path = alert["evidence_path"]?.stringValue {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ControlError(.notFound, "the evidence clip \(path) of alert \(alertID) is missing (retention or a manual deletion)")
            }
            let digest = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
            let recorded = alert["evidence_sha256"]?.stringValue
            clipName = "alert-\(alertID).wav"
            clipBase64 = data.base64EncodedString()
            manifest["clip"] = .object([
                "file": .string(clipName!), "sha256": .string(digest), "bytes": .integer(Int64(data.count)),
                "intact": .bool(digest == recorded),
            ])
            if digest != recorded {
                logger.error("evidence clip changed since it was recorded", metadata: ["alert_id": "\(alertID)", "path": "\(path)"])
            }
        }
        logger.notice("evidence exported", metadata: ["alert_id": "\(alertID)", "by": "\(peer.name)"])
        return EvidenceExportResult(manifest: .object(manifest), clipName: clipName, clipBase64: clipBase64)
    }

    /// Every running pipeline of the cluster (from the database), with this node's live figures.
    private func listPipelines() async throws -> [PipelineInfo] {
        let records = try await storeCall { try await store.pipelines(activeOnly: true) }
        var local = [Int64: Pipeline.Snapshot]()
        for snapshot in await pipelines?.snapshots() ?? [] { local[snapshot.id] = snapshot }
        return records.map { record in
            let here = local[record.id]
            return PipelineInfo(id: record.id, liveId: record.liveID, username: record.username,
                                state: here?.state ?? record.state, reason: record.reason, node: record.nodeID,
                                startedAt: record.startedAt, audioS: here?.audioSeconds ?? record.audioSeconds,
                                windows: here?.windows ?? record.windows, backlog: here?.backlog,
                                gapsS: here?.gapSeconds ?? record.gapSeconds, asrP50Ms: here?.asrP50Milliseconds)
        }
    }

    private func addAccounts(_ params: AccountsAddParams, peer: Peer) async throws -> AccountsAddResult {
        guard !params.usernames.isEmpty else { throw ControlError(.invalidParams, "no username given") }
        let labels = try validLabels(params.labels)
        var names = [Username]()
        var problems = [String]()
        for raw in params.usernames {
            do { names.append(try Username(validating: raw)) } catch { problems.append(error.description) }
        }
        // Bad input changes nothing: one bad name refuses the whole request.
        if !problems.isEmpty {
            throw ControlError(.invalidUsername, problems.count == 1 ? problems[0] : "\(problems.count) invalid usernames: \(problems.joined(separator: "; "))", problems: problems)
        }
        let result = try await storeCall { try await store.addAccounts(names, labels: labels, by: peer.name) }
        if !result.added.isEmpty {
            logger.notice("accounts added", metadata: [
                "account": "\(result.added.map(\.value).joined(separator: ","))", "by": "\(peer.name)"])
        }
        await status.accountsChanged()
        if !result.added.isEmpty { await detection?.accountsAdded() }
        return AccountsAddResult(added: result.added.map(\.value), existing: result.existing.map(\.value))
    }

    private func removeAccounts(_ params: AccountsRemoveParams, peer: Peer) async throws -> AccountsRemoveResult {
        guard !params.usernames.isEmpty else { throw ControlError(.invalidParams, "no username given") }
        var names = [Username]()
        for raw in params.usernames {
            do { names.append(try Username(validating: raw)) } catch {
                throw ControlError(.invalidUsername, error.description)
            }
        }
        let removed = try await storeCall { try await store.removeAccounts(names, by: peer.name) }
        logger.notice("accounts removed", metadata: [
            "account": "\(removed.map(\.value).joined(separator: ","))", "by": "\(peer.name)"])
        await status.accountsChanged()
        return AccountsRemoveResult(removed: removed.map(\.value))
    }

    private func importAccounts(_ params: AccountsImportParams, peer: Peer) async throws -> AccountsImportResult {
        let labels = try validLabels(params.labels)
        var names = [Username]()
        var rejected = [ImportProblem]()
        for (offset, line) in params.lines.enumerated() where AccountsImportParams.meaningful(Substring(line)) {
            do { names.append(try Username(validating: line)) } catch {
                rejected.append(ImportProblem(line: params.firstLine + offset, text: String(line.prefix(100)), message: error.description))
            }
        }
        guard !names.isEmpty else { return AccountsImportResult(added: [], existing: [], rejected: rejected) }
        // The good lines go in together, in one transaction, whatever the bad ones were.
        let result = try await storeCall { try await store.addAccounts(names, labels: labels, by: peer.name) }
        logger.notice("accounts imported", metadata: [
            "added": "\(result.added.count)", "existing": "\(result.existing.count)", "rejected": "\(rejected.count)", "by": "\(peer.name)"])
        await status.accountsChanged()
        if !result.added.isEmpty { await detection?.accountsAdded() }
        return AccountsImportResult(added: result.added.map(\.value), existing: result.existing.map(\.value), rejected: rejected)
    }

    // MARK: Helpers

    private func validLabels(_ labels: [String]) throws -> [String] {
        var clean = [String]()
        for label in labels {
            if let problem = Label.validate(label) { throw ControlError(.invalidLabel, problem) }
            clean.append(label.trimmingCharacters(in: .whitespaces))
        }
        return Array(Set(clean)).sorted()
    }

    /// Store errors become protocol errors with their stable codes.
    private func storeCall<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch let error as StoreError {
            switch error {
            case .unavailable(let reason):
                await status.databaseFailed(reason)
                throw ControlError(.databaseUnavailable, "the database is unavailable (\(reason)); try again when it is back")
            case .accountsNotFound(let names):
                throw ControlError(.notFound, names.count == 1 ? "@\(names[0]) is not watched" : "not watched: \(names.map { "@" + $0 }.joined(separator: ", ")); nothing was removed", problems: names)
            case .schemaTooNew, .failed:
                logger.error("database error", metadata: ["error": "\(error)"])
                throw ControlError(.internalError, error.description)
            }
        }
    }

    private func decode<P: Decodable>(_ type: P.Type, _ data: Data, _ decoder: JSONDecoder) throws -> P {
        guard let params = try RPC.params(type, from: data, decoder: decoder) else {
            throw ControlError(.invalidParams, "missing \"params\"")
        }
        return params
    }

    private func encode<R: Encodable>(_ result: R, id: RPCID, encoder: JSONEncoder) throws -> Data {
        var data = try encoder.encode(RPCSuccess(id: id, result: result))
        data.append(UInt8(ascii: "\n"))
        return data
    }
}

public enum TTTVersion {
    public static let current = "0.1.0"
}

extension LiveInfo {
    init(_ live: Store.LiveRecord) {
        self.init(id: live.id, username: live.username, roomId: live.roomID, title: live.title, startedAt: live.startedAt,
                  endedAt: live.endedAt, status: live.status, peakViewers: live.peakViewers, endReason: live.endReason,
                  restricted: live.restricted)
    }
}
