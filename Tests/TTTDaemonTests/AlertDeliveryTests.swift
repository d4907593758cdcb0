import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Delivery of events to the channels, end to end: alerts raised by tttd's analysis (windows
/// written straight into the database, judged by Fixtures/chat_server.py) and lives seen on tttsim
/// go to a real aiosmtpd (scripts/smtp-sink) and to Fixtures/webhook_receiver.py, which verifies
/// each Standard Webhooks signature; both can fail first. Also acknowledgement, and kill -9.
///
/// A failed delivery is retried after 30 s (±10 %, DeliveryService.backoff) and the source has no
/// knob to shorten it: the tests that need a retry wait for it once each, in parallel.
@Suite("alert delivery")
struct AlertDeliveryTests {
    struct Webhook {
        var name: String
        var url: String
        var events: [String]?
    }

    /// The `alerts:` section: a cooldown, webhooks signed with WebhookReceiver.secret, e-mail.
    static func alertsConfig(webhooks: [Webhook] = [], email: (url: String, events: [String])? = nil) -> String {
        var lines = ["alerts:", "  cooldown: 5m"]
        if !webhooks.isEmpty {
            lines.append("  webhooks:")
            for webhook in webhooks {
                lines += ["    - name: \(webhook.name)", "      url: \"\(webhook.url)\"", "      secret: \"\(WebhookReceiver.secret)\""]
                if let events = webhook.events { lines.append("      events: [\(events.joined(separator: ", "))]") }
            }
        }
        if let email {
            lines += ["  email:", "    smtp_url: \"\(email.url)\"", "    from: \"tttd@moderation.example\"",
                      "    to: [\"moderateurs@moderation.example\"]", "    events: [\(email.events.joined(separator: ", "))]"]
        }
        return lines.joined(separator: "\n")
    }

    /// `tttctl alerts --json`'s deliveries of one alert, by channel.
    static func deliveries(_ rig: ModerationRig, alert id: Int) async throws -> [String: [String: Any]] {
        let alert = try await rig.alerts().first { $0["id"] as? Int == id }
        var byChannel = [String: [String: Any]]()
        for delivery in alert?["deliveries"] as? [[String: Any]] ?? [] {
            if let channel = delivery["channel"] as? String { byChannel[channel] = delivery }
        }
        return byChannel
    }

    /// The alert's `alert` event id (its webhook-id is tttd_evt_<that id>).
    static func eventID(_ rig: ModerationRig, alert id: Int) async throws -> Int {
        guard let eventID = Int(try await rig.database.psql("SELECT event_id FROM alerts WHERE id = \(id)")) else {
            throw HarnessError("alert \(id) has no event")
        }
        return eventID
    }

    // MARK: Retries

