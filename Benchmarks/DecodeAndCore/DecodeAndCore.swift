// Broker-free micro-benchmarks of the hot path, over the simulator's realistic mix
// (fixed seed): decode + validate, and the core (state, features, intent scores,
// watermark, timers, dwell rule) with 2,000, 100,000 and 1,000,000 distinct visitors.
// Each iteration handles every message of its mix once; throughput = messages per
// iteration × iterations/s. The core takes its events as the pipeline hands them over:
// in batches of 5,000 (`run.batch_size`'s default) through `process(batch:)`, built before
// the measurement starts. Run with `make bench`.
#if canImport(Glibc)
import Glibc
#endif
import Benchmark
import BeckonCore
import Foundation

func simulate(visitors: Int, badShare: Double = 0) -> [SimulatedMessage] {
    var c = Simulator.Configuration()
    c.visitors = visitors
    c.seed = 7
    c.badShare = badShare
    return Simulator(c).messages()
}

func decodeAll(_ messages: [SimulatedMessage]) -> [Event] {
    let decoder = EventDecoder()
    return messages.compactMap { m in
        try? decoder.decode(m.value, key: m.key, brokerTime: EventTime(milliseconds: m.timestamp)).get()
    }
}

let mix = simulate(visitors: 2000, badShare: 0.01)
let broker = EventTime(milliseconds: mix.last!.timestamp)
let small = decodeAll(mix)
nonisolated(unsafe) var medium: [Event] = decodeAll(simulate(visitors: 100_000))
nonisolated(unsafe) var large: [Event] = decodeAll(simulate(visitors: 1_000_000))

/// The pipeline's default batch (`run.batch_size`).
let batchSize = 5_000

/// `events` as the pipeline hands them to the core: batches of arrivals, in order.
func batches(_ events: [Event]) -> [[PartitionProcessor.Arrival]] {
    stride(from: 0, to: events.count, by: batchSize).map { start in
        events[start..<min(start + batchSize, events.count)].map { PartitionProcessor.Arrival($0, arrivedAt: broker) }
    }
}

let smallBatches = batches(small)

let rules = try! RuleSet.load(files: [("pay.yaml", """
    id: pay
    when:
      dwell:
        page: /checkout/payment
        at_least: 45s
    action: offer_help
    payload:
      message: hi
    """)]).get()

let model: IntentModel = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    let path = root + "/Rules/models/intent.yaml"
    return try! IntentModel.load(file: path, text: String(contentsOfFile: path, encoding: .utf8)).get()
}()

/// The shipped rules and policy (Rules/*.yaml): six scenario rules, caps, cooldowns, holdouts.
let (shippedRules, shippedPolicy): (RuleSet, Policy) = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path + "/Rules"
    let names = try! FileManager.default.contentsOfDirectory(atPath: root).filter { $0.hasSuffix(".yaml") && $0 != "policy.yaml" }.sorted()
    let files = names.map { (name: $0, text: try! String(contentsOfFile: root + "/" + $0, encoding: .utf8)) }
    let policy = try! Policy.load(file: "policy.yaml", text: String(contentsOfFile: root + "/policy.yaml", encoding: .utf8)).get()
    return (try! RuleSet.load(files: files, intents: model.intents.map(\.name)).get(), policy)
}()

/// glibc's malloc_trim (not in the Glibc module map).
@_silgen_name("malloc_trim") func mallocTrim(_ pad: Int) -> Int32

