import Testing
@testable import TTTAnalysis

private func verdict(_ virality: Verdict.Virality, hateful: Bool, type: Verdict.HateType? = nil) -> Verdict {
    Verdict(category: hateful ? .hateSpeech : .neutral, virality: virality, hateful: hateful,
            target: hateful ? .ethnicity : nil, hateType: type, justification: "", citation: nil, manipulation: false)
}

private let defaultAlways: Set<Verdict.HateType> = [.callToViolence, .dehumanization]

@Suite struct RiskScoreTests {
    @Test func seedFormula() {
        #expect(RiskScore.score(verdict(.low, hateful: false)) == 0.2)
        #expect(RiskScore.score(verdict(.medium, hateful: false)) == 0.5)
        #expect(RiskScore.score(verdict(.high, hateful: false)) == 0.7)
        #expect(RiskScore.score(verdict(.low, hateful: true)) == 0.6)
        #expect(RiskScore.score(verdict(.medium, hateful: true)) == 0.9)
        // 0.2 + 0.5 + 0.4, capped.
        #expect(RiskScore.score(verdict(.high, hateful: true)) == 1.0)
        let weights = ScoreWeights(base: 0.1, medium: 0.2, high: 0.3, hateful: 0.6)
        #expect(RiskScore.score(verdict(.medium, hateful: true), weights: weights) == 0.9)
        #expect(ScoreWeights() == ScoreWeights(base: 0.2, medium: 0.3, high: 0.5, hateful: 0.4))
    }

    @Test func callToViolenceOfLowViralityAlerts() {
        let call = verdict(.low, hateful: true, type: .callToViolence)
        let score = RiskScore.score(call)
        #expect(score == 0.6)
        #expect(RiskScore.shouldAlert(call, score: score, threshold: 0.7, alwaysAlert: defaultAlways))
        // The seed's flaw, without the severity rule.
        #expect(!RiskScore.shouldAlert(call, score: score, threshold: 0.7, alwaysAlert: []))
        let insult = verdict(.low, hateful: true, type: .insult)
        #expect(!RiskScore.shouldAlert(insult, score: RiskScore.score(insult), threshold: 0.7, alwaysAlert: defaultAlways))
    }

    @Test func thresholdIsStrict() {
        let viral = verdict(.high, hateful: false)
        #expect(!RiskScore.shouldAlert(viral, score: RiskScore.score(viral), threshold: 0.7, alwaysAlert: defaultAlways))
        #expect(RiskScore.shouldAlert(viral, score: RiskScore.score(viral), threshold: 0.69, alwaysAlert: defaultAlways))
        let hateful = verdict(.medium, hateful: true, type: .stigmatization)
        #expect(RiskScore.shouldAlert(hateful, score: RiskScore.score(hateful), threshold: 0.7, alwaysAlert: defaultAlways))
        #expect(!RiskScore.shouldAlert(hateful, score: 1.0, threshold: 1.0, alwaysAlert: []))
    }
}

@Suite struct QuoteTests {
    private let transcript = "Bon, écoutez-moi bien : les Peuls, ce sont des cafards ! Il faut les CHASSER du quartier… C’est ça la vérité."

    @Test func accentsCaseAndPunctuation() {
        #expect(Quote.isVerified("les peuls ce sont des cafards", in: transcript))
        #expect(Quote.isVerified("Il faut les chasser du quartier.", in: transcript))
        #expect(Quote.isVerified("« ecoutez moi bien »", in: transcript))
        #expect(Quote.isVerified("c'est ça la vérité", in: transcript))
        #expect(Quote.isVerified("C’EST CA LA VERITE", in: transcript))
        // Shortened with an ellipsis: the parts, in order.
        #expect(Quote.isVerified("les Peuls… il faut les chasser", in: transcript))
        #expect(Quote.isVerified("les Peuls [...] du quartier", in: transcript))
        #expect(!Quote.isVerified("il faut les chasser … les Peuls", in: transcript))
    }

    @Test func wordsNeverSaid() {
        #expect(!Quote.isVerified("il faut les tuer", in: transcript))
        #expect(!Quote.isVerified("les Mossis ce sont des cafards", in: transcript))
        // Whole words only: "cafard" is not "cafards".
        #expect(!Quote.isVerified("des cafard", in: transcript))
        #expect(!Quote.isVerified("rat", in: "la ratification du traité"))
        #expect(!Quote.isVerified(nil, in: transcript))
        #expect(!Quote.isVerified("", in: transcript))
        #expect(!Quote.isVerified(" … ", in: transcript))
    }

    @Test func normalized() {
        #expect(Quote.normalized("L’ethnie, c’est ÇA !") == "l ethnie c est ca")
        #expect(Quote.normalized("  Burkina   Faso\n\tnaa  lara ") == "burkina faso naa lara")
        #expect(Quote.normalized("Œuvre déshumanisée") == "oeuvre deshumanisee")
        #expect(Quote.normalized("La patrie ou la mort, nous vaincrons!") == Quote.normalized("la patrie ou la mort nous vaincrons"))
        #expect(Quote.normalized("...") == "")
    }
}
