import ArgumentParser
import Foundation
import TallyDomain
import TallyLog

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Execute domain commands: JSON Lines in, one JSON result per line out.",
        discussion: """
            Each line is a command: {"id": "<uuid>", "actor": "<role>:<id>", "command": {"<name>": {fields}}}. \
            The id makes retries safe: the same id again returns the first result and appends nothing. \
            Roles: admin, operator, member, customer, staff, system. Money is {"minor": 250, "currency": "USD"}.

            Each result line: {"line": N, "id": …, "command": …, "result": "accepted", "positions": [...]}, \
            or "result": "rejected" with a stable "code" and a "message" (nothing was appended), or \
            "result": "error" for a line that is not a valid command (the exit status is then 1).

            Example:
              tally exec <<'EOF'
              {"id":"6f1c1d2e-0000-4000-8000-000000000001","actor":"admin:ana","command":{"registerBooth":{"boothID":"3","name":"Lemonade","location":"North gate"}}}
              {"id":"6f1c1d2e-0000-4000-8000-000000000002","actor":"admin:ana","command":{"assignOperator":{"boothID":"3","operatorID":"lee","operatorName":"Lee Kim"}}}
              {"id":"6f1c1d2e-0000-4000-8000-000000000003","actor":"admin:ana","command":{"issueVoucher":{"voucherID":"7","amount":{"minor":2500,"currency":"USD"},"buyerEmail":"kim@example.org"}}}
              {"id":"6f1c1d2e-0000-4000-8000-000000000004","actor":"operator:lee","command":{"redeemVoucher":{"voucherID":"7","boothID":"3","saleID":"s1","saleAmount":{"minor":1800,"currency":"USD"}}}}
              EOF

            `tally exec --catalog` prints one example of every command, in an order a new store accepts:
              tally exec --catalog | tally exec
            """)

    /// Commands executed together at most: a window's outcomes are held until its last is durable.
    static let windowCommandsMax = 1_000

    @OptionGroup var store: StoreOptions
    @Flag(help: "Print one example of every command (JSON Lines) and exit.") var catalog = false

    func run() throws {
        if catalog {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            for example in CommandCatalog.examples { print(String(decoding: try encoder.encode(example), as: UTF8.self)) }
            return
        }
        let log = try store.open()
        defer { log.close() }
        let commerce = CommerceService(log: log, vault: store.vault)
        let output = OutputBuffer()
        var number = 0
        var malformed = 0
        var failed = 0
        var erased = false
        var lines = InputLines()
        // Commands already read are executed together, in order (one writer transaction and one sync for
        // many, where one at a time paid a sync each), but never while waiting for more input: a client
        // that writes a command and waits for its answer gets it.
        var window: [(number: Int, envelope: CommandEnvelope)] = []
        var fatal: (any Error)?
        func executeWindow() throws {
            let outcomes = commerce.executeEachInOrder(window.map(\.envelope))
            for ((number, envelope), outcome) in zip(window, outcomes) {
                let head = "{\"line\":\(number),\"id\":\"\(envelope.id.uuidString.lowercased())\",\"command\":\"\(envelope.command.name)\""
                switch outcome {
                case .success(.accepted(let positions, let wasRetry)):
                    if case .erasePersonalData = envelope.command { erased = true }
                    try output.line(head + ",\"result\":\"accepted\",\"positions\":[\(positions.map(String.init).joined(separator: ","))]" + (wasRetry ? ",\"retry\":true}" : "}"))
                case .success(.rejected(let rejection)):
                    try output.line(head + ",\"result\":\"rejected\",\"code\":\"\(rejection.code.rawValue)\",\"message\":\(EventJSON.quote(rejection.message))}")
                case .failure(let error as LogError) where error.refusesTheAppendOnly:
                    // The log refused this command's events (an event id taken, one too large): nothing of
                    // it was appended, and the others still run.
                    failed += 1
                    printError("line \(number): \(error)")
                    try output.line(head + ",\"result\":\"error\",\"code\":\"refusedByTheLog\",\"message\":\(EventJSON.quote(error.description))}")
                case .failure(let error):
                    // A failure of the store itself: the others' outcomes are told, then it stops here.
                    fatal = fatal ?? error
                }
            }
            window.removeAll(keepingCapacity: true)
            try output.flush()
        }
        while fatal == nil, let line = try lines.next() {
            number += 1
            if InputLines.isBlank(line) { continue }
            let envelope: CommandEnvelope
            do {
                envelope = try CommandJSON.parse(line)
            } catch let error as CLIError {
                if !window.isEmpty { try executeWindow() }  // results stay in line order
                malformed += 1
                printError("line \(number): \(error.description)")
                try output.line("{\"line\":\(number),\"result\":\"error\",\"code\":\"malformedCommand\",\"message\":\(EventJSON.quote("line \(number): \(error.description)"))}")
                try output.flush()
                continue
            }
            window.append((number, envelope))
            // An erasure ends its window: a command after it about the same person must see the key gone.
            let isErasure = if case .erasePersonalData = envelope.command { true } else { false }
            if window.count >= Self.windowCommandsMax || isErasure || !lines.hasBufferedLine { try executeWindow() }
        }
        if !window.isEmpty { try executeWindow() }
        if let fatal { throw fatal }
        try output.flush()
        // Standard output is the results' JSON Lines: the rebuilds are reported on standard error.
        if erased { try ReadModels.dropErasedValues(log) { writeStandardError("note: \($0) after the erasure\n") } }
        if malformed > 0 || failed > 0 { throw ExitCode(1) }
    }
}

