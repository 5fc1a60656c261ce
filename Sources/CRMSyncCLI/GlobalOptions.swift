import ArgumentParser
import CRMSyncApp
import Foundation
import Logging

/// Options every command shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Config file (default crm-sync.yaml, or $CRM_SYNC_CONFIG). DATABASE_URL overrides its database_url; without either, a private PostgreSQL cluster under .crm-sync/ is used.")
    var config: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical (default $LOG_LEVEL or notice).")
    var logLevel: String?

    @Option(name: .long, help: "Log format: text or json (one JSON object per line). Default: json when stderr is not a terminal, else text.")
    var logFormat: String?

    func validate() throws {
        if let logFormat, LogFormat(rawValue: logFormat) == nil { throw ValidationError("--log-format: expected text or json") }
    }

    func runtime() throws -> Runtime {
        let environment = ProcessInfo.processInfo.environment
        LogFormat.bootstrap(logFormat.flatMap(LogFormat.init(rawValue:)) ?? .automatic)
        var logger = Logger(label: "crm-sync")
        logger.logLevel = Logger.Level(rawValue: logLevel ?? environment["LOG_LEVEL"] ?? "notice") ?? .notice
        let config = try Runtime.loadConfig(path: config, environment: environment)
        return Runtime(config: config, logger: logger, environment: environment)
    }
}

extension GlobalOptions {
    /// The options that take a value and every command shares.
    static let names: Set<String> = ["--config", "--log-level", "--log-format"]

    /// `arguments` with every global option that stands before the (sub)command path moved to
    /// just after it: `--config x migrate` becomes `migrate --config x`, and
    /// `--log-level debug outbox --config x deliver --once` becomes
    /// `outbox deliver --log-level debug --config x --once`. Anything else keeps its place, so
    /// the parser still names an unknown option or a missing value itself.
    static func movedAfterTheVerb(_ arguments: [String], root: any ParsableCommand.Type) -> [String] {
        var path: [String] = [], moved: [String] = [], index = arguments.startIndex
        var level = root.configuration.subcommands
        while index < arguments.endIndex {
            let argument = arguments[index]
            let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
            if names.contains(name) {
                let takesNext = !argument.contains("=") && index + 1 < arguments.endIndex
                moved += takesNext ? [argument, arguments[index + 1]] : [argument]
                index += takesNext ? 2 : 1
            } else if let command = level.first(where: { $0._commandName == argument }) {
                path.append(argument)
                level = command.configuration.subcommands
                index += 1
            } else {
                break
            }
        }
        return path + moved + arguments[index...]
    }
}
