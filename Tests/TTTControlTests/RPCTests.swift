import Foundation
import Testing
import TTTControl
import TTTDomain

@Suite("control protocol messages")
struct RPCTests {
    @Test("requests encode as JSON-RPC 2.0 with snake_case params")
    func requestShape() throws {
        let request = RPCRequest(id: .number(7), method: "accounts.import",
                                 params: AccountsImportParams(lines: ["alice"], firstLine: 3))
        let object = try JSONSerialization.jsonObject(with: RPC.makeEncoder().encode(request)) as? [String: Any]
        #expect(object?["jsonrpc"] as? String == "2.0")
        #expect(object?["id"] as? Int == 7)
        #expect(object?["method"] as? String == "accounts.import")
        #expect((object?["params"] as? [String: Any])?["first_line"] as? Int == 3)
    }

    @Test("errors carry a numeric code, a message and a stable data.code")
    func errorShape() throws {
        let failure = RPCFailure(id: .string("x"), error: ControlError(.invalidUsername, "bad", problems: ["a"]))
        let object = try JSONSerialization.jsonObject(with: RPC.makeEncoder().encode(failure)) as? [String: Any]
        let error = object?["error"] as? [String: Any]
        #expect(error?["code"] as? Int == -32602)
        #expect(error?["message"] as? String == "bad")
        #expect((error?["data"] as? [String: Any])?["code"] as? String == "invalid_username")
        let decoded = try RPC.makeDecoder().decode(RPCFailure.self, from: RPC.makeEncoder().encode(failure))
        #expect(decoded.error.kind == .invalidUsername)
    }

    @Test("every stable code is distinct and JSON-RPC's reserved ones are used where they apply")
    func codes() {
        #expect(Set(ControlErrorCode.allCases.map(\.rawValue)).count == ControlErrorCode.allCases.count)
        #expect(ControlErrorCode.parseError.rpcCode == -32700)
        #expect(ControlErrorCode.methodNotFound.rpcCode == -32601)
    }

    @Test("account rows: every key of INTERFACES.md, null when never checked")
    func accountInfoKeys() throws {
        let account = Account(username: try Username(validating: "alice"), labels: ["bf"],
                              addedAt: Date(timeIntervalSince1970: 1_790_000_000), addedBy: "root",
                              live: false, lastCheckedAt: nil, checkState: nil)
        let object = try JSONSerialization.jsonObject(with: RPC.makeEncoder().encode(AccountInfo(account))) as? [String: Any]
        #expect(Set(object?.keys.map { $0 } ?? []) == ["username", "labels", "added_at", "live", "last_checked_at", "check_state"])
        #expect(object?["last_checked_at"] is NSNull)
        #expect(object?["check_state"] as? String == "unknown")
        #expect(object?["added_at"] as? String == "2026-09-21T14:13:20.000Z")
    }

    @Test("timestamps round-trip with milliseconds")
    func timestamps() {
        let date = Date(timeIntervalSince1970: 1_790_000_000.125)
        let text = Timestamp.format(date)
        #expect(text == "2026-09-21T14:13:20.125Z")
        #expect(abs((Timestamp.parse(text)?.timeIntervalSince1970 ?? 0) - 1_790_000_000.125) < 0.001)
    }
}
