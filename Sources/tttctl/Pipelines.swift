import ArgumentParser
import Foundation
import TTTControl

struct Pipelines: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the running transcription pipelines.")
    @OptionGroup var options: ClientOptions

    func run() throws {
        let pipelines: [PipelineInfo] = try options.connect().call("pipelines.list")
        if options.json { return try Output.json(pipelines) }
        if pipelines.isEmpty {
            print("No pipeline is running.")
            return
        }
        Output.table(["ID", "LIVE", "USERNAME", "STATE", "STARTED", "AUDIO", "WINDOWS", "BACKLOG", "GAPS", "ASR P50"],
                     pipelines.map { pipeline in
            [String(pipeline.id), String(pipeline.liveId), "@" + pipeline.username,
             pipeline.state + (pipeline.state == "reconnecting" ? pipeline.reason.map { " (\($0))" } ?? "" : ""),
             Output.dateTime(pipeline.startedAt), Output.duration(pipeline.audioS), String(pipeline.windows),
             pipeline.backlog.map(String.init) ?? "-", String(format: "%.1f s", pipeline.gapsS),
             pipeline.asrP50Ms.map { "\($0) ms" } ?? "-"]
        })
    }
}

struct PipelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pipeline", abstract: "Act on one pipeline.",
                                                    subcommands: [Stop.self])

    struct Stop: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop a live's pipeline: what was captured is still transcribed, and no new pipeline starts for that live.")
        @Argument(help: ArgumentHelp("The pipeline's id (see `tttctl pipelines`).", valueName: "id"))
        var id: Int64
        @OptionGroup var options: ClientOptions

        func run() throws {
            let result: PipelinesStopResult = try options.connect().call("pipelines.stop", PipelinesStopParams(id: id))
            if options.json { return try Output.json(result) }
            print("Pipeline \(result.id) is stopping; its last windows are still transcribed.")
        }
    }
}
