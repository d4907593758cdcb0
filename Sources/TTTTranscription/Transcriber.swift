import Foundation
import TTTDomain

/// One window to transcribe.
public struct TranscriptionRequest: Sendable {
    /// A WAV file (`WAV.encode`).
    public var wav: [UInt8]
    public var model: String
    /// ISO-639-1 code to force, or nil to let the ASR detect it.
    public var language: String?

    public init(wav: [UInt8], model: String, language: String?) {
        self.wav = wav
        self.model = model
        self.language = language
    }
}

/// A segment of `verbose_json`, with the numbers the hallucination filter reads.
public struct TranscriptSegment: Sendable, Equatable, Codable {
    public var start: Double
    public var end: Double
    public var text: String
    public var avgLogprob: Double?
    public var compressionRatio: Double?
    public var noSpeechProb: Double?

    public init(start: Double, end: Double, text: String, avgLogprob: Double? = nil,
                compressionRatio: Double? = nil, noSpeechProb: Double? = nil) {
        self.start = start
        self.end = end
        self.text = text
        self.avgLogprob = avgLogprob
        self.compressionRatio = compressionRatio
        self.noSpeechProb = noSpeechProb
    }

    enum CodingKeys: String, CodingKey {
        case start, end, text
        case avgLogprob = "avg_logprob"
        case compressionRatio = "compression_ratio"
        case noSpeechProb = "no_speech_prob"
    }
}

public struct TranscriptionResult: Sendable, Equatable {
    public var text: String
    /// ISO-639-1 code (`WhisperLanguage.code(for:)`), nil when the ASR did not say.
    public var language: String?
    public var languageProbability: Double?
    /// Seconds of audio, as the ASR measured it.
    public var duration: Double?
    public var segments: [TranscriptSegment]

    public init(text: String, language: String? = nil, languageProbability: Double? = nil,
                duration: Double? = nil, segments: [TranscriptSegment] = []) {
        self.text = text
        self.language = language
        self.languageProbability = languageProbability
        self.duration = duration
        self.segments = segments
    }
}

public enum TranscriptionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Worth retrying later: timeout, connection error, 5xx, 429 (with Retry-After when given), an
    /// HTML page or malformed JSON in a 2xx; also 401/403/404 and redirects, which are configuration
    /// problems: retried after a long delay so that no window is lost while an admin fixes them.
    case retriable(reason: String, retryAfter: Duration?)
    /// Retrying the same audio cannot help (400, 413, 415, 422 and the other 4xx).
    case rejected(reason: String)

    public var reason: String {
        switch self {
        case .retriable(let reason, _), .rejected(let reason): reason
        }
    }

    public var description: String {
        switch self {
        case .retriable(let reason, nil): "retriable: \(reason)"
        case .retriable(let reason, let after?): "retriable after \(Int(after.asSeconds.rounded(.up))) s: \(reason)"
        case .rejected(let reason): "rejected: \(reason)"
        }
    }
}

/// An OpenAI-compatible speech recognition endpoint, or a test double.
public protocol Transcriber: Sendable {
    func transcribe(_ request: TranscriptionRequest) async throws(TranscriptionError) -> TranscriptionResult
}

/// Whisper's languages. OpenAI's `verbose_json` names the language ("french"); faster-whisper
/// servers give the code ("fr"): both become the code.
public enum WhisperLanguage {
    /// The ISO-639-1 code (Whisper's code for the few languages without one: `haw`, `yue`) of a
    /// language name or code; an unknown value comes back lower-cased, nil when blank.
    public static func code(for value: String) -> String? {
        var key = value.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        guard !key.isEmpty else { return nil }
        if let dash = key.firstIndex(where: { $0 == "-" || $0 == "_" }), key.distance(from: key.startIndex, to: dash) <= 3 {
            key = String(key[..<dash])   // "fr-FR", "pt_BR"
        }
        if key == "jw" { return "jv" }   // Whisper's code for Javanese
        if codes.contains(key) { return key }
        return byName[key] ?? key
    }

    static let names: [String: String] = [
        "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian",
        "ko": "korean", "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish",
        "pl": "polish", "ca": "catalan", "nl": "dutch", "ar": "arabic", "sv": "swedish",
        "it": "italian", "id": "indonesian", "hi": "hindi", "fi": "finnish", "vi": "vietnamese",
        "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay", "cs": "czech",
        "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
        "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian",
        "la": "latin", "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak",
        "te": "telugu", "fa": "persian", "lv": "latvian", "bn": "bengali", "sr": "serbian",
        "az": "azerbaijani", "sl": "slovenian", "kn": "kannada", "et": "estonian", "mk": "macedonian",
        "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian", "ne": "nepali",
        "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
        "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer",
        "sn": "shona", "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan",
        "ka": "georgian", "be": "belarusian", "tg": "tajik", "sd": "sindhi", "gu": "gujarati",
        "am": "amharic", "yi": "yiddish", "lo": "lao", "uz": "uzbek", "fo": "faroese",
        "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk", "mt": "maltese",
        "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan", "tl": "tagalog",
        "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala",
        "ha": "hausa", "ba": "bashkir", "jv": "javanese", "su": "sundanese", "yue": "cantonese",
    ]
    static let codes = Set(names.keys)
    /// Names, and the aliases Whisper accepts for some of them.
    static let byName: [String: String] = {
        var table = Dictionary(uniqueKeysWithValues: names.map { ($1, $0) })
        let aliases = [
            "burmese": "my", "valencian": "ca", "flemish": "nl", "haitian": "ht", "letzeburgesch": "lb",
            "pushto": "ps", "panjabi": "pa", "moldavian": "ro", "moldovan": "ro", "sinhalese": "si",
            "castilian": "es", "mandarin": "zh",
        ]
        table.merge(aliases) { current, _ in current }
        return table
    }()
}
