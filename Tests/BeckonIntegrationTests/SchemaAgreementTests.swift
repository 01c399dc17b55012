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
    func pythonVerdicts(_ files: [String]) throws -> [String: (valid: Bool, path: String?)] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: root + "/.deps/venv/bin/python")
        process.arguments = [root + "/scripts/validate_examples.py", root + "/Schemas"] + files.map { root + "/Schemas/examples/" + $0 }
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