func residentBytes() -> Int {
    guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
          let pages = statm.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

func runCore(_ events: [Event], _ benchmark: Benchmark) {
    let arrivals = batches(events)
    _ = mallocTrim(0)  // hand back what the previous iteration freed, so RSS growth is this run's
    let before = residentBytes()
    var p = PartitionProcessor(rules: rules, model: model)
    var n = 0
    benchmark.startMeasurement()
    for batch in arrivals { n += p.process(batch: batch).count }
    benchmark.stopMeasurement()
    let visitors = p.visitorCount
    benchmark.measurement(.custom("bytes per resident visitor", useScalingFactor: false), (residentBytes() - before) / max(visitors, 1))
    benchmark.measurement(.custom("resident visitors", useScalingFactor: false), visitors)
    // Five quiet minutes later (less than the session gap): every visitor idle, compacted.
    n += p.advanceIdle(wallNow: events.map(\.time).max()! + .minutes(5)).count
    benchmark.measurement(.custom("bytes per idle visitor", useScalingFactor: false), (residentBytes() - before) / max(p.visitorCount, 1))
    blackHole(n)
    blackHole(p)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.throughput, .wallClock], maxDuration: .seconds(5), maxIterations: 1000)

    Benchmark("decode+validate (\(mix.count) msgs, \(mix.reduce(0) { $0 + $1.value.count } / mix.count) B avg)",
              configuration: .init(scalingFactor: .one)) { benchmark in
        let decoder = EventDecoder()
        let values = mix.map(\.value), keys = mix.map(\.key), times = mix.map { EventTime(milliseconds: $0.timestamp) }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var ok = 0
            for i in values.indices {
                if case .success = decoder.decode(values[i], key: keys[i], brokerTime: times[i]) { ok += 1 }
            }
            blackHole(ok)
        }
    }

    // The whole in-process pipeline on already-fetched payloads: decode + validate, state,
    // features, intent scores, timers, the dwell rule and the policy (min gap, human chat).
    // As the pipeline does: a batch decoded, then processed.
    Benchmark("pipeline in-process: payload → decode → core → rules → policy (\(mix.count) msgs)") { benchmark in
        let decoder = EventDecoder()
        var batch: [PartitionProcessor.Arrival] = []
        batch.reserveCapacity(batchSize)
        for _ in benchmark.scaledIterations {
            var p = PartitionProcessor(rules: rules, model: model)
            var n = 0
            for (i, m) in mix.enumerated() {
                if case .success(let e) = decoder.decode(m.value, key: m.key, brokerTime: EventTime(milliseconds: m.timestamp)) {
                    batch.append(PartitionProcessor.Arrival(e, arrivedAt: broker, position: Int64(i)))
                }
                if batch.count == batchSize || i == mix.count - 1 {
                    n += p.process(batch: batch).count
                    batch.removeAll(keepingCapacity: true)
                }
            }
            blackHole(n)
        }
    }

    // The same with the six shipped rules (conditions over features, intents, windowed
    // counts) and the shipped policy, side by side with the one-rule run above.
    Benchmark("core with the shipped rules and policy (2,000 visitors, \(small.count) events)") { benchmark in
        for _ in benchmark.scaledIterations {
            var p = PartitionProcessor(rules: shippedRules, model: model, policy: shippedPolicy)
            var n = 0
            for batch in smallBatches { n += p.process(batch: batch).count }
            blackHole(n)
        }
    }

    Benchmark("core: decoded events → state → features → scores → timers (2,000 visitors, \(small.count) events)") { benchmark in
        for _ in benchmark.scaledIterations {
            var p = PartitionProcessor(rules: rules, model: model)
            var n = 0
            for batch in smallBatches { n += p.process(batch: batch).count }
            blackHole(n)
        }
    }

    let big = Benchmark.Configuration(
        metrics: [.throughput, .wallClock, .custom("bytes per resident visitor", useScalingFactor: false),
                  .custom("bytes per idle visitor", useScalingFactor: false), .custom("resident visitors", useScalingFactor: false)],
        maxDuration: .seconds(60), maxIterations: 3)

    Benchmark("core: 100,000 visitors", configuration: big) { benchmark in
        runCore(medium, benchmark)
    }

    Benchmark("core: 1,000,000 visitors", configuration: big) { benchmark in
        runCore(large, benchmark)
    }

    Benchmark("event count per mix", configuration: .init(metrics: [.custom("events (100k visitors)", useScalingFactor: false), .custom("events (1M visitors)", useScalingFactor: false), .custom("visitor state stride, bytes", useScalingFactor: false)], maxIterations: 1)) { benchmark in
        benchmark.measurement(.custom("events (100k visitors)", useScalingFactor: false), medium.count)
        benchmark.measurement(.custom("events (1M visitors)", useScalingFactor: false), large.count)
        benchmark.measurement(.custom("visitor state stride, bytes", useScalingFactor: false), PartitionProcessor.visitorStateStride)
    }
}
