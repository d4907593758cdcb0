extension Duration {
    /// The duration as fractional seconds, for arithmetic with rates and for SQL intervals.
    public var asSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
