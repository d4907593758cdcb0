import Foundation

/// What the hallucination filter made of a window's transcription.
public struct TranscriptVerdict: Sendable, Equatable {
    /// The text as transcribed (kept even when filtered).
    public var text: String
    /// Detected language code, else nil.
    public var language: String?
    /// Hallucination: keep the text, flag it, never analyse it.
    public var filtered: Bool
    /// Language not understood (ASR.md "Languages of Burkinabè lives").
    public var unreliable: Bool
    /// Short human reasons, e.g. "no_speech_prob 0.93", "closing phrase", "language ha, configured fr".
    public var reasons: [String]
    /// The text without what the filter dropped (segments without speech, repeated sentences):
    /// what the analyzer may read. Empty when filtered.
    public var keptText: String

    public init(text: String, language: String?, filtered: Bool, unreliable: Bool, reasons: [String],
                keptText: String? = nil) {
        self.text = text
        self.language = language
        self.filtered = filtered
        self.unreliable = unreliable
        self.reasons = reasons
        self.keptText = keptText ?? (filtered ? "" : text)
    }
}

/// Whisper's known failures on non-speech (ASR.md): segments it was not hearing speech in, looping
/// decodes, the closing phrases of the subtitles it learnt from, a sentence said again and again.
public enum HallucinationFilter {
    public static func judge(_ result: TranscriptionResult, configuredLanguage: String?, previousText: String?) -> TranscriptVerdict {
        let text = result.text.trimmingCharacters(in: .whitespacesAndNewlines)
        let language = result.language.flatMap(WhisperLanguage.code(for:))
        guard !text.isEmpty else {
            return TranscriptVerdict(text: text, language: language, filtered: true, unreliable: false, reasons: ["empty"])
        }
        var reasons: [String] = []

        // Segments Whisper was not hearing speech in, or decoded into a loop.
        var noSpeech: TranscriptSegment?, looping: TranscriptSegment?
        let kept = result.segments.filter { segment in
            if isNoSpeech(segment) {
                if (noSpeech?.noSpeechProb ?? -1) < (segment.noSpeechProb ?? 0) { noSpeech = segment }
                return false
            }
            if let ratio = segment.compressionRatio, ratio > 2.4 {
                if (looping?.compressionRatio ?? 0) < ratio { looping = segment }
                return false
            }
            return true
        }
        if let noSpeech, let probability = noSpeech.noSpeechProb {
            var reason = "no_speech_prob \(format(probability))"
            if probability < 0.8, let logprob = noSpeech.avgLogprob { reason += ", avg_logprob \(format(logprob))" }
            reasons.append(reason)
        }
        if let ratio = looping?.compressionRatio { reasons.append("compression_ratio \(format(ratio))") }

        // Sentences: a segment boundary ends one too, since loops are often unpunctuated.
        var sentences = (result.segments.isEmpty ? [text] : kept.map(\.text))
            .flatMap(splitSentences)
            .map { (text: $0, key: normalise(stripAnnotations($0))) }
            .filter { !$0.key.isEmpty }
        // A decode stuck in a loop inside one sentence ("à mon site, à mon site, à mon site, …"):
        // keep the words once, drop the repetitions.
        var loop = 0
        sentences = sentences.map { sentence in
            let (collapsed, repeats) = collapseLoops(sentence.text)
            guard repeats > 0 else { return sentence }
            loop = max(loop, repeats)
            return (collapsed, normalise(stripAnnotations(collapsed)))
        }
        if loop > 0 { reasons.append("looping decode (\(loop)×)") }
        let counts = Dictionary(sentences.map { ($0.key, 1) }, uniquingKeysWith: +)
        if let most = counts.values.max(), most >= 3 {
            reasons.append("repeated sentence (\(most)×)")
            sentences.removeAll { counts[$0.key, default: 0] >= 3 }
        }
        if !sentences.isEmpty, sentences.allSatisfy({ closingPhrases.contains($0.key) }) {
            reasons.append("closing phrase")
            sentences.removeAll()
        }
        var keptText = sentences.map(\.text).joined(separator: " ")
        if !keptText.isEmpty, let previousText, normalise(previousText) == normalise(keptText) {
            reasons.append("same as the previous window")
            keptText = ""
        }
        let filtered = keptText.isEmpty
        if filtered && reasons.isEmpty { reasons.append("no words") }

        // Signs that Whisper did not understand the language (Mooré forced into French, …).
        var unreliable = false
        if let language, let configured = configuredLanguage.flatMap(WhisperLanguage.code(for:)), language != configured {
            reasons.append("language \(language), configured \(configured)")
            unreliable = true
        }
        if let probability = result.languageProbability, probability < 0.5 {
            reasons.append("language probability \(format(probability))")
            unreliable = true
        }
        let logprobs = kept.compactMap(\.avgLogprob)
        if !logprobs.isEmpty {
            let mean = logprobs.reduce(0, +) / Double(logprobs.count)
            if mean < -1.0 {
                reasons.append("avg_logprob \(format(mean))")
                unreliable = true
            }
        }
        return TranscriptVerdict(text: text, language: language, filtered: filtered, unreliable: unreliable,
                                 reasons: reasons, keptText: keptText)
    }

