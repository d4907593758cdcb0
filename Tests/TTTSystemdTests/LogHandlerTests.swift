import Logging
import Testing
@testable import TTTSystemd

@Suite("logging")
struct LogHandlerTests {
    @Test("metadata keys become TTT_ journal fields")
    func fieldNames() {
        #expect(journalFieldName("account") == "TTT_ACCOUNT")
        #expect(journalFieldName("live_id") == "TTT_LIVE_ID")
        #expect(journalFieldName("sl-service") == "TTT_SL_SERVICE")
        #expect(journalFieldName("bad key") == nil)
        #expect(journalFieldName("") == nil)
    }

    @Test("priorities follow syslog(3)")
    func priorities() {
        #expect(Logger.Level.error.syslogPriority == 3)
        #expect(Logger.Level.warning.syslogPriority == 4)
        #expect(Logger.Level.info.syslogPriority == 6)
        #expect(Logger.Level.debug.syslogPriority == 7)
    }

    @Test("without a journal socket, logs go to stderr")
    func destination() {
        #expect(LogDestination.detect(journalSocket: "/nonexistent/journal/socket") == .stderr)
    }

    @Test("the shared level changes every handler at once")
    func sharedLevel() {
        let level = SharedLogLevel(.info)
        let handler = StderrLogHandler(label: "t", level: level)
        #expect(handler.logLevel == .info)
        level.set(.debug)
        #expect(handler.logLevel == .debug)
    }
}
