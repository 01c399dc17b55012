import Beckon
import Foundation
import Prometheus
import Testing

@Suite("Metrics endpoint")
struct MetricsServerTests {
    /// One HTTP/1.1 request over a plain socket; returns the whole response.
    func get(_ path: String, port: Int) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else { throw POSIXError(.ECONNREFUSED) }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        return String(decoding: response, as: UTF8.self)
    }

    @Test func servesThePrometheusTextOfItsRegistry() throws {
        let registry = PrometheusCollectorRegistry()
        let deadLetters = MetricNameDescriptor(namespace: "beckon", metricName: "dead_letters", unitName: "total", helpText: "Events sent to the dead-letter topic")
        registry.makeCounter(descriptor: deadLetters, labels: [("reason", "invalid_json")]).increment(by: Int64(3))
        let server = try MetricsServer(listen: "127.0.0.1:0", registry: registry)
        defer { server.close() }
        #expect(server.port > 0)
        let ok = try get("/metrics", port: server.port)
        #expect(ok.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(ok.contains("beckon_dead_letters_total{reason=\"invalid_json\"} 3\n"))
        let other = try get("/", port: server.port)
        #expect(other.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
    }

    @Test func aBusyPortIsAConfigurationErrorNamingTheKey() throws {
        let first = try MetricsServer(listen: "127.0.0.1:0", registry: PrometheusCollectorRegistry())
        defer { first.close() }
        #expect {
            try MetricsServer(listen: "127.0.0.1:\(first.port)", registry: PrometheusCollectorRegistry())
        } throws: { error in
            "\(error)".contains("metrics.listen") && "\(error)".contains("cannot listen on 127.0.0.1:\(first.port)")
        }
    }
}