    @Test("an alert reaches a webhook and an SMTP server that both fail first: retried after the backoff, same webhook-id, signed, French e-mail; tttctl alerts shows each delivery's state")
    func failingChannelsGetTheAlertOnRetry() async throws {
        let receiver = try await WebhookReceiver.start(failFirst: 1)
        let sink = try await SMTPSinkProcess(["--fail-first", "1", "--fail-code", "451"])
        let rig = try await ModerationRig(extra: Self.alertsConfig(
            webhooks: [Webhook(name: "moderation", url: receiver.url, events: ["alert"])], email: (sink.url, ["alert"])))
        let live = try await rig.insertLive("awa.kabore", title: "Débat : la sécurité à Djibo")
        try await rig.insertWindows(live, ["Tuez-les tous, ces gens-là."])
        let alert = try await rig.waitForAlert(live, seq: 0)
        let alertID = try #require(alert["id"] as? Int)
        let eventID = try await Self.eventID(rig, alert: alertID)

        // Both first attempts fail: the deliveries wait, with the reason.
        var first = [String: [String: Any]]()
        try await eventually("both first attempts failed", timeout: 30) {
            first = try await Self.deliveries(rig, alert: alertID)
            return first.count == 2 && first.values.allSatisfy { $0["attempts"] as? Int == 1 && $0["state"] as? String == "pending" }
        }
        let emailError = string(first["email"]?["error"]), webhookError = string(first["webhook:moderation"]?["error"])
        #expect(emailError.contains("451"), "\(first)")
        #expect(webhookError.contains("500"), "\(first)")
        #expect(try sink.messages().isEmpty)

        // The retries, about 30 s later.
        let hooks = try await receiver.waitForDeliveries("the webhook's retry", count: 2, timeout: 60)
        try await eventually("the e-mail's retry accepted", timeout: 60) { try sink.messages().count == 1 }
        var final = [String: [String: Any]]()
        try await eventually("both deliveries delivered", timeout: 20) {
            final = try await Self.deliveries(rig, alert: alertID)
            return final.count == 2 && final.values.allSatisfy { $0["state"] as? String == "delivered" }
        }
        #expect(final.values.allSatisfy { $0["attempts"] as? Int == 2 && $0["error"] is NSNull }, "\(final)")

        // The webhook: one event, signed, sent twice under the same webhook-id with the same body.
        #expect(hooks.map { $0["status"] as? Int ?? 0 } == [500, 204], "\(hooks)")
        #expect(hooks.allSatisfy { $0["id"] as? String == "tttd_evt_\(eventID)" }, "\(hooks.map { $0["id"] ?? "" })")
        #expect(hooks.allSatisfy { $0["signature_ok"] as? Bool == true && $0["timestamp_ok"] as? Bool == true }, "\(hooks)")
        #expect(hooks.allSatisfy { ($0["content_type"] as? String ?? "").hasPrefix("application/json") })
        #expect(Set(hooks.compactMap { $0["body"] as? String }).count == 1, "the same bytes on each attempt")
        if hooks.count == 2, let t0 = hooks[0]["t"] as? Double, let t1 = hooks[1]["t"] as? Double {
            #expect(t1 - t0 >= 26.9, "the first retry waits 30 s ± 10 %: \(t1 - t0) s")
        }
        let event = hooks.last?["event"] as? [String: Any] ?? [:]
        #expect(event["type"] as? String == "alert" && event["id"] as? Int == alertID && event["live_id"] as? Int == live, "\(event)")
        #expect(event["username"] as? String == "awa.kabore" && event["hate_type"] as? String == "call_to_violence", "\(event)")
        #expect(event["text"] as? String == "Tuez-les tous, ces gens-là." && event["quote_verified"] as? Bool == true, "\(event)")
        #expect(event["deliveries"] == nil, "the event body is the event, not tttctl's view: \(event)")

        // The e-mail: refused once with 451, accepted on the retry; French, naming the account and the ack command.
        #expect(sink.log.contains("refused 1 451"), "\(sink.log)")
        let mail = try sink.messages().first ?? [:]
        let subject = mail["subject"] as? String ?? ""
        let body = mail["body"] as? String ?? ""
        #expect(subject.contains("Alerte n° \(alertID)") && subject.contains("awa.kabore"), "\(subject)")
        #expect(body.contains("awa.kabore") && body.contains("Débat : la sécurité à Djibo"), "\(body)")
        #expect(body.contains("Tuez-les tous") && body.contains("tttctl alerts ack \(alertID)"), "\(body)")
        #expect(mail["rcpt_tos"] as? [String] == ["moderateurs@moderation.example"], "\(mail)")
        #expect((mail["defects"] as? [Any])?.isEmpty == true, "\(mail)")

        // Nothing else was sent.
        #expect(try await receiver.deliveries().count == 2)
        #expect(try sink.messages().count == 1)
        #expect(try await rig.daemon.stop() == 0)
    }

    // MARK: Acknowledgement

    @Test("alerts ack records the acking Unix user and --unacked then omits the alert; a viewer may list but not ack")
    func acknowledgement() async throws {
        let rig = try await ModerationRig()
        let first = try await rig.insertLive("salif.kone")
        let second = try await rig.insertLive("mariam.diallo")
        try await rig.insertWindows(first, ["Tuez-les tous, ces gens-là."])
        try await rig.insertWindows(second, ["Ces gens-là sont des cafards."])
        let alertID = try #require(try await rig.waitForAlert(first, seq: 0)["id"] as? Int)
        let otherID = try #require(try await rig.waitForAlert(second, seq: 0)["id"] as? Int)

        let listed = try await rig.alerts(as: "ttt-test-viewer")
        #expect(Set(listed.compactMap { $0["id"] as? Int }) == [alertID, otherID])
        #expect(listed.allSatisfy { $0["acked"] as? Bool == false }, "\(listed)")
        let denied = try await rig.daemon.ctl(["alerts", "ack", String(alertID)], as: "ttt-test-viewer")
        #expect(denied.status == 1, "\(denied)")
        #expect(try await rig.database.psql("SELECT count(*) FROM alerts WHERE acked_at IS NOT NULL") == "0")

        let acked = try await rig.daemon.ctl(["alerts", "ack", String(alertID)], as: "ttt-test-admin")
        #expect(acked.status == 0 && acked.stdout.contains("acknowledged"), "\(acked)")
        let row = try await rig.database.psql("SELECT acked_by, acked_at IS NOT NULL FROM alerts WHERE id = \(alertID)")
        #expect(row == "ttt-test-admin|t")
        let after = try await rig.alerts()
        let ackedAlert = after.first { $0["id"] as? Int == alertID } ?? [:]
        #expect(ackedAlert["acked"] as? Bool == true && ackedAlert["acked_by"] as? String == "ttt-test-admin", "\(ackedAlert)")
        let unacked = try await rig.alerts(["--unacked"])
        #expect(unacked.compactMap { $0["id"] as? Int } == [otherID], "\(unacked)")

        let again = try await rig.daemon.ctl(["alerts", "ack", String(alertID)], as: "ttt-test-admin")
        #expect(again.status == 0 && again.stdout.contains("already acknowledged by ttt-test-admin"), "\(again)")
        let missing = try await rig.daemon.ctl(["alerts", "ack", "999999"], as: "ttt-test-admin")
        #expect(missing.status == 1, "\(missing)")
        #expect(try await rig.daemon.stop() == 0)
    }

