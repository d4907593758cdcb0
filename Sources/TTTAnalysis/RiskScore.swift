import Foundation

/// The seed's score: a base, plus a weight for medium or high virality, plus a weight when the
/// speech is hateful, capped at 1.0 (`analysis.score_weights`).
public struct ScoreWeights: Sendable, Equatable {
    public var base = 0.2
    public var medium = 0.3
    public var high = 0.5
    public var hateful = 0.4

    public init(base: Double = 0.2, medium: Double = 0.3, high: Double = 0.5, hateful: Double = 0.4) {
        self.base = base
        self.medium = medium
        self.high = high
        self.hateful = hateful
    }
}

public enum RiskScore {
    /// The seed's formula, capped at 1.0 (and at 0 below), rounded to 4 decimals so that
    /// 0.2 + 0.4 is 0.6 and compares with a threshold as a reader expects.
    public static func score(_ verdict: Verdict, weights: ScoreWeights = .init()) -> Double {
        var score = weights.base
        switch verdict.virality {
        case .low: break
        case .medium: score += weights.medium
        case .high: score += weights.high
        }
        if verdict.hateful { score += weights.hateful }
        return (min(1, max(0, score)) * 10_000).rounded() / 10_000
    }

    /// Alert when score > threshold, or the hate type is in alwaysAlert (whatever the score): a
    /// call to violence of low reach scores 0.6 with the seed's weights and must still alert
    /// (ANALYSIS.md).
    public static func shouldAlert(_ verdict: Verdict, score: Double, threshold: Double, alwaysAlert: Set<Verdict.HateType>) -> Bool {
        if let type = verdict.hateType, alwaysAlert.contains(type) { return true }
        return score > threshold
    }
}