    /// Collapses a phrase of 1–8 words said 4 times or more in a row to one occurrence; returns the
    /// text and the most repetitions found (0 when none).
    static func collapseLoops(_ text: String) -> (String, Int) {
        let words = text.split(whereSeparator: \.isWhitespace).map(String.init)
        let keys = words.map { normalise($0) }
        var kept: [String] = []
        var most = 0
        var index = 0
        while index < words.count {
            var best = (length: 0, repeats: 1)
            for length in 1...8 where index + 4 * length <= words.count {
                var repeats = 1
                while index + (repeats + 1) * length <= words.count,
                      keys[(index + repeats * length)..<(index + (repeats + 1) * length)] == keys[index..<(index + length)] {
                    repeats += 1
                }
                if repeats >= 4 && repeats * length > best.length * best.repeats { best = (length, repeats) }
            }
            if best.length > 0 {
                kept += words[index..<(index + best.length)]
                most = max(most, best.repeats)
                index += best.length * best.repeats
            } else {
                kept.append(words[index])
                index += 1
            }
        }
        return (kept.joined(separator: " "), most)
    }

    /// Not speech by Whisper's own measure.
    private static func isNoSpeech(_ segment: TranscriptSegment) -> Bool {
        guard let probability = segment.noSpeechProb else { return false }
        return probability >= 0.8 || (probability > 0.6 && (segment.avgLogprob ?? 0) < -1)
    }

    private static func format(_ value: Double) -> String { String(format: "%.2f", value) }

    // MARK: Text

    /// Sentences end at `.`, `!`, `?` or `…` before a space (so "Amara.org" stays whole) and at line ends.
    static func splitSentences(_ text: String) -> [String] {
        var sentences: [String] = []
        var current = ""
        var ended = false
        for character in text {
            if character.isNewline || (ended && character.isWhitespace) {
                let sentence = current.trimmingCharacters(in: .whitespaces)
                if !sentence.isEmpty { sentences.append(sentence) }
                current = ""
                ended = false
                if character.isNewline { continue }
            }
            current.append(character)
            if ".!?…".contains(character) { ended = true } else if !character.isWhitespace { ended = false }
        }
        let last = current.trimmingCharacters(in: .whitespaces)
        if !last.isEmpty { sentences.append(last) }
        return sentences
    }

    /// Drops sound annotations: "[Musique]", "(rires)", "*applause*".
    static func stripAnnotations(_ text: String) -> String {
        var result = ""
        var closing: Character?
        for character in text {
            if let expected = closing {
                if character == expected { closing = nil }
                continue
            }
            switch character {
            case "[": closing = "]"
            case "(": closing = ")"
            case "*": closing = "*"
            default: result.append(character)
            }
        }
        return result
    }

    /// Lower case, no accents, words separated by single spaces, no punctuation.
    static func normalise(_ text: String) -> String {
        let folded = text.folding(options: [.caseInsensitive, .diacriticInsensitive, .widthInsensitive], locale: nil)
        var result = ""
        var space = false
        for scalar in folded.unicodeScalars {
            if CharacterSet.alphanumerics.contains(scalar) {
                if space && !result.isEmpty { result.append(" ") }
                result.unicodeScalars.append(scalar)
                space = false
            } else {
                space = true
            }
        }
        return result
    }

    /// What Whisper says over silence, noise or music, learnt from the credits of subtitled videos.
    static let closingPhrases: Set<String> = Set([
        "you", "Thank you.", "Thank you very much.", "Thank you so much.", "Thanks.", "Thanks a lot.",
        "Thank you for watching!", "Thanks for watching!", "Thank you so much for watching!",
        "Thank you very much for watching!", "Thank you for watching and see you next time.",
        "Thanks for watching and see you next time.", "Thank you for listening.",
        "Bye.", "Bye bye.", "Goodbye.", "See you next time.", "See you in the next video.",
        "I'll see you in the next video.", "See you later.",
        "Please subscribe.", "Subscribe.", "Please subscribe to my channel.", "Like and subscribe.",
        "Please like and subscribe.", "Don't forget to like and subscribe.",
        "Subtitles by the Amara.org community", "Transcription by CastingWords",
        "Merci.", "Merci beaucoup.", "Merci à tous.", "Merci d'avoir regardé !",
        "Merci d'avoir regardé cette vidéo !", "Merci de nous avoir regardés.", "Merci d'avoir écouté.",
        "Merci de votre attention.", "Merci pour votre attention.", "Merci et à bientôt.",
        "Merci d'avoir suivi cette vidéo.", "Abonnez-vous !", "Abonnez-vous à la chaîne !",
        "N'oubliez pas de vous abonner.", "N'oubliez pas de liker et de vous abonner.",
        "À bientôt.", "À la prochaine.", "Au revoir.",
        "Sous-titres réalisés par la communauté d'Amara.org",
        "Sous-titres réalisés para la communauté d'Amara.org",
        "Sous-titres fait par la communauté d'Amara.org", "Sous-titres : Amara.org",
        "Sous-titrage ST' 501", "Sous-titrage ST 501", "Sous-titrage Société Radio-Canada",
        "Sous-titrage FR", "Sous-titrage MFP.", "Sous-titres par", "Sous-titrage",
    ].map(normalise))
}