    // MARK: Other event types

    @Test("a webhook channel listing live_started and live_ended receives those (signed, one webhook-id each); a channel left to the default receives no live event")
    func liveEventsToWebhook() async throws {
        let lives = try await WebhookReceiver.start()
        let alertsOnly = try await WebhookReceiver.start()
        let sim = SimProcess(accounts: 1)
        try await sim.start()
        let database = try await TestDatabase.create()
        let config = """
            tiktok:
              web_url: "\(sim.baseURL)"
              webcast_url: "\(sim.baseURL)"
              requests_per_second: 4
              concurrency: 2
            detection:
              interval: 1s
              offline_confirmations: 2
              live_recheck: 1s
              lease: 5s
            transcription:
              enabled: false
            analysis:
              enabled: false
            """ + "\n" + Self.alertsConfig(webhooks: [
                Webhook(name: "lives", url: lives.url, events: ["live_started", "live_ended"]),
                Webhook(name: "alerts-only", url: alertsOnly.url, events: nil),
            ])
        let daemon = try DaemonProcess(database: database, extraConfig: config)
        try await daemon.start()
        #expect(try await daemon.ctl(["accounts", "add", "sim0"]).status == 0)
        let follow = try await EventFollower(daemon: daemon)

        let room = try await sim.goLive("sim0", title: "Soirée débat à Bobo")
        let started = try await follow.wait("live_started") { $0["type"] as? String == "live_started" }
        let liveID = started.event["live_id"] as? Int ?? -1
        try await lives.waitForDeliveries("live_started", timeout: 30) { ($0["event"] as? [String: Any])?["type"] as? String == "live_started" }
        try await sim.endLive("sim0")
        try await follow.wait("live_ended", from: started.index) { $0["type"] as? String == "live_ended" }
        let hooks = try await lives.waitForDeliveries("live_started and live_ended", count: 2, timeout: 30)

        #expect(hooks.count == 2, "\(hooks)")
        let events = hooks.compactMap { $0["event"] as? [String: Any] }
        #expect(events.map { $0["type"] as? String ?? "?" } == ["live_started", "live_ended"], "\(events)")
        for event in events {
            #expect(Set(event.keys).isSuperset(of: ["live_id", "username", "room_id", "title", "at"]), "\(event)")
            #expect(event["live_id"] as? Int == liveID && event["username"] as? String == "sim0" && event["room_id"] as? String == room,
                    "\(event)")
            #expect(event["title"] as? String == "Soirée débat à Bobo", "\(event)")
        }
        #expect(hooks.allSatisfy { $0["signature_ok"] as? Bool == true && $0["timestamp_ok"] as? Bool == true }, "\(hooks)")
        let ids = hooks.compactMap { $0["id"] as? String }
        #expect(Set(ids).count == 2 && ids.allSatisfy { $0.hasPrefix("tttd_evt_") }, "\(ids)")
        let eventIDs = try await database.psql(
            "SELECT string_agg('tttd_evt_' || id, ',' ORDER BY id) FROM events WHERE type IN ('live_started', 'live_ended') AND live_id = \(liveID)")
        #expect(ids.joined(separator: ",") == eventIDs)

