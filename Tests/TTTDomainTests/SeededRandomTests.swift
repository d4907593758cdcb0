import Testing
import TTTDomain

@Suite("seeded random")
struct SeededRandomTests {
    @Test("draws spread over the whole range (the pacer's jitter) and two seeds give two sequences")
    func spread() {
        var generator = SeededRandom(seed: 1)
        let draws = (0..<10_000).map { _ in Double.random(in: 0.99..<1.05, using: &generator) }
        #expect(draws.allSatisfy { $0 >= 0.99 && $0 < 1.05 })
        // Ten equal bins of the range each hold about a tenth of the draws.
        var bins = [Int](repeating: 0, count: 10)
        for draw in draws { bins[min(9, Int((draw - 0.99) / 0.006))] += 1 }
        #expect(bins.allSatisfy { (800...1_200).contains($0) }, "\(bins)")
        var one = SeededRandom(seed: 1)
        var two = SeededRandom(seed: 2)
        #expect((0..<4).map { _ in one.next() } != (0..<4).map { _ in two.next() })
    }
}
