import Testing
@testable import TTTAlerts

@Suite struct WebhookSignerTests {
    /// Standard Webhooks' published test vector (the reference libraries' tests).
    @Test func matchesTheStandardWebhooksTestVector() throws {
        let signer = try WebhookSigner(secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        let signature = signer.signature(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1614265330,
                                         body: Array(#"{"test": 2432232314}"#.utf8))
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    @Test func acceptsTheSecretWithoutItsPrefix() throws {
        let signer = try WebhookSigner(secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        #expect(signer.signature(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1614265330,
                                 body: Array(#"{"test": 2432232314}"#.utf8))
                == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    @Test func refusesASecretThatIsNotBase64() {
        #expect(throws: WebhookSigner.SecretError.self) { try WebhookSigner(secret: "whsec_not base64!") }
        #expect(throws: WebhookSigner.SecretError.self) { try WebhookSigner(secret: "whsec_") }
    }
}
