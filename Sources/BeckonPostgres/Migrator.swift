import Foundation
import Logging

/// Applies the SQL migrations under `Schemas/migrations` in name order, once each.
///
/// Each file runs in its own transaction under an advisory lock, so several Beckon
/// instances starting together apply it exactly once.
public struct Migrator: Sendable {
    public var directory: String
    public var logger: Logger

    public init(directory: String, logger: Logger) {
        self.directory = directory
        self.logger = logger
    }

    /// - Returns: the versions applied now (empty when the database was up to date).
    @discardableResult
    public func migrate(_ connection: PostgresConnection) throws(PostgresError) -> [String] {
        let files: [String]
        do {
            files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".sql") }.sorted()
        } catch {
            throw PostgresError(code: .migration, message: "cannot list \(directory): \(error.localizedDescription); set paths.schemas to the Schemas folder", context: "migrate")
        }
        guard !files.isEmpty else {
            throw PostgresError(code: .migration, message: "no .sql files in \(directory)", context: "migrate")
        }
        try connection.execute("""
            CREATE TABLE IF NOT EXISTS beckon_schema_migrations (
                version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())
            """, context: "create beckon_schema_migrations")
        var applied: [String] = []
        for file in files {
            let version = String(file.dropLast(4))
            let sql: String
            do {
                sql = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
            } catch {
                throw PostgresError(code: .migration, message: "cannot read \(file): \(error.localizedDescription)", context: "migrate")
            }
            try connection.execute("BEGIN", context: "migration \(version)")
            do {
                try connection.execute("SELECT pg_advisory_xact_lock(7283461)", context: "migration lock")
                let done = try connection.execute("SELECT 1 FROM beckon_schema_migrations WHERE version = $1", [version], context: "migration \(version)")
                if done.rows.isEmpty {
                    try connection.executeRawScript(sql, context: "migration \(file)")
                    try connection.execute("INSERT INTO beckon_schema_migrations (version) VALUES ($1)", [version], context: "migration \(version)")
                    applied.append(version)
                    logger.info("applied migration", metadata: ["beckon.migration": "\(version)"])
                }
                try connection.execute("COMMIT", context: "migration \(version)")
            } catch {
                _ = try? connection.execute("ROLLBACK")
                throw error
            }
        }
        return applied
    }
}
