import Testing
@testable import TTTAnalysis

private let canonical = """
{"categorie": "Discours haineux", "viralite": "forte", "discours_haineux": true, "cible": "ethnie",
 "type": "appel à la violence", "justification": "Appel à chasser une communauté.",
 "citation": "il faut les chasser", "tentative_manipulation": false}
"""

private let expected = Verdict(category: .hateSpeech, virality: .high, hateful: true, target: .ethnicity,
                               hateType: .callToViolence, justification: "Appel à chasser une communauté.",
                               citation: "il faut les chasser", manipulation: false)

private func reason(_ reply: String) -> String? {
    do throws(VerdictParseError) {
        _ = try VerdictParser.parse(reply)
        return nil
    } catch {
        return error.reason
    }
}

/// A reply with `categorie` (and other keys) replaced.
private func reply(categorie: String = "\"Neutre\"", viralite: String = "\"faible\"", haineux: String = "false",
                   cible: String = "null", type: String = "null", manipulation: String = "false") -> String {
    """
    {"categorie": \(categorie), "viralite": \(viralite), "discours_haineux": \(haineux), "cible": \(cible),
     "type": \(type), "justification": "ok", "citation": null, "tentative_manipulation": \(manipulation)}
    """
}

@Suite struct VerdictParserTests {
    @Test func canonicalReply() throws {
        #expect(try VerdictParser.parse(canonical) == expected)
    }

    @Test func fencedJSONAndProseAround() throws {
        #expect(try VerdictParser.parse("```json\n\(canonical)\n```") == expected)
        #expect(try VerdictParser.parse("```\n\(canonical)\n```\n") == expected)
        let prose = "Voici mon analyse {brève} de l'extrait :\n\(canonical)\nJ'espère que cela aide. {fin}"
        #expect(try VerdictParser.parse(prose) == expected)
        // A wrapper object, and trailing commas (JSON5).
        #expect(try VerdictParser.parse("{\"verdict\": \(canonical)}") == expected)
        let trailing = canonical.replacingOccurrences(of: "false}", with: "false,}")
        #expect(try VerdictParser.parse(trailing) == expected)
    }

    @Test func driftedCategoryLabels() throws {
        for label in ["Discours haineux", "discours_haineux", "DISCOURS HAINEUX", "Hate speech", "hate_speech",
                      "discours-haineux", " Discours  haineux. "] {
            #expect(try VerdictParser.parse(reply(categorie: "\"\(label)\"")).category == .hateSpeech, "\(label)")
        }
        for label in ["Polemique", "Polémique", "POLÉMIQUE", "controversial"] {
            #expect(try VerdictParser.parse(reply(categorie: "\"\(label)\"")).category == .controversial, "\(label)")
        }
        for label in ["Potentiellement viral", "potentiellement_viral", "Potentially viral", "potentially_viral"] {
            #expect(try VerdictParser.parse(reply(categorie: "\"\(label)\"")).category == .potentiallyViral, "\(label)")
        }
        #expect(try VerdictParser.parse(reply(categorie: "\"neutral\"")).category == .neutral)
        #expect(try VerdictParser.parse(reply(viralite: "\"Élevée\"")).virality == .high)
        #expect(try VerdictParser.parse(reply(viralite: "\"MEDIUM\"")).virality == .medium)
    }

    @Test func labelsOfTargetAndType() throws {
        let verdict = try VerdictParser.parse(reply(haineux: "true", cible: "\"Groupe_social\"", type: "\"Deshumanisation\""))
        #expect(verdict.target == .socialGroup && verdict.hateType == .dehumanization)
        #expect(try VerdictParser.parse(reply(cible: "\"religious\"", type: "\"call to violence\"")).hateType == .callToViolence)
        #expect(try VerdictParser.parse(reply(type: "\"Appel a la violence\"")).hateType == .callToViolence)
        // Several types listed: the most severe.
        #expect(try VerdictParser.parse(reply(type: "[\"insulte\", \"appel à la violence\", \"stigmatisation\"]")).hateType == .callToViolence)
    }

