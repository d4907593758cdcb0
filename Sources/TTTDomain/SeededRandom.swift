/// SplitMix64: a tiny deterministic generator, so tttsim's `--seed N` replays the same ids and fault
/// draws. Without a seed it starts from the system generator (still one stream per owner, no global
/// state): tttd's pacer draws its jitter from one, where the system generator would make a
/// `getrandom` system call per draw.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64?) {
        var system = SystemRandomNumberGenerator()
        self.state = seed ?? system.next()
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A derived generator for another component: the same seed gives each owner its own stream,
    /// so adding a fault draw does not shift the room ids.
    public func derived(_ salt: UInt64) -> SeededRandom {
        var copy = self
        copy.state ^= salt &* 0xD6E8_FEB8_6659_FD93
        return copy
    }
}
