// core-ab ROOT VISITORS RUNS [dwell|shipped]
//
// Runs the core benchmark's workload (the simulator's mix, seed 7, decoded; the shipped
// intent model of ROOT; one dwell rule, or with `shipped` ROOT's rules and policy) RUNS
// times through a fresh PartitionProcessor and prints one line: the best events/s, and per
// visitor in memory at the end of the last run, the heap bytes the processor holds (the
// allocator's bytes in use, after minus before) and the growth of the process's RSS; and
// the heap bytes per visitor once five quiet minutes have passed (every visitor idle); and
// how fast the visitors are then evicted, forty minutes on (every session has ended), with
// how many of them were brought back from compact form for it.
//
// SPAN_MINUTES=N in the environment spreads the sessions' starts over N minutes instead of
// the benchmark's 10: with N well past the session gap (30 minutes), sessions end and their
// visitors are evicted while events flow, as in a stream that runs for days, and the
// line also says how many were evicted during the run.
//
// SCENARIOS=1 adds the simulator's other journeys (`Simulator.Configuration.scenarios`):
// clicks, form errors, chat messages and a buyer who comes back 35 minutes later, events
// the benchmark's mix has none of.
//
// STATS=1 prints the processor's counters after each run (to standard error).
//
// BATCH=N (where the core has it) feeds the events through `process(batch:)` in batches of
// N, as the pipeline does, instead of one `process` call each.
//
// COMPACT_AFTER_SECONDS=N sets `EngineConfiguration.compactAfter` (default 60 s; 0: never
// compact). With 0 no visitor is frozen, so the difference from the default is what the
// freezes cost in all (encoding, allocation, the moves in the hot buffer): an upper bound
// on what a cheaper freeze could gain. The idle heap per visitor is then the inline state's.
//
// LONG_IDS=1 gives every event id and visitor id the shape trackers send: a 36-character
// UUID (the simulator's are at most 15 bytes, which Swift keeps inside the `String` value,
// so copying them costs no reference counting; a 36-byte one is a heap object, retained
// and released atomically). Each event gets its own string objects, as from the decoder.
#if canImport(Glibc)
import Glibc
#endif
import BeckonCore
import CHeapInUse
import Foundation

@_silgen_name("malloc_trim") func mallocTrim(_ pad: Int) -> Int32

/// Minor page faults of this process so far (each a page the kernel zeroed or mapped).
func minorFaults() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_minflt
}

/// The allocator's bytes in use, and the processor's hot states where they are a mapping
/// of their own (not in the allocator's heap).
func heapInUse(_ processor: PartitionProcessor) -> Int {
    #if BECKON_REGION
    return Int(heap_in_use()) + processor.hotVisitorBufferBytes
    #else
    return Int(heap_in_use())
    #endif
}

