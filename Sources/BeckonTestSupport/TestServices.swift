import Beckon
import BeckonCore
import BeckonKafka
import BeckonPostgres
import Foundation
import Logging
import Synchronization

/// A real Tansu broker and a real PostgreSQL, started once per test process on free
/// loopback ports, with their data in a temporary folder that is removed at exit.
///
/// Each child runs under a small bash guard that ends it when this process goes away,
/// even by a crash, so no broker or database outlives a test run.
public final class TestServices: Sendable {
    public let kafkaBootstrap: String
    public let postgresPort: Int
    public let directory: String
    public let projectRoot: String

    private static let started = Mutex<Result<TestServices, TestServicesError>?>(nil)

    /// The services, started on first use.
    public static func shared() throws -> TestServices {
        try started.withLock { state in
            if let state { return try state.get() }
            let result = Result { () throws(TestServicesError) -> TestServices in try TestServices.start() }
            state = result
            return try result.get()
        }
    }

    private init(kafkaBootstrap: String, postgresPort: Int, directory: String, projectRoot: String) {
        self.kafkaBootstrap = kafkaBootstrap
        self.postgresPort = postgresPort
        self.directory = directory
        self.projectRoot = projectRoot
    }

    /// The project root, found from this source file.
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    private static func start() throws(TestServicesError) -> TestServices {
        let root = Self.root
        let tansu = root + "/.deps/tansu"
        guard FileManager.default.isExecutableFile(atPath: tansu) else {
            throw TestServicesError("Tansu is not installed at \(tansu); run scripts/setup.sh (make test does)")
        }
        guard let pgBin = postgresBin() else {
            throw TestServicesError("PostgreSQL server binaries not found under /usr/lib/postgresql; run scripts/setup.sh")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("beckon-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        do {
            try FileManager.default.createDirectory(atPath: dir + "/pgdata", withIntermediateDirectories: true)
        } catch {
            throw TestServicesError("cannot create \(dir): \(error)")
        }
        registerCleanup(dir)

        // Tansu, in memory.
        let kafkaPort = try freePort()
        try guarded(
            [tansu, "broker", "--listener-url", "tcp://127.0.0.1:\(kafkaPort)", "--advertised-listener-url", "tcp://127.0.0.1:\(kafkaPort)",
             "--storage-engine", "memory://tansu/"],
            log: dir + "/tansu.log", signal: "KILL")  // in-memory: nothing to lose; TERM may be blocked
        try waitForPort(kafkaPort, log: dir + "/tansu.log")

        // PostgreSQL refuses to run as root: run it as the 'postgres' system user then.
        let asUser: [String] = getuid() == 0 ? ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] : []
        if getuid() == 0 {
            _ = try run(["chown", "-R", "postgres:", dir])
            _ = try run(["chmod", "755", dir])
        }
        _ = try run(asUser + [pgBin + "/initdb", "-D", dir + "/pgdata", "-A", "trust", "-U", "beckon", "-E", "UTF8", "--no-sync"])
        let pgPort = try freePort()
        try guarded(
            asUser + [pgBin + "/postgres", "-D", dir + "/pgdata", "-p", "\(pgPort)", "-k", dir + "/pgdata",
                      "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"],
            log: dir + "/postgres.log", signal: "INT")
        try waitForPort(pgPort, log: dir + "/postgres.log")
        let deadline = Date().addingTimeInterval(30)
        while true {
            if (try? PostgresConnection.connect("postgresql://beckon@127.0.0.1:\(pgPort)/postgres")) != nil { break }
            if Date() > deadline { throw TestServicesError("PostgreSQL on port \(pgPort) did not accept connections; see \(dir)/postgres.log") }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return TestServices(kafkaBootstrap: "127.0.0.1:\(kafkaPort)", postgresPort: pgPort, directory: dir, projectRoot: root)
    }

    /// A new, empty, migrated database; returns its URL.
    public func makeDatabase(migrate: Bool = true) throws -> String {
        let name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let admin = try PostgresConnection.connect("postgresql://beckon@127.0.0.1:\(postgresPort)/postgres")
        // Identifiers cannot be bound as parameters; `name` is generated above, not input.
        try admin.executeRawScript("CREATE DATABASE \(name)", context: "create test database")
        let url = "postgresql://beckon@127.0.0.1:\(postgresPort)/\(name)"
        if migrate {
            let connection = try PostgresConnection.connect(url)
            try Migrator(directory: projectRoot + "/Schemas/migrations", logger: Logger(label: "test")).migrate(connection)
        }
        return url
    }

    /// A configuration with unique topic names and group id, pointing at these services.
    public func configuration(database: String, partitions: Int32 = 2) throws -> BeckonConfiguration {
        let id = UUID().uuidString.prefix(8).lowercased()
        var config = BeckonConfiguration()
        config.kafka["bootstrap.servers"] = kafkaBootstrap
        config.kafka["group.id"] = "beckon-test-\(id)"
        config.postgresURL = database
        config.eventsTopic = "events-\(id)"
        config.decisionsTopic = "decisions-\(id)"
        config.deadLetterTopic = "dlq-\(id)"
        config.topicPartitions = partitions
        config.rulesDirectory = projectRoot + "/Rules"
        config.schemasDirectory = projectRoot + "/Schemas"
        let retention = ["retention.ms": "604800000"]
        try KafkaAdmin.createTopics([
            .init(name: config.eventsTopic, partitions: partitions, config: retention),
            .init(name: config.decisionsTopic, partitions: partitions, config: retention),
            .init(name: config.deadLetterTopic, partitions: partitions, config: retention),
        ], configuration: config.kafka)
        return config
    }

    // MARK: processes

    static func postgresBin() -> String? {
        let base = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        return versions.compactMap(Int.init).sorted().last.map { "\(base)/\($0)/bin" }
    }

    static func freePort() throws(TestServicesError) -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestServicesError("socket() failed") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw TestServicesError("cannot find a free port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    private static func waitForPort(_ port: Int, log: String) throws(TestServicesError) {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = UInt16(port).bigEndian
            let connected = withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
            close(fd)
            if connected { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let tail = (try? String(contentsOfFile: log, encoding: .utf8))?.suffix(2000) ?? ""
        throw TestServicesError("nothing listens on 127.0.0.1:\(port) after 30 s; log \(log):\n\(tail)")
    }

    @discardableResult
    static func run(_ arguments: [String]) throws(TestServicesError) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { throw TestServicesError("cannot run \(arguments[0]): \(error)") }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestServicesError("\(arguments.joined(separator: " ")) failed (\(process.terminationStatus)):\n\(output)")
        }
        return output
    }

