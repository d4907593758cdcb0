/// What a local user may do through the control socket, from their Unix groups.
public enum Role: String, Sendable, Codable, Comparable {
    /// Reads state and follows events.
    case viewer
    /// Also changes things: accounts, acknowledgements, pipelines.
    case admin

    public static func < (lhs: Role, rhs: Role) -> Bool { lhs == .viewer && rhs == .admin }
}
