import CoreMetrics
import Foundation
import Prometheus
import Synchronization

/// The pipeline's counters, through swift-metrics (a Prometheus registry by default).
///
/// `beckon_dead_letters_total{reason="…"}` counts refused messages by reason code
/// (`invalid_json`, `missing_field`, … as in `DecodeFailure.code`).
final class PipelineMetrics: Sendable {
    private let factory: any MetricsFactory
    let events: CoreMetrics.Counter
    let lateEvents: CoreMetrics.Counter
    let duplicateEvents: CoreMetrics.Counter
    let outages: CoreMetrics.Counter
    let paused: CoreMetrics.Gauge
    /// Visitor states in memory over the assigned partitions, those of them in compact
    /// form, and events held for ordering (recorded at each commit).
    let visitors: CoreMetrics.Gauge
    let compactVisitors: CoreMetrics.Gauge
    let heldEvents: CoreMetrics.Gauge
    private let deadLetters = Mutex<[String: CoreMetrics.Counter]>([:])
    private let decisions = Mutex<[String: CoreMetrics.Counter]>([:])
    private let suppressions = Mutex<[String: CoreMetrics.Counter]>([:])

    init(factory: any MetricsFactory) {
        self.factory = factory
        events = CoreMetrics.Counter(label: "beckon_events_total", dimensions: [], factory: factory)
        lateEvents = CoreMetrics.Counter(label: "beckon_late_events_total", dimensions: [], factory: factory)
        duplicateEvents = CoreMetrics.Counter(label: "beckon_duplicate_events_total", dimensions: [], factory: factory)
        outages = CoreMetrics.Counter(label: "beckon_output_outages_total", dimensions: [], factory: factory)
        paused = CoreMetrics.Gauge(label: "beckon_consumption_paused", dimensions: [], factory: factory)
        visitors = CoreMetrics.Gauge(label: "beckon_visitors", dimensions: [], factory: factory)
        compactVisitors = CoreMetrics.Gauge(label: "beckon_compact_visitors", dimensions: [], factory: factory)
        heldEvents = CoreMetrics.Gauge(label: "beckon_held_events", dimensions: [], factory: factory)
    }

    func deadLetter(reason: String) {
        increment(deadLetters, "beckon_dead_letters_total", [("reason", reason)])
    }

    /// `beckon_suppressed_total{reason, rule}`: firings the policy kept from becoming prompts.
    func suppressed(reason: String, rule: String) {
        increment(suppressions, "beckon_suppressed_total", [("reason", reason), ("rule", rule)])
    }

    func decision(action: String, rule: String) {
        increment(decisions, "beckon_decisions_total", [("action", action), ("rule", rule)])
    }

    /// One counter per label set, made on first use.
    private func increment(_ counters: borrowing Mutex<[String: CoreMetrics.Counter]>, _ label: String, _ dimensions: [(String, String)]) {
        let key = dimensions.map(\.1).joined(separator: " ")
        counters.withLock { counters in
            if counters[key] == nil { counters[key] = CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory) }
            counters[key]!.increment()
        }
    }
}

/// Serves `GET /metrics` (Prometheus text format) from a registry on a small blocking
/// HTTP listener of its own thread. Anything else gets 404.
public final class MetricsServer: Sendable {
    public let port: Int
    private let socketFD: Int32
    private let registry: PrometheusCollectorRegistry
    private let closed = Atomic<Bool>(false)

    /// Binds `host:port` (port 0: any free port) and starts serving.
    public init(listen address: String, registry: PrometheusCollectorRegistry) throws {
        let listen = address
        let parts = listen.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let port = UInt16(parts[1]) else {
            throw BeckonConfiguration.Error(key: "metrics.listen", source: "configuration", message: "'\(listen)' is not host:port (e.g. 127.0.0.1:9464)")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = parts[0].isEmpty || parts[0] == "0.0.0.0" ? INADDR_ANY : inet_addr(String(parts[0]))
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && Glibc.listen(fd, 16) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard fd >= 0, bound else {
            let reason = String(cString: strerror(errno))
            if fd >= 0 { _ = Glibc.close(fd) }
            throw BeckonConfiguration.Error(key: "metrics.listen", source: "configuration", message: "cannot listen on \(listen): \(reason)")
        }
        self.socketFD = fd
        self.port = Int(UInt16(bigEndian: addr.sin_port))
        self.registry = registry
        let thread = Thread { [self] in serve() }
        thread.name = "beckon-metrics"
        thread.start()
    }

    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        shutdown(socketFD, Int32(SHUT_RDWR))
        _ = Glibc.close(socketFD)
    }

    private func serve() {
        while !closed.load(ordering: .acquiring) {
            let client = accept(socketFD, nil, nil)
            guard client >= 0 else {
                if closed.load(ordering: .acquiring) { return }
                continue
            }
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var request = [UInt8](repeating: 0, count: 2048)
            let n = read(client, &request, request.count)
            let line = n > 0 ? String(decoding: request[0..<n], as: UTF8.self).prefix { $0 != "\r" && $0 != "\n" } : ""
            let body: [UInt8]
            let status: String
            if line.hasPrefix("GET /metrics ") || line == "GET /metrics" {
                status = "200 OK"
                body = registry.emitToBuffer()
            } else {
                status = "404 Not Found"
                body = Array("only GET /metrics is served here\n".utf8)
            }
            let head = "HTTP/1.1 \(status)\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
            let response = Array(head.utf8) + body
            _ = response.withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
            _ = Glibc.close(client)
        }
    }
}