        // The channel with the default list (alerts only) was not given the live events.
        #expect(try await database.psql("SELECT count(*) FROM deliveries WHERE channel = 'webhook:alerts-only'") == "0")
        #expect(try await alertsOnly.deliveries().isEmpty)
        #expect(try await database.psql("SELECT string_agg(state, ',') FROM deliveries WHERE channel = 'webhook:lives'") == "delivered,delivered")
        #expect(try await daemon.stop() == 0)
    }

    // MARK: kill -9

    @Test("tttd killed between the alert's commit and its delivery: restarted on the same database, it delivers the alert exactly once")
    func killedBeforeDelivery() async throws {
        // A receiver's port, closed again: the receiver is down when the alert is raised.
        let gone = try await WebhookReceiver.start()
        let port = gone.port
        let url = gone.url
        gone.stop()
        let rig = try await ModerationRig(extra: Self.alertsConfig(webhooks: [Webhook(name: "moderation", url: url, events: ["alert"])]))
        let live = try await rig.insertLive("rasmane.ilboudo")
        try await rig.insertWindows(live, ["Tuez-les tous, ces gens-là."])
        let alertID = try #require(try await rig.waitForAlert(live, seq: 0)["id"] as? Int)
        let eventID = try await Self.eventID(rig, alert: alertID)
        // The first attempt is refused and recorded (a kill during an attempt is another test).
        try await eventually("the first attempt refused and recorded", timeout: 30) {
            try await rig.database.psql(
                "SELECT attempts = 1 AND state = 'pending' AND lease_owner IS NULL FROM deliveries WHERE event_id = \(eventID)") == "t"
        }
        rig.daemon.signal(SIGKILL)
        #expect(try await rig.daemon.waitForExit(timeout: 10) == 128 + SIGKILL)

        let receiver = try await WebhookReceiver.start(port: port)
        let restarted = try DaemonProcess(database: rig.database, extraConfig: rig.config, directory: rig.daemon.directory)
        try await restarted.start()
        let hooks = try await receiver.waitForDeliveries("the alert after the restart", timeout: 60)
        try await eventually("the delivery recorded", timeout: 20) {
            try await rig.database.psql("SELECT state FROM deliveries WHERE event_id = \(eventID)") == "delivered"
        }
        #expect(hooks.count == 1 && hooks.first?["id"] as? String == "tttd_evt_\(eventID)", "\(hooks)")
        #expect(hooks.first?["signature_ok"] as? Bool == true)
        #expect((hooks.first?["event"] as? [String: Any])?["id"] as? Int == alertID)
        #expect(try await receiver.deliveries().count == 1, "exactly once")
        #expect(try await rig.database.psql("SELECT count(*) FROM alerts") == "1")
        #expect(try await rig.database.psql("SELECT count(*) FROM deliveries") == "1")
        #expect(try await rig.chat.requests().count == 1, "the window was not judged again")
        #expect(try await restarted.stop() == 0)
    }

    @Test("tttd killed while a delivery is in flight: restarted as the same node, it sends it again soon with the same webhook-id")
    func killedDuringDelivery() async throws {
        let receiver = try await WebhookReceiver.start()
        try await receiver.configure(["hang_first": 1])
        let rig = try await ModerationRig(extra: Self.alertsConfig(webhooks: [Webhook(name: "moderation", url: receiver.url, events: ["alert"])]))
        let live = try await rig.insertLive("yacouba.traore")
        try await rig.insertWindows(live, ["Tuez-les tous, ces gens-là."])
        let alertID = try #require(try await rig.waitForAlert(live, seq: 0)["id"] as? Int)
        let eventID = try await Self.eventID(rig, alert: alertID)
        try await receiver.waitForDeliveries("the attempt left hanging", timeout: 30)
        rig.daemon.signal(SIGKILL)
        #expect(try await rig.daemon.waitForExit(timeout: 10) == 128 + SIGKILL)

        let restarted = try DaemonProcess(database: rig.database, extraConfig: rig.config, directory: rig.daemon.directory)
        try await restarted.start()
        let hooks: [[String: Any]]
        do {
            hooks = try await receiver.waitForDeliveries("the delivery after the restart", count: 2, timeout: 40)
        } catch {
            let row = try await rig.database.psql("""
                SELECT state, attempts, lease_owner, round(extract(epoch FROM lease_expires_at - now())) || ' s left'
                FROM deliveries WHERE event_id = \(eventID)
                """)
            throw HarnessError("\(error)\nthe delivery: \(row)")
        }
        #expect(hooks.allSatisfy { $0["id"] as? String == "tttd_evt_\(eventID)" }, "\(hooks)")
        #expect(hooks.last?["status"] as? Int == 204)
        #expect(try await restarted.stop() == 0)
    }
}
