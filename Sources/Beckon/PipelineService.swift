import BeckonCore
import Foundation
import Logging
import ServiceLifecycle

/// Runs a `Pipeline` on a dedicated thread as a `Service`: graceful shutdown (SIGTERM)
/// stops consumption, flushes outputs, commits offsets and leaves the group.
public final class PipelineService: Service, Sendable {
    public let pipeline: Pipeline
    private let exit: Pipeline.ExitCondition
    private let stop = StopSignal()

    public init(pipeline: Pipeline, exit: Pipeline.ExitCondition = .never) {
        self.pipeline = pipeline
        self.exit = exit
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await runOnThread()
        } onGracefulShutdown: {
            self.stop.set()
        }
    }

    /// Asks the pipeline to stop (as SIGTERM would).
    public func requestStop() { stop.set() }

    private func runOnThread() async throws {
        let pipeline = self.pipeline
        let stop = self.stop
        let exit = self.exit
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            // librdkafka and libpq block: keep them off Swift's cooperative threads.
            let thread = Thread {
                do {
                    try pipeline.run(stop: stop, exit: exit)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.name = "beckon-pipeline"
            thread.start()
        }
    }
}

extension RunSummary {
    /// A human-readable closing summary.
    public var report: String {
        func n(_ v: Int) -> String {
            let s = String(v)
            var out = ""
            for (i, c) in s.reversed().enumerated() {
                if i > 0 && i % 3 == 0 { out.append(",") }
                out.append(c)
            }
            return String(out.reversed())
        }
        var lines = ["── Beckon summary ──"]
        lines.append("events in      \(n(eventsIn))" + (replayedEvents > 0 ? "  (and \(n(replayedEvents)) re-read to rebuild state)" : ""))
        let reasons = deadLettersByReason.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        lines.append("dead letters   \(n(deadLetters))" + (reasons.isEmpty ? "" : "  (\(reasons))"))
        lines.append("late events    \(n(lateEvents))")
        lines.append("duplicates     \(n(duplicateEvents))  (tracker retries, dropped)")
        lines.append("decisions      \(n(decisions))" + (holdoutDecisions > 0 ? "  (\(n(holdoutDecisions)) in holdout groups: stored, not published)" : ""))
        for (key, count) in decisionsByActionAndRule.sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: " ")
            lines.append("  \(parts[0].padding(toLength: 11, withPad: " ", startingAt: 0)) \(parts.dropFirst().joined().padding(toLength: 28, withPad: " ", startingAt: 0)) \(n(count))")
        }
        if !suppressedByReason.isEmpty {
            let reasons = suppressedByReason.sorted { $0.key < $1.key }.map { "\($0.key) \(n($0.value))" }.joined(separator: ", ")
            lines.append("suppressed     \(n(suppressedByReason.values.reduce(0, +)))  (\(reasons))")
        }
        if ruleReloads + refusedRuleReloads > 0 {
            lines.append("rule reloads   \(n(ruleReloads))" + (refusedRuleReloads > 0 ? ", \(n(refusedRuleReloads)) refused (invalid files; the rules in force stayed)" : ""))
        }
        lines.append("offset commits \(n(commits))" + (outputRetries > 0 ? ", output retries \(n(outputRetries))" : ""))
        if let l = latencyPercentiles, l.p50 < 3_600_000 {
            lines.append("decision latency  p50 \(l.p50) ms, p99 \(l.p99) ms, max \(l.max) ms  (Kafka ack − decision event time; meaningful for live streams)")
        }
        return lines.joined(separator: "\n")
    }
}
