import Foundation

/// The model's quoted evidence, checked against what the ASR heard: a citation that is not in
/// the transcript marks the verdict unverified (invented by the model, or taken from the context).
public enum Quote {
    /// True when the citation occurs in the transcript after normalising case, accents (é→e),
    /// punctuation and whitespace, on word boundaries; nil/empty citation → false. A citation the
    /// model shortened with an ellipsis ("…", "...", "[…]") is verified when its parts occur in order.
    public static func isVerified(_ citation: String?, in transcript: String) -> Bool {
        guard let citation else { return false }
        let parts = citation
            .replacingOccurrences(of: "[…]", with: "…").replacingOccurrences(of: "(…)", with: "…")
            .replacingOccurrences(of: "[...]", with: "…").replacingOccurrences(of: "(...)", with: "…")
            .replacingOccurrences(of: "...", with: "…")
            .components(separatedBy: "…")
            .map(normalized)
            .filter { !$0.isEmpty }
        guard !parts.isEmpty else { return false }
        let haystack = " " + normalized(transcript) + " "
        var from = haystack.startIndex
        for part in parts {
            guard let found = haystack.range(of: " " + part + " ", range: from..<haystack.endIndex) else { return false }
            from = haystack.index(before: found.upperBound)   // the next part may start at this space
        }
        return true
    }

    /// Lower case, without accents or punctuation, words separated by single spaces:
    /// "L’ethnie, c’est ÇA !" → "l ethnie c est ca". Also the key that caches the verdicts of
    /// repeated slogans.
    public static func normalized(_ text: String) -> String {
        let folded = text.folding(options: [.caseInsensitive, .diacriticInsensitive, .widthInsensitive], locale: nil).lowercased()
            .replacingOccurrences(of: "œ", with: "oe").replacingOccurrences(of: "æ", with: "ae")
        var out = ""
        out.reserveCapacity(folded.utf8.count)
        var pendingSpace = false
        for character in folded {
            if character.isLetter || character.isNumber {
                if pendingSpace, !out.isEmpty { out.append(" ") }
                pendingSpace = false
                out.append(character)
            } else {
                pendingSpace = true
            }
        }
        return out
    }
}
