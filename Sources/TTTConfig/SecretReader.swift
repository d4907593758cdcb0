import Configuration

/// Resolves secrets by name through one ConfigReader whose providers are in order of precedence:
/// the credentials directory (systemd's `$CREDENTIALS_DIRECTORY`, the production way), then the
/// `TTTD_SECRETS_*` variables, then the webhooks' own `secret` keys, then the file's `secrets:`
/// section (the last three for development only).
struct SecretReader {
    let reader: ConfigReader

    init(credentials: DirectoryFilesProvider?, environment: any ConfigProvider,
         webhookSecrets: [String: String], file: InMemoryProvider) {
        var providers: [any ConfigProvider] = []
        if let credentials {
            // Credential files are named after the secret alone: `secrets.groq_api_key` → `groq_api_key`.
            providers.append(credentials.mapKeys { key in
                AbsoluteConfigKey(Array(key.components.dropFirst()), context: key.context)
            })
        }
        providers.append(environment)
        let inline = Dictionary(uniqueKeysWithValues: webhookSecrets.map { name, secret in
            (AbsoluteConfigKey(["secrets", SecretName.webhookPrefix + name]), ConfigValue(.string(secret), isSecret: true))
        })
        providers.append(InMemoryProvider(name: "webhook secrets", values: inline))
        providers.append(file)
        reader = ConfigReader(providers: providers)
    }

    /// The secret, without surrounding whitespace (credential files usually end with a newline).
    func value(_ name: String) -> String? {
        guard let text = reader.string(forKey: ConfigKey(["secrets", name]), isSecret: true) else { return nil }
        let trimmed = text.trimmingWhitespace()
        return trimmed.isEmpty ? nil : trimmed
    }

    func secrets(databaseURL: DatabaseURL?, webhookNames: [String]) -> Secrets {
        let groq = value(SecretName.groqAPIKey)
        var webhookSecrets: [String: String] = [:]
        for name in webhookNames {
            webhookSecrets[name] = value(SecretName.webhookPrefix + name)
        }
        return Secrets(
            databasePassword: value(SecretName.databasePassword) ?? databaseURL?.password,
            transcriptionAPIKey: value(SecretName.transcriptionAPIKey) ?? groq,
            analysisAPIKey: value(SecretName.analysisAPIKey) ?? groq,
            smtpPassword: value(SecretName.smtpPassword),
            tiktokSession: value(SecretName.tiktokSession),
            webhookSecrets: webhookSecrets)
    }
}
