// Broker-free micro-benchmarks of the hot path, over the simulator's realistic mix
// (fixed seed): decode + validate, and the core (state, watermark, timers, rules).
// Each iteration handles every message of the mix once; throughput = messages/iteration
// × iterations/s. Run with `make bench`.
import Benchmark
import BeckonCore

let mix: [SimulatedMessage] = {
    var c = Simulator.Configuration()
    c.visitors = 2000
    c.seed = 7
    c.badShare = 0.01
    return Simulator(c).messages()
}()
let broker = EventTime(milliseconds: mix.last!.timestamp)

let decoded: [Event] = mix.compactMap { m in
    try? EventDecoder().decode(m.value, key: m.key, brokerTime: EventTime(milliseconds: m.timestamp)).get()
}

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

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.throughput, .wallClock, .mallocCountTotal], maxDuration: .seconds(5), maxIterations: 1000)

    Benchmark("decode+validate (\(mix.count) msgs, \(mix.reduce(0) { $0 + $1.value.count } / mix.count) B avg)",
              configuration: .init(scalingFactor: .one)) { benchmark in
        let decoder = EventDecoder()
        for _ in benchmark.scaledIterations {
            var ok = 0
            for m in mix {
                if case .success = decoder.decode(m.value, key: m.key, brokerTime: EventTime(milliseconds: m.timestamp)) { ok += 1 }
            }
            blackHole(ok)
        }
    }

    Benchmark("core: decoded events → state → timers → decisions (\(decoded.count) events)") { benchmark in
        for _ in benchmark.scaledIterations {
            var p = PartitionProcessor(rules: rules)
            var n = 0
            for e in decoded { n += p.process(e, arrivedAt: broker).count }
            blackHole(n)
        }
    }
}
