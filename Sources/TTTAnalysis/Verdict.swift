import Foundation

/// A judged window, in the closed value sets of INTERFACES.md (the model's French labels are
/// mapped onto these by the parser).
public struct Verdict: Sendable, Equatable, Codable {
    public enum Category: String, Sendable, Codable, CaseIterable {
        case neutral, controversial
        case potentiallyViral = "potentially_viral"
        case hateSpeech = "hate_speech"
    }

    public enum Virality: String, Sendable, Codable, CaseIterable {
        case low, medium, high
    }

    public enum Target: String, Sendable, Codable, CaseIterable {
        case ethnicity, religion, individual
        case socialGroup = "social_group"
        case other
    }

    public enum HateType: String, Sendable, Codable, CaseIterable {
        case insult, stigmatization, dehumanization
        case callToViolence = "call_to_violence"
    }

    public var category: Category
    public var virality: Virality
    public var hateful: Bool
    public var target: Target?
    public var hateType: HateType?
    public var justification: String
    /// The exact words the verdict rests on, as the model quoted them.
    public var citation: String?
    /// The speaker tried to instruct the model.
    public var manipulation: Bool

    public init(category: Category, virality: Virality, hateful: Bool, target: Target?, hateType: HateType?,
                justification: String, citation: String?, manipulation: Bool) {
        self.category = category
        self.virality = virality
        self.hateful = hateful
        self.target = target
        self.hateType = hateType
        self.justification = justification
        self.citation = citation
        self.manipulation = manipulation
    }
}
