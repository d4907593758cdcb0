import Testing
import TTTDomain
import TTTStore
@testable import TTTDetection

@Suite("claimed accounts and their lease")
struct ClaimedAccountsTests {
    let claimedAt = ContinuousClock.now
    let lease = Duration.seconds(60)

    func claim(_ ids: [Int64]) -> ClaimedAccounts {
        var claimed = ClaimedAccounts()
        claimed.add(ids.map { Store.ClaimedAccount(id: $0, username: Username(trusted: "a\($0)")) }, claimedAt: claimedAt)
        return claimed
    }

    @Test("handed out in the claim's order while the lease holds, an account put back first")
    func order() {
        var claimed = claim([1, 2, 3])
        let now = claimedAt + .seconds(59)
        #expect(claimed.next(lease: lease, now: now)?.id == 1)
        claimed.putBack(Store.ClaimedAccount(id: 1, username: Username(trusted: "a1")))
        #expect([1, 2, 3].map { _ in claimed.next(lease: lease, now: now)?.id } == [1, 2, 3])
        #expect(claimed.next(lease: lease, now: now) == nil)
    }

    @Test("once the lease has run out, the rest is dropped for a new claim, not handed out")
    func expired() {
        var claimed = claim([1, 2, 3])
        #expect(claimed.next(lease: lease, now: claimedAt + .seconds(1))?.id == 1)
        #expect(claimed.next(lease: lease, now: claimedAt + .seconds(60)) == nil)
        #expect(claimed.next(lease: lease, now: claimedAt + .seconds(1)) == nil, "dropped, not kept for later")
    }
}
