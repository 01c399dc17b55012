// Fuzzes the event decoder with mutated bytes from a seed corpus (Schemas/examples).
//
// Deterministic (seeded), so a failing run can be repeated. It fails when an input takes
// longer than --max-ms to decode (a hang: an input over the limit is timed three more
// times, and fails only if it is over every time, since on a shared machine a thread
// can be held off the CPU for a few hundred ms while decoding takes microseconds),
// when peak memory grows past --max-rss-mb (no
// unbounded allocation), or when decoding crashes the process (the exit status says so).
// Every input is also decoded by the reference (tree-based) decoder, and the two must
// agree exactly: the same event, or the same refusal (code, path and message).
import BeckonCore
import Foundation

var inputs = 1_000_000
var seed: UInt64 = 1
var corpusDirectory = "Schemas/examples"
var maxMilliseconds = 50.0
var maxRSSMegabytes = 512
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--inputs": inputs = Int(arguments.next() ?? "") ?? inputs
    case "--seed": seed = UInt64(arguments.next() ?? "") ?? seed
    case "--corpus": corpusDirectory = arguments.next() ?? corpusDirectory
    case "--max-ms": maxMilliseconds = Double(arguments.next() ?? "") ?? maxMilliseconds
    case "--max-rss-mb": maxRSSMegabytes = Int(arguments.next() ?? "") ?? maxRSSMegabytes
    default:
        print("usage: beckon-fuzz [--inputs N] [--seed S] [--corpus DIR] [--max-ms MS] [--max-rss-mb MB]")
        exit(argument == "--help" ? 0 : 2)
    }
}

let files = (try? FileManager.default.contentsOfDirectory(atPath: corpusDirectory).filter { $0.hasSuffix(".json") }.sorted()) ?? []
var corpus = files.compactMap { FileManager.default.contents(atPath: corpusDirectory + "/" + $0).map { Array($0) } }
guard !corpus.isEmpty else {
    print("no seed corpus in \(corpusDirectory)")
    exit(2)
}
// Tokens that steer mutations into the decoder's interesting corners.
let dictionary: [[UInt8]] = [
    "{", "}", "[", "]", "\"", ":", ",", "\\u0000", "\\ud800", "\\\"", "null", "true", "-0", "1e999", "-1", "0.5",
    "\"event_id\"", "\"visitor_id\"", "\"type\"", "\"ts\"", "\"page\"", "\"properties\"", "\"page_view\"",
    "\"2026-02-30T10:00:00Z\"", "\"9999-12-31T23:59:59.999+23:59\"", "\u{FEFF}", "\u{7F}", "中文",
].map { Array($0.utf8) } + [[0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80]]

var rng = SeededGenerator(seed: seed)
@MainActor func pick(_ n: Int) -> Int { Int(rng.next() % UInt64(max(n, 1))) }

@MainActor func mutate(_ input: [UInt8]) -> [UInt8] {
    var bytes = input
    for _ in 0...pick(4) {
        switch pick(10) {
        case 0 where !bytes.isEmpty: bytes[pick(bytes.count)] ^= UInt8(1 << pick(8))  // flip a bit
        case 1 where !bytes.isEmpty: bytes[pick(bytes.count)] = UInt8(truncatingIfNeeded: rng.next())  // random byte
        case 2 where !bytes.isEmpty: bytes.remove(at: pick(bytes.count))
        case 3: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: pick(bytes.count + 1))
        case 4 where !bytes.isEmpty: bytes = Array(bytes.prefix(pick(bytes.count)))  // truncate
        case 5: bytes.insert(contentsOf: dictionary[pick(dictionary.count)], at: pick(bytes.count + 1))
        case 6 where bytes.count > 2:  // duplicate a chunk
            let start = pick(bytes.count), length = pick(min(64, bytes.count - start)) + 1
            bytes.insert(contentsOf: bytes[start..<min(bytes.count, start + length)], at: pick(bytes.count + 1))
        case 7:  // splice with another corpus entry
            let other = corpus[pick(corpus.count)]
            bytes = Array(bytes.prefix(pick(bytes.count + 1))) + Array(other.suffix(pick(other.count + 1)))
        case 8:  // deep nesting
            let depth = pick(200)
            bytes.insert(contentsOf: [UInt8](repeating: UInt8(ascii: pick(2) == 0 ? "[" : "{"), count: depth), at: pick(bytes.count + 1))
        default:  // a long run of one byte
            bytes.insert(contentsOf: [UInt8](repeating: UInt8(truncatingIfNeeded: rng.next()), count: pick(4096)), at: pick(bytes.count + 1))
        }
    }
    return bytes
}

func peakRSSMegabytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Int(usage.ru_maxrss / 1024)
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1_000_000
}

let decoder = EventDecoder()
let broker = EventTime.parseRFC3339("2026-03-02T10:00:00Z")!
var accepted = 0
var reasons: [String: Int] = [:]
var slowest = 0.0
/// Inputs over the limit once and timed again (the machine paused).
var retimed = 0
let started = now()
for i in 0..<inputs {
    let base = corpus[pick(corpus.count)]
    let input = mutate(base)
    let t = now()
    let key = pick(4) == 0 ? "v-42" : nil
    let brokerTime = pick(2) == 0 ? broker : nil
    let result = decoder.decode(input, key: key, brokerTime: brokerTime)
    let elapsed = now() - t
    let reference = decoder.referenceDecode(input, key: key, brokerTime: brokerTime)
    guard result == reference else {
        print("FAIL: input \(i): the decoder says \(result), the reference decoder says \(reference); bytes (base64): \(Data(input).base64EncodedString())")
        exit(1)
    }
    var time = elapsed
    if time > maxMilliseconds {
        // A slow input is slow every time; a pause of the machine is not.
        retimed += 1
        for _ in 0..<3 where time > maxMilliseconds {
            let t = now()
            _ = decoder.decode(input, key: key, brokerTime: brokerTime)
            time = min(time, now() - t)
        }
        if time > maxMilliseconds {
            print("FAIL: input \(i) took \(time) ms at best of four (limit \(maxMilliseconds)); bytes (base64): \(Data(input).base64EncodedString())")
            exit(1)
        }
    }
    slowest = max(slowest, time)
    switch result {
    case .success(let event):
        accepted += 1
        _ = event
        // Keep interesting accepted inputs as new seeds (bounded).
        if corpus.count < 2000 && pick(100) == 0 { corpus.append(input) }
    case .failure(let failure):
        reasons[failure.code, default: 0] += 1
    }
    if (i + 1) % 200_000 == 0 {
        let rss = peakRSSMegabytes()
        print("  \(i + 1) inputs, \(accepted) accepted, slowest \(String(format: "%.2f", slowest)) ms, peak RSS \(rss) MB")
        if rss > maxRSSMegabytes {
            print("FAIL: peak RSS \(rss) MB over the limit \(maxRSSMegabytes) MB")
            exit(1)
        }
    }
}
let seconds = (now() - started) / 1000
print("fuzzed \(inputs) inputs in \(String(format: "%.1f", seconds)) s: \(accepted) accepted, refused by reason: "
      + reasons.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
print("no crash, no hang (slowest \(String(format: "%.2f", slowest)) ms\(retimed > 0 ? ", \(retimed) timed again after a pause" : "")), peak RSS \(peakRSSMegabytes()) MB")