    /// Starts `arguments` under a bash guard that stops it with `signal` once this process
    /// closes the guard's standard input: at exit, or by dying, since the kernel closes it then.
    /// (Children inherit this process's blocked-signal mask, so a child that does not reset
    /// it, like Tansu, must be stopped with KILL; PostgreSQL resets it and shuts down on INT.)
    static func guarded(_ arguments: [String], log: String, signal: String) throws(TestServicesError) {
        let script = """
            sig=$1; log=$2; shift 2
            "$@" >>"$log" 2>&1 </dev/null &
            child=$!
            cat >/dev/null
            kill -s "$sig" $child 2>/dev/null
            for _ in $(seq 100); do kill -0 $child 2>/dev/null || exit 0; sleep 0.1; done
            kill -s KILL $child 2>/dev/null
            """
        let process = Process()
        let lifeline = Pipe()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", script, "guard", signal, log] + arguments
        process.standardInput = lifeline
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { throw TestServicesError("cannot start \(arguments[0]): \(error)") }
        lifelines.withLock { $0.append((process.processIdentifier, lifeline.fileHandleForWriting)) }
    }

    private static let lifelines = Mutex<[(pid: Int32, handle: FileHandle)]>([])
    nonisolated(unsafe) private static var cleanupDirectory: String?

    private static func registerCleanup(_ dir: String) {
        cleanupDirectory = dir
        atexit {
            let guards = TestServices.lifelines.withLock { $0 }
            // Newest first: PostgreSQL, then Tansu.
            for (pid, handle) in guards.reversed() {
                try? handle.close()
                var status: Int32 = 0
                waitpid(pid, &status, 0)
            }
            if let dir = TestServices.cleanupDirectory { try? FileManager.default.removeItem(atPath: dir) }
        }
    }
}

/// A PostgreSQL of one test's own, which the test may stop and start again (outages)
/// without disturbing the shared one other tests use.
public final class PrivatePostgres: Sendable {
    public let port: Int
    let directory: String
    let bin: String
    let asUser: [String]

    public static func start() throws -> PrivatePostgres {
        let shared = try TestServices.shared()
        guard let bin = TestServices.postgresBin() else { throw TestServicesError("PostgreSQL server binaries not found") }
        let dir = shared.directory + "/pg-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let asUser: [String] = getuid() == 0 ? ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] : []
        if getuid() == 0 { try TestServices.run(["chown", "-R", "postgres:", dir]) }
        try TestServices.run(asUser + [bin + "/initdb", "-D", dir, "-A", "trust", "-U", "beckon", "-E", "UTF8", "--no-sync"])
        let pg = PrivatePostgres(port: try TestServices.freePort(), directory: dir, bin: bin, asUser: asUser)
        try pg.startServer()
        return pg
    }

    private init(port: Int, directory: String, bin: String, asUser: [String]) {
        self.port = port
        self.directory = directory
        self.bin = bin
        self.asUser = asUser
    }

    /// Starts the server (again) on the same port and data, and waits until it accepts connections.
    public func startServer() throws {
        try TestServices.guarded(
            asUser + [bin + "/postgres", "-D", directory, "-p", "\(port)", "-k", directory,
                      "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            log: directory + ".log", signal: "INT")
        let deadline = Date().addingTimeInterval(30)
        while (try? PostgresConnection.connect("postgresql://beckon@127.0.0.1:\(port)/postgres")) == nil {
            if Date() > deadline { throw TestServicesError("private PostgreSQL on \(port) did not come up; see \(directory).log") }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Stops the server (fast shutdown: clients are disconnected) and waits until it is gone.
    public func stopServer() throws {
        try TestServices.run(asUser + [bin + "/pg_ctl", "-D", directory, "-m", "fast", "-w", "stop"])
    }

    /// A new, migrated database on this server; returns its URL.
    public func makeDatabase() throws -> String {
        let admin = try PostgresConnection.connect("postgresql://beckon@127.0.0.1:\(port)/postgres")
        try admin.executeRawScript("CREATE DATABASE beckon", context: "create test database")
        let url = "postgresql://beckon@127.0.0.1:\(port)/beckon"
        try Migrator(directory: TestServices.root + "/Schemas/migrations", logger: Logger(label: "test")).migrate(PostgresConnection.connect(url))
        return url
    }
}

public struct TestServicesError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