func residentBytes() -> Int {
    guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
          let pages = statm.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

let arguments = CommandLine.arguments
guard arguments.count == 4 || arguments.count == 5, let visitors = Int(arguments[2]), let runs = Int(arguments[3]), runs > 0,
      arguments.count == 4 || ["dwell", "shipped"].contains(arguments[4]) else {
    FileHandle.standardError.write(Data("usage: core-ab ROOT VISITORS RUNS [dwell|shipped]\n".utf8))
    exit(2)
}
let shipped = arguments.count == 5 && arguments[4] == "shipped"
let modelPath = arguments[1] + "/Rules/models/intent.yaml"
let model = try IntentModel.load(file: modelPath, text: String(contentsOfFile: modelPath, encoding: .utf8)).get()
let dwellRule = try RuleSet.load(files: [("pay.yaml", """
    id: pay
    when:
      dwell:
        page: /checkout/payment
        at_least: 45s
    action: offer_help
    payload:
      message: hi
    """)]).get()
let rulesDirectory = arguments[1] + "/Rules"
let (rules, policy): (RuleSet, Policy) = try {
    guard shipped else { return (dwellRule, Policy.standard) }
    let names = try FileManager.default.contentsOfDirectory(atPath: rulesDirectory).filter { $0.hasSuffix(".yaml") && $0 != "policy.yaml" }.sorted()
    let files = try names.map { (name: $0, text: try String(contentsOfFile: rulesDirectory + "/" + $0, encoding: .utf8)) }
    let policy = try Policy.load(file: "policy.yaml", text: String(contentsOfFile: rulesDirectory + "/policy.yaml", encoding: .utf8)).get()
    return (try RuleSet.load(files: files, intents: model.intents.map(\.name)).get(), policy)
}()

var configuration = Simulator.Configuration()
configuration.visitors = visitors
configuration.seed = 7
configuration.badShare = 0
if let span = ProcessInfo.processInfo.environment["SPAN_MINUTES"].flatMap({ Int64($0) }) { configuration.span = .minutes(span) }
configuration.scenarios = ProcessInfo.processInfo.environment["SCENARIOS"] == "1"
let messages = Simulator(configuration).messages()
let decoder = EventDecoder()
/// A UUID-shaped id for `id`, the same for the same `id`, in a string object of its own.
func longID(_ id: String) -> String {
    var h1: UInt64 = 0xcbf2_9ce4_8422_2325, h2: UInt64 = 0x9e37_79b9_7f4a_7c15
    for byte in id.utf8 { h1 = (h1 ^ UInt64(byte)) &* 0x100_0000_01b3; h2 = (h2 &+ UInt64(byte)) &* 0xff51_afd7_ed55_8ccd }
    let hex = Array(String(h1, radix: 16).leftPadded(16) + String(h2, radix: 16).leftPadded(16))
    return String(hex[0..<8]) + "-" + String(hex[8..<12]) + "-4" + String(hex[13..<16]) + "-" + String(hex[16..<20]) + "-" + String(hex[20..<32])
}
extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
let longIDs = ProcessInfo.processInfo.environment["LONG_IDS"] == "1"
let events = messages.compactMap { message -> Event? in
    guard var event = try? decoder.decode(message.value, key: message.key, brokerTime: EventTime(milliseconds: message.timestamp)).get() else { return nil }
    if longIDs { event.id = longID(event.id); event.visitorID = longID(event.visitorID) }
    return event
}
let broker = EventTime(milliseconds: messages.last!.timestamp)
#if BECKON_BATCH
// BATCH=N: the events in batches of N through `process(batch:)`, as the pipeline does (its
// batches are up to `run.batch_size`, 5,000 by default). `scripts/core-ab.sh` defines
// BECKON_BATCH for a side whose core has `process(batch:)`.
let batchSize = ProcessInfo.processInfo.environment["BATCH"].flatMap { Int($0) } ?? 0
let batches: [[PartitionProcessor.Arrival]] = batchSize > 0
    ? stride(from: 0, to: events.count, by: batchSize).map { start in events[start..<min(start + batchSize, events.count)].map { PartitionProcessor.Arrival($0, arrivedAt: broker) } }
    : []
#endif

var best = 0.0
var bytesPerVisitor = 0
var heapPerVisitor = 0
var idleHeapPerVisitor = 0
var idleVisitors = 0
var decisions = 0
var evictions = 0.0
var thawedForEviction = 0
var evictedDuringRun = 0
for _ in 0..<runs {
    _ = mallocTrim(0)
    let before = residentBytes()
    let heapBefore = Int(heap_in_use())
    var engine = EngineConfiguration()
    if let s = ProcessInfo.processInfo.environment["COMPACT_AFTER_SECONDS"].flatMap({ Int64($0) }) { engine.compactAfter = s > 0 ? .seconds(s) : nil }
    var processor = PartitionProcessor(rules: rules, model: model, policy: policy, configuration: engine)
    let faultsBefore = minorFaults()
    let peakProbe = ProcessInfo.processInfo.environment["PEAK"] == "1"
    var peakHot = 0
    let start = Date()
    #if BECKON_BATCH
    if batches.isEmpty {
        for event in events { decisions += processor.process(event, arrivedAt: broker).count }
    } else {
        for batch in batches { decisions += processor.process(batch: batch).count; if peakProbe { peakHot = max(peakHot, processor.visitorCount - processor.compactVisitorCount) } }
    }
    #else
    for event in events { decisions += processor.process(event, arrivedAt: broker).count }
    #endif
    best = max(best, Double(events.count) / Date().timeIntervalSince(start))
    let faultsDuring = minorFaults() - faultsBefore
    evictedDuringRun = processor.statistics.evictedVisitors
    if ProcessInfo.processInfo.environment["STATS"] == "1" {
        let s = processor.statistics
        FileHandle.standardError.write(Data("events \(s.events), timers fired \(s.timersFired), compacted \(s.compacted), restored \(s.restored), held now \(processor.heldEvents), hot \(processor.visitorCount - processor.compactVisitorCount) of \(processor.visitorCount), \(faultsDuring) page faults during the run, peak hot \(peakHot)\n".utf8))
    }
    bytesPerVisitor = (residentBytes() - before) / max(processor.visitorCount, 1)
    heapPerVisitor = (heapInUse(processor) - heapBefore) / max(processor.visitorCount, 1)
    // Then five quiet minutes (less than the session gap): every visitor is idle.
    _ = processor.advanceIdle(wallNow: events.map(\.time).max()! + .minutes(5))
    idleHeapPerVisitor = (heapInUse(processor) - heapBefore) / max(processor.visitorCount, 1)
    idleVisitors = processor.visitorCount
    let restoredBefore = processor.statistics.restored
    let evictStart = Date()
    _ = processor.advanceIdle(wallNow: events.map(\.time).max()! + .minutes(40))
    evictions = max(evictions, Double(processor.statistics.evictedVisitors) / Date().timeIntervalSince(evictStart))
    thawedForEviction = processor.statistics.restored - restoredBefore
    withExtendedLifetime(processor) {}
}
print("\(Int(best)) events/s  heap \(heapPerVisitor) B/visitor  RSS \(bytesPerVisitor) B/visitor  idle heap \(idleHeapPerVisitor) B/visitor (\(idleVisitors) visitors)  (\(events.count) events, \(visitors) visitors, best of \(runs), \(decisions / runs) decisions)  evictions \(Int(evictions))/s (\(thawedForEviction) thawed)\(evictedDuringRun > 0 ? "  \(evictedDuringRun) evicted during the run" : "")")
