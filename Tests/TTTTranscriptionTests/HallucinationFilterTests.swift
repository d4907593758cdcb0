import Foundation
import Testing
@testable import TTTTranscription

private func segment(_ text: String, noSpeech: Double = 0.05, logprob: Double = -0.3, ratio: Double = 1.3) -> TranscriptSegment {
    TranscriptSegment(start: 0, end: 1, text: text, avgLogprob: logprob, compressionRatio: ratio, noSpeechProb: noSpeech)
}

private func result(_ segments: [TranscriptSegment], language: String? = "fr", probability: Double? = 0.95) -> TranscriptionResult {
    TranscriptionResult(text: segments.map(\.text).joined(), language: language, languageProbability: probability,
                        duration: 15, segments: segments)
}

private func judge(_ result: TranscriptionResult, configured: String? = "fr", previous: String? = nil) -> TranscriptVerdict {
    HallucinationFilter.judge(result, configuredLanguage: configured, previousText: previous)
}

@Suite struct HallucinationFilterTests {
    @Test func cleanSpeechPasses() {
        let verdict = judge(result([segment(" Bonjour à tous."), segment(" On parle du match de ce soir.")]))
        #expect(verdict == TranscriptVerdict(
            text: "Bonjour à tous. On parle du match de ce soir.", language: "fr", filtered: false,
            unreliable: false, reasons: []))
        #expect(verdict.keptText == verdict.text)
    }

    @Test func emptyText() {
        let verdict = judge(TranscriptionResult(text: "  ", language: "fr"))
        #expect(verdict.filtered && verdict.reasons == ["empty"] && verdict.text.isEmpty)
    }

    @Test func segmentsWithoutSpeechAreDropped() {
        let silent = judge(result([segment(" you", noSpeech: 0.93)]))
        #expect(silent.filtered)
        #expect(silent.text == "you")
        #expect(silent.reasons.contains("no_speech_prob 0.93"))

        let guessing = judge(result([segment(" Il faut partir.", noSpeech: 0.65, logprob: -1.2)]))
        #expect(guessing.filtered)
        #expect(guessing.reasons.contains("no_speech_prob 0.65, avg_logprob -1.20"))

        let confident = judge(result([segment(" Il faut partir.", noSpeech: 0.65, logprob: -0.4)]))
        #expect(!confident.filtered && confident.reasons.isEmpty)

        let mixed = judge(result([segment(" Ils vont payer."), segment(" Merci.", noSpeech: 0.9)]))
        #expect(!mixed.filtered)
        #expect(mixed.keptText == "Ils vont payer.")
        #expect(mixed.text == "Ils vont payer. Merci.")
    }

    @Test func loopingDecodeIsAHallucination() {
        let verdict = judge(result([segment(" la la la la la la la la la la la la", ratio: 2.61)]))
        #expect(verdict.filtered)
        #expect(verdict.reasons.contains("compression_ratio 2.61"))
        #expect(!judge(result([segment(" Une phrase normale.", ratio: 2.4)])).filtered)
    }

    @Test(arguments: [
        "Thank you for watching", "Thanks for watching!", " you", "THANK YOU.",
        "Sous-titres réalisés par la communauté d'Amara.org", "SOUS-TITRES REALISES PAR LA COMMUNAUTE D’AMARA.ORG",
        "Merci d'avoir regardé.", "Merci d’avoir regardé cette vidéo !", "Sous-titrage ST' 501", "Abonnez-vous !",
        "Merci. Abonnez-vous !", "Thank you. Bye.",
    ])
    func closingPhraseAloneIsFiltered(_ text: String) {
        let verdict = judge(TranscriptionResult(text: text, language: "fr"))
        #expect(verdict.filtered, "\(text)")
        #expect(verdict.reasons == ["closing phrase"])
        #expect(verdict.text == text.trimmingCharacters(in: .whitespaces))
    }

    @Test func closingPhraseWithSpeechIsKept() {
        let verdict = judge(TranscriptionResult(text: "Il faut les chasser d'ici. Merci d'avoir regardé.", language: "fr"))
        #expect(!verdict.filtered && verdict.reasons.isEmpty)
    }

    @Test func repeatedSentence() {
        let loop = judge(result([segment(" Je suis là."), segment(" Je suis là."), segment(" Je suis là !")]))
        #expect(loop.filtered)
        #expect(loop.reasons == ["repeated sentence (3×)"])

        // Loops are often unpunctuated: a segment is a sentence.
        let unpunctuated = judge(result(Array(repeating: segment(" et puis on va"), count: 4)))
        #expect(unpunctuated.filtered)

        let partly = judge(TranscriptionResult(text: "Bonjour. Allez ! Allez ! Allez !", language: "fr"))
        #expect(!partly.filtered)
        #expect(partly.keptText == "Bonjour.")
        #expect(partly.reasons == ["repeated sentence (3×)"])

        #expect(!judge(TranscriptionResult(text: "Allez ! Allez !", language: "fr")).filtered)
    }

    @Test func sameAsThePreviousWindow() {
        let text = "On se retrouve demain soir."
        let verdict = judge(TranscriptionResult(text: text, language: "fr"), previous: " on se retrouve demain soir ")
        #expect(verdict.filtered && verdict.reasons == ["same as the previous window"] && verdict.text == text)
        #expect(!judge(TranscriptionResult(text: text, language: "fr"), previous: "Bonsoir à tous.").filtered)
    }

    @Test func soundAnnotationsAreNotWords() {
        let verdict = judge(TranscriptionResult(text: "[Musique] ♪ (applaudissements)", language: "fr"))
        #expect(verdict.filtered && verdict.reasons == ["no words"])
    }

    @Test func languageOtherThanConfigured() {
        let verdict = judge(result([segment(" Ka yɛlɛ")], language: "ha", probability: 0.62))
        #expect(!verdict.filtered)
        #expect(verdict.unreliable)
        #expect(verdict.language == "ha")
        #expect(verdict.reasons == ["language ha, configured fr"])
        #expect(verdict.keptText == "Ka yɛlɛ")

        // OpenAI names the language, faster-whisper gives the code: both mean French.
        #expect(!judge(result([segment(" Bonjour.")], language: "french")).unreliable)
        #expect(judge(result([segment(" Bonjour.")], language: "french")).language == "fr")
        #expect(!judge(result([segment(" Bonjour.")], language: "French"), configured: "fr").unreliable)
        #expect(judge(result([segment(" Hello.")], language: "english")).reasons == ["language en, configured fr"])
        // Nothing configured, or nothing detected: no comparison.
        #expect(!judge(result([segment(" Hello.")], language: "en"), configured: nil).unreliable)
        #expect(!judge(result([segment(" Bonjour.")], language: nil)).unreliable)
    }

    @Test func guessingBetraysALanguageNotUnderstood() {
        let lowProbability = judge(result([segment(" Bonjour.")], probability: 0.31))
        #expect(lowProbability.unreliable && lowProbability.reasons == ["language probability 0.31"])

        let lowLogprob = judge(result([segment(" Ça va bien.", logprob: -1.4), segment(" Oui.", logprob: -0.8)]))
        #expect(lowLogprob.unreliable && !lowLogprob.filtered)
        #expect(lowLogprob.reasons == ["avg_logprob -1.10"])

        #expect(!judge(result([segment(" Ça va bien.", logprob: -0.9)])).unreliable)
    }

    @Test func languageNames() {
        #expect(WhisperLanguage.code(for: "English") == "en")
        #expect(WhisperLanguage.code(for: "french") == "fr")
        #expect(WhisperLanguage.code(for: "fr") == "fr")
        #expect(WhisperLanguage.code(for: "fr-FR") == "fr")
        #expect(WhisperLanguage.code(for: "haitian creole") == "ht")
        #expect(WhisperLanguage.code(for: "burmese") == "my")
        #expect(WhisperLanguage.code(for: "cantonese") == "yue")
        #expect(WhisperLanguage.code(for: " ") == nil)
        #expect(WhisperLanguage.code(for: "klingon") == "klingon")
    }
}

