import CLibPQ
import Foundation
import Logging

/// An error from PostgreSQL (libpq), safe to log: no bind values, no passwords.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// A class of failure, as a value with named constants.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public static let connection = Code("connection")
        public static let query = Code("query")
        public static let migration = Code("migration")
        public var description: String { rawValue }
    }

    public var code: Code
    /// The five-character SQLSTATE, when the server sent one.
    public var sqlState: String?
    public var message: String
    /// What was being done, e.g. `insert 120 decisions`.
    public var context: String

    public init(code: Code, sqlState: String? = nil, message: String, context: String) {
        self.code = code
        self.sqlState = sqlState
        self.message = message
        self.context = context
    }

    /// Connection trouble and server shutdowns pass; constraint or syntax errors do not.
    public var isRetriable: Bool {
        if code == .connection { return true }
        guard let sqlState else { return false }
        return sqlState.hasPrefix("08") || sqlState.hasPrefix("57P") || sqlState == "40001" || sqlState == "40P01"
            || sqlState.hasPrefix("53")
    }

    public var description: String {
        "PostgreSQL \(context): \(message)" + (sqlState.map { " (SQLSTATE \($0))" } ?? "")
    }
}

/// Rows of a query result, as text (libpq's text format).
public struct PostgresRows: Sendable {
    public var columns: [String]
    public var rows: [[String?]]
    /// Rows affected by INSERT/UPDATE/DELETE.
    public var affected: Int

    public subscript(row: Int, column: String) -> String? {
        guard let index = columns.firstIndex(of: column) else { return nil }
        return rows[row][index]
    }
}

/// One libpq connection.
///
/// Queries take bind parameters only (`$1`, `$2`, ...); the one way to run raw text,
/// `executeRawScript`, is named so and used for migrations from `Schemas/`.
///
/// - Important: blocking and not thread-safe: use from one dedicated thread at a time.
public final class PostgresConnection: @unchecked Sendable {
    // @unchecked: a PGconn is used by one thread at a time, documented above.
    private let connection: OpaquePointer
    public let conninfo: String

    private init(connection: OpaquePointer, conninfo: String) {
        self.connection = connection
        self.conninfo = conninfo
    }

    /// Connects with a libpq connection string or URI (`postgresql://user@host:port/db`).
    public static func connect(_ conninfo: String) throws(PostgresError) -> PostgresConnection {
        guard let connection = PQconnectdb(conninfo) else {
            throw PostgresError(code: .connection, message: "out of memory", context: "connect")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Self.errorMessage(connection)
            PQfinish(connection)
            throw PostgresError(code: .connection, message: message, context: "connect to \(redacted(conninfo))")
        }
        // Keep notices (e.g. "relation already exists, skipping") off stderr.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        return PostgresConnection(connection: connection, conninfo: conninfo)
    }

    deinit { PQfinish(connection) }

    public var isConnected: Bool { PQstatus(connection) == CONNECTION_OK }

    /// Re-establishes a broken connection.
    public func reset() throws(PostgresError) {
        PQreset(connection)
        guard PQstatus(connection) == CONNECTION_OK else {
            throw PostgresError(code: .connection, message: Self.errorMessage(connection), context: "reconnect to \(Self.redacted(conninfo))")
        }
    }

    /// Runs one statement with bind parameters (text format; nil is SQL NULL).
    @discardableResult
    public func execute(_ sql: String, _ parameters: [String?] = [], context: String = "query") throws(PostgresError) -> PostgresRows {
        let result = withCStrings(parameters) { pointers in
            PQexecParams(connection, sql, Int32(parameters.count), nil, pointers, nil, nil, 0)
        }
        return try consume(result, context: context)
    }

    /// Runs a script of several statements as raw SQL text, with no parameters.
    /// - Important: only for trusted text shipped with Beckon (migrations), never for input.
    public func executeRawScript(_ sql: String, context: String) throws(PostgresError) {
        let result = PQexec(connection, sql)
        _ = try consume(result, context: context)
    }

    private func consume(_ result: OpaquePointer?, context: String) throws(PostgresError) -> PostgresRows {
        guard let result else {
            throw PostgresError(code: .connection, message: Self.errorMessage(connection), context: context)
        }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            let sqlState = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let primary = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) }
            let code: PostgresError.Code = PQstatus(connection) == CONNECTION_OK ? .query : .connection
            throw PostgresError(code: code, sqlState: sqlState, message: primary ?? Self.errorMessage(connection), context: context)
        }
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        let columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        var rows: [[String?]] = []
        rows.reserveCapacity(rowCount)
        for r in 0..<rowCount {
            rows.append((0..<columnCount).map { c in
                PQgetisnull(result, Int32(r), Int32(c)) != 0 ? nil : String(cString: PQgetvalue(result, Int32(r), Int32(c)))
            })
        }
        let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        return PostgresRows(columns: columns, rows: rows, affected: affected)
    }

    private static func errorMessage(_ connection: OpaquePointer) -> String {
        String(cString: PQerrorMessage(connection)).trimmingTrailingNewlines
    }

    /// The connection string without a password.
    public static func redacted(_ conninfo: String) -> String {
        var out = conninfo
        if let at = out.firstIndex(of: "@"), let scheme = out.range(of: "://"), scheme.upperBound < at {
            let userinfo = out[scheme.upperBound..<at]
            if let colon = userinfo.firstIndex(of: ":") { out.replaceSubrange(colon..<at, with: ":***") }
        }
        return out.replacing(/password=\S+/, with: "password=***")
    }
}

private func withCStrings<R>(_ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    if strings.isEmpty { return body(nil) }
    var storage: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0)! } }
    defer { for p in storage { free(p) } }
    return storage.withUnsafeMutableBufferPointer { buffer in
        buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: max(buffer.count, 1)) { body($0) }
    }
}

extension String {
    var trimmingTrailingNewlines: String {
        var s = self
        while s.last == "\n" || s.last == " " { s.removeLast() }
        return s
    }
}