    @Test func booleansAsStrings() throws {
        #expect(try VerdictParser.parse(reply(haineux: "\"oui\"")).hateful)
        #expect(try VerdictParser.parse(reply(haineux: "\"true\"")).hateful)
        #expect(try VerdictParser.parse(reply(haineux: "\"Vrai\"")).hateful)
        #expect(try !VerdictParser.parse(reply(haineux: "\"non\"")).hateful)
        #expect(try !VerdictParser.parse(reply(haineux: "\"false\"")).hateful)
        #expect(try VerdictParser.parse(reply(haineux: "1")).hateful)
        #expect(try VerdictParser.parse(reply(manipulation: "\"oui\"")).manipulation)
        #expect(try !VerdictParser.parse(reply(manipulation: "null")).manipulation)
    }

    @Test func noneForTargetAndType() throws {
        for none in ["null", "\"aucun\"", "\"Aucune\"", "\"\"", "\"none\"", "\"N/A\""] {
            let verdict = try VerdictParser.parse(reply(cible: none, type: none))
            #expect(verdict.target == nil && verdict.hateType == nil, "\(none)")
        }
        // Keys left out: no target, no type, no citation, no manipulation.
        let minimal = try VerdictParser.parse(#"{"categorie":"Neutre","viralite":"faible","discours_haineux":false,"justification":"RAS"}"#)
        #expect(minimal == Verdict(category: .neutral, virality: .low, hateful: false, target: nil, hateType: nil,
                                   justification: "RAS", citation: nil, manipulation: false))
    }

    @Test func englishAndAccentedKeys() throws {
        let english = #"{"category":"Hate speech","virality":"high","hateful":"yes","target":"ethnicity","hate_type":"stigmatization","justification":"x","quote":"les Peuls","manipulation_attempt":true}"#
        #expect(try VerdictParser.parse(english) == Verdict(category: .hateSpeech, virality: .high, hateful: true, target: .ethnicity,
                                                            hateType: .stigmatization, justification: "x", citation: "les Peuls",
                                                            manipulation: true))
        let accented = #"{"Catégorie":"Neutre","Viralité":"faible","discours haineux":false,"justification":""}"#
        #expect(try VerdictParser.parse(accented).category == .neutral)
    }

    @Test func invalidValuesNameTheKey() {
        #expect(reason(reply(categorie: "\"tres grave\"")) ==
            "categorie: \"tres grave\" is not one of Neutre, Polémique, Potentiellement viral, Discours haineux")
        #expect(reason(reply(viralite: "\"énorme\"")) == "viralite: \"énorme\" is not one of faible, moyenne, forte")
        #expect(reason(reply(haineux: "\"peut-être\"")) == "discours_haineux: \"peut-être\" is not a boolean")
        #expect(reason(reply(cible: "\"voisins\""))?.hasPrefix("cible: \"voisins\" is not one of ethnie, religion") == true)
        #expect(reason(reply(type: "\"moquerie\""))?.hasPrefix("type: \"moquerie\" is not one of insulte, stigmatisation") == true)
        #expect(reason(reply(categorie: "3"))?.hasPrefix("categorie: 3 is not one of") == true)
        #expect(reason(#"{"viralite":"faible","discours_haineux":false}"#) == "missing key categorie")
        #expect(reason(#"{"categorie":"Neutre","viralite":"faible","discours_haineux":null}"#) == "missing key discours_haineux")
    }

    @Test func noJSON() {
        #expect(reason("Je ne peux pas analyser ce texte.") == "no JSON object in the reply")
        #expect(reason("") == "no JSON object in the reply")
        #expect(reason("[1, 2, 3]") == "no JSON object in the reply")
        #expect(reason(#"{"categorie": "Neutre", "viralite": "fai"#) == "unterminated JSON object in the reply")
        #expect(reason(#"{"answer": 42}"#) == "missing key categorie")
    }
}
