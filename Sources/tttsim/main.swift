// tttsim: a TikTok emulator for tttd's tests and demos (see TIKTOK.md and INTERFACES.md).
import ArgumentParser
import Foundation
import Logging
import TTTSim

@main
struct TTTSimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tttsim",
        abstract: "Serve TikTok's live endpoints (web, webcast, FLV streams) and a /_sim/ control API.")

    @Option(help: "HOST:PORT to listen on (port 0 picks a free one).")
    var listen = "127.0.0.1:8089"

    @Option(help: "Pre-create accounts sim0 … sim{N-1}.")
    var accounts = 0

    @Option(help: "Scripted lives: a JSON array or a CSV file (username,start_s,duration_s,audio).")
    var schedule: String?

    @Option(help: "Seed for room ids, user ids and fault draws.")
    var seed: UInt64?

    func run() async throws {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
              (0...65535).contains(port)
        else { throw ValidationError("--listen must be HOST:PORT") }
        let host = String(listen[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        var entries: [ScheduleEntry] = []
        if let schedule {
            do { entries = try Schedule.load(path: schedule) } catch { throw ValidationError("\(error)") }
        }

        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        let logger = Logger(label: "tttsim")
        var serverLogger = Logger(label: "tttsim.http")
        serverLogger.logLevel = .warning  // Hummingbird's own start-up line would repeat ours

        let simulator = Simulator(configuration: SimConfiguration(host: host, port: port, accounts: accounts, seed: seed), logger: logger)
        logger.info("tttsim starting", metadata: [
            "listen": "\(listen)", "accounts": "\(accounts)", "schedule": "\(schedule ?? "none") (\(entries.count) lives)",
            "seed": "\(seed.map(String.init) ?? "random")",
        ])
        try await simulator.run(schedule: entries, serverLogger: serverLogger) { host, port in
            // Unbuffered: tests and scripts wait for this line on a pipe.
            FileHandle.standardOutput.write(Data("tttsim listening on http://\(host):\(port)\n".utf8))
        }
    }
}