@Suite("hallucination filter: loops inside a sentence")
struct LoopingDecodeTests {
    @Test("a phrase repeated four times or more in a row is kept once, and flagged")
    func loopCollapsed() {
        let result = TranscriptionResult(
            text: "Le festival, la musique, à mon site, à mon site, à mon site, à mon site, à mon site, à mon site.",
            language: "fr", segments: [])
        let verdict = HallucinationFilter.judge(result, configuredLanguage: "fr", previousText: nil)
        #expect(verdict.keptText == "Le festival, la musique, à mon site,")
        #expect(!verdict.filtered)
        #expect(verdict.reasons.contains("looping decode (6×)"))
    }

    @Test("words said three times, as people do, are left alone")
    func threeTimesIsSpeech() {
        let (text, repeats) = HallucinationFilter.collapseLoops("non non non je refuse")
        #expect(text == "non non non je refuse")
        #expect(repeats == 0)
    }

    @Test("a window that is nothing but a loop keeps one occurrence")
    func onlyALoop() {
        let (text, repeats) = HallucinationFilter.collapseLoops("T'amont, tu, la, ou tu, la, ou tu, la, ou tu, la, ou tu, la, ou tu,")
        #expect(repeats >= 4)
        #expect(text.split(separator: " ").count < 8)
    }
}
