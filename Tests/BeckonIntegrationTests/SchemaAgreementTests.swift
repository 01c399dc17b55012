import BeckonCore
import BeckonTestSupport
import Foundation
import Testing

/// One truth for validity: Beckon's decoder and an independent JSON Schema validator
/// (Python jsonschema, draft 2020-12) must agree on every file in Schemas/examples.
@Suite("Schemas and the decoder agree")
struct SchemaAgreementTests {
    let root = TestServices.root

    var exampleFiles: [String] {
        get throws {
            try FileManager.default.contentsOfDirectory(atPath: root + "/Schemas/examples").filter { $0.hasSuffix(".json") }.sorted()
        }
    }

    /// Runs scripts/validate_examples.py and returns file name → (valid, path).
    func pythonVerdicts(_ files: [String], decisions: Bool = false) throws -> [String: (valid: Bool, path: String?)] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: root + "/.deps/venv/bin/python")
        process.arguments = [root + "/scripts/validate_examples.py"] + (decisions ? ["--decision"] : []) + [root + "/Schemas"]
            + files.map { $0.hasPrefix("/") ? $0 : root + "/Schemas/examples/" + $0 }
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        guard case .object(let members) = try JSONParser.parse(Array(data)) else { throw TestServicesError("validator printed no object") }
        var verdicts: [String: (Bool, String?)] = [:]
        for (path, verdict) in members {
            let name = URL(fileURLWithPath: path).lastPathComponent
            guard case .bool(let valid)? = verdict["valid"] else { continue }
            if case .string(let p)? = verdict["path"] { verdicts[name] = (valid, p) } else { verdicts[name] = (valid, nil) }
        }
        return verdicts
    }

    @Test func everyExampleGetsTheSameVerdictFromBoth() throws {
        let files = try exampleFiles
        let manifest = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: root + "/Schemas/examples-expected.json"))))
        let python = try pythonVerdicts(files)
        #expect(python.count == files.count)
        let decoder = EventDecoder()
        for file in files {
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: root + "/Schemas/examples/" + file)))
            let beckon = decoder.decode(bytes, key: nil, brokerTime: nil)
            let expected = try #require(manifest[file], "\(file) is not in examples-expected.json")
            let expectedValid = expected["valid"] == .bool(true)
            switch beckon {
            case .success:
                #expect(expectedValid, "\(file): Beckon accepts what must be refused (\(String(describing: expected["reason"])))")
            case .failure(let failure):
                #expect(!expectedValid, "\(file): Beckon refuses a valid example: \(failure)")
                #expect(expected["path"] == .string(failure.path), "\(file): Beckon names \(failure.path) for: \(failure.message)")
            }
            #expect(python[file]?.valid == expectedValid, "\(file): jsonschema says \(String(describing: python[file]))")
        }
    }

    @Test func decisionsAsPublishedMatchTheDecisionSchema() throws {
        let rules = try RuleSet.load(files: [("pay.yaml", """
            id: pay
            when:
              dwell:
                page: /checkout/payment
                at_least: 45s
            action: coupon
            payload:
              message: "Café \\"10%\\" off"
              code: SAVE10
            """)]).get()
        var processor = PartitionProcessor(rules: rules)
        let t = EventTime.parseRFC3339("2026-03-02T10:00:00Z")!
        _ = processor.process(Event(id: "e1", type: .pageView, visitorID: "v1", time: t, userID: "u1", pagePath: "/checkout/payment"), arrivedAt: t)
        _ = processor.process(Event(id: "e2", type: .pageView, visitorID: "v2", time: t, channel: "app", pagePath: "/checkout/payment"), arrivedAt: t)
        let decisions = processor.advanceIdle(wallNow: t + .minutes(5))
        #expect(decisions.count == 2)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("beckon-decisions-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var files: [String] = []
        for d in decisions {
            let file = dir + "/\(d.visitorID).json"
            try Data(d.jsonBytes()).write(to: URL(fileURLWithPath: file))
            files.append(file)
        }
        let verdicts = try pythonVerdicts(files, decisions: true)
        #expect(verdicts.count == 2)
        for (file, verdict) in verdicts { #expect(verdict.valid, "\(file): \(String(describing: verdict.path))") }
        // And the schema does refuse a broken one.
        let broken = dir + "/broken.json"
        try Data(decisions[0].jsonBytes()).write(to: URL(fileURLWithPath: broken))
        var text = try String(contentsOfFile: broken, encoding: .utf8)
        text = text.replacing("\"action\":\"coupon\"", with: "\"action\":\"popup\"")
        try text.write(toFile: broken, atomically: true, encoding: .utf8)
        #expect(try pythonVerdicts([broken], decisions: true)["broken.json"]?.valid == false)
    }

    @Test func everyTypeHasOneValidAndTwoInvalidExamples() throws {
        let files = try exampleFiles
        for type in EventType.allCases {
            #expect(files.contains("\(type.rawValue).valid.json"), "no valid example for \(type.rawValue)")
            #expect(files.filter { $0.hasPrefix("\(type.rawValue).invalid-") }.count >= 2, "fewer than two invalid examples for \(type.rawValue)")
        }
    }

    @Test func theSchemasNameExactlyTheTypesTheDecoderKnows() throws {
        let envelope = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: root + "/Schemas/events/envelope.schema.json"))))
        guard case .array(let names)? = envelope["properties"]?["type"]?["enum"] else { throw TestServicesError("no type enum") }
        #expect(Set(names.compactMap { if case .string(let s) = $0 { s } else { nil } }) == Set(EventType.allCases.map(\.rawValue)))
        for type in EventType.allCases {
            #expect(FileManager.default.fileExists(atPath: root + "/Schemas/events/\(type.rawValue).schema.json"))
        }
    }
}