/// Command lines: decoded with the domain's Codable types, with errors that name what is wrong.
enum CommandJSON {
    static func parse(_ line: [UInt8]) throws -> CommandEnvelope {
        // Checked and canonical first: a key given twice (which would the decoder take?), a byte that
        // is not UTF-8 and a half surrogate pair are refused by their byte.
        let line = try EventJSON.canonical(line, place: "")
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(line), options: [.fragmentsAllowed]) else {
            // The grammar held: only a number past Double's range makes Foundation give up.
            throw CLIError("a number in it is beyond the range of a 64-bit float (±1.8e308)")
        }
        guard let fields = parsed as? [String: Any] else { throw CLIError("a command must be a JSON object") }
        for key in ["id", "actor", "command"] where fields[key] == nil { throw CLIError("missing field \"\(key)\"") }
        if let unknown = fields.keys.sorted().first(where: { !["id", "actor", "command"].contains($0) }) {
            throw CLIError("unknown field \"\(unknown)\" (a command line has id, actor and command)")
        }
        guard let id = fields["id"] as? String, UUID(uuidString: id) != nil else {
            let given = (fields["id"] as? String).map { "\"\($0)\"" } ?? "\(fields["id"] ?? "null")"
            throw CLIError("field \"id\" must be a UUID (32 hex digits as 8-4-4-4-12, e.g. \"123e4567-e89b-12d3-a456-426614174000\"), not \(given)")
        }
        guard let command = fields["command"] as? [String: Any], command.count == 1, let name = command.keys.first else {
            throw CLIError("field \"command\" must be an object with one key, the command's name")
        }
        guard Command.names.contains(name) else {
            throw CLIError("unknown command \"\(name)\" (commands: \(Command.names.joined(separator: ", ")))")
        }
        let envelope: CommandEnvelope
        do {
            envelope = try JSONDecoder().decode(CommandEnvelope.self, from: Data(line))
        } catch let error as DecodingError {
            throw CLIError(DomainCoding.describe(error))
        }
        // The decoder passes over fields the command does not have: a misspelt optional field
        // ("linkedSku" for "linkedSKU") would be lost without a word. Every field given must be one
        // the command, encoded again, has.
        let known = try JSONSerialization.jsonObject(with: JSONEncoder().encode(envelope))
        if let unknown = unknownField(fields, known: known, path: []) { throw CLIError(unknown) }
        return envelope
    }

    /// The first field of `given` (nulls aside) that `known` does not have at the same place, named
    /// by its path.
    static func unknownField(_ given: Any, known: Any, path: [String]) -> String? {
        if let given = given as? [String: Any], let known = known as? [String: Any] {
            for key in given.keys.sorted() where !(given[key] is NSNull) {
                let here = path + [key]
                guard let value = known[key] else {
                    return "unknown field \"\(here.joined(separator: "."))\" (the fields of each command are in `tally exec --catalog` and Sources/TallyDomain/Commands.swift)"
                }
                if let found = unknownField(given[key]!, known: value, path: here) { return found }
            }
        } else if let given = given as? [Any], let known = known as? [Any] {
            for (index, (element, knownElement)) in zip(given, known).enumerated() {
                if let found = unknownField(element, known: knownElement, path: path.dropLast() + ["\(path.last ?? "")[\(index)]"]) { return found }
            }
        }
        return nil
    }
}
