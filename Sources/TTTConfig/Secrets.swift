/// Credentials the daemon needs, kept apart from the rest of the configuration so that printing a
/// configuration never prints them: `description` and `debugDescription` name the secrets present, not their values.
public struct Secrets: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public var databasePassword: String?
    public var transcriptionAPIKey: String?
    public var analysisAPIKey: String?
    public var smtpPassword: String?
    /// A logged-in TikTok cookie string, for age-restricted lives.
    public var tiktokSession: String?
    /// By webhook name.
    public var webhookSecrets: [String: String]

    public init(databasePassword: String? = nil, transcriptionAPIKey: String? = nil, analysisAPIKey: String? = nil,
                smtpPassword: String? = nil, tiktokSession: String? = nil, webhookSecrets: [String: String] = [:]) {
        self.databasePassword = databasePassword
        self.transcriptionAPIKey = transcriptionAPIKey
        self.analysisAPIKey = analysisAPIKey
        self.smtpPassword = smtpPassword
        self.tiktokSession = tiktokSession
        self.webhookSecrets = webhookSecrets
    }

    /// The names (as credential files are named) of the secrets that have a value.
    public var presentNames: [String] {
        var names: [String] = []
        if databasePassword != nil { names.append(SecretName.databasePassword) }
        if transcriptionAPIKey != nil { names.append(SecretName.transcriptionAPIKey) }
        if analysisAPIKey != nil { names.append(SecretName.analysisAPIKey) }
        if smtpPassword != nil { names.append(SecretName.smtpPassword) }
        if tiktokSession != nil { names.append(SecretName.tiktokSession) }
        names += webhookSecrets.keys.sorted().map { SecretName.webhookPrefix + $0 }
        return names
    }

    public var description: String {
        let names = presentNames
        return names.isEmpty ? "no secrets" : "secrets: " + names.joined(separator: ", ")
    }

    public var debugDescription: String { "Secrets(\(presentNames.joined(separator: ", ")))" }
}

/// The names of secrets: credential file names in `$CREDENTIALS_DIRECTORY`, and keys of the
/// development-only `secrets:` section of the file.
enum SecretName {
    static let databasePassword = "database_password"
    static let groqAPIKey = "groq_api_key"
    static let transcriptionAPIKey = "transcription_api_key"
    static let analysisAPIKey = "analysis_api_key"
    static let smtpPassword = "smtp_password"
    static let tiktokSession = "tiktok_session"
    static let webhookPrefix = "webhook_secret_"

    static let fixed = [databasePassword, groqAPIKey, transcriptionAPIKey, analysisAPIKey, smtpPassword, tiktokSession]
}
