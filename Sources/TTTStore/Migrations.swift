/// The schema, as numbered steps embedded in the binary. A step is never edited once released:
/// a change is a new step. Each step is a list of statements (the extended protocol runs one at a time).
struct Migration: Sendable {
    let version: Int
    let name: String
    let statements: [String]
}

enum Migrations {
    static let all: [Migration] = [
        Migration(version: 1, name: "accounts, lives, events and deliveries", statements: [
            """
            CREATE TABLE accounts (
                id              bigserial PRIMARY KEY,
                username        text NOT NULL UNIQUE
                                CHECK (username ~ '^[a-z0-9_.]{2,24}$' AND username !~ '\\.$'),
                display_name    text,
                tiktok_user_id  text,
                room_id         text,
                followers       bigint,
                labels          text[] NOT NULL DEFAULT '{}',
                added_by        text,
                added_at        timestamptz NOT NULL DEFAULT now(),
                live            boolean NOT NULL DEFAULT false,
                check_state     text CHECK (check_state IN ('live', 'offline', 'unknown', 'not_found')),
                check_detail    text,
                last_checked_at timestamptz,
                -- Detection: hysteresis counters, the next check (new accounts go first), the lease
                -- of the node checking it now, and the weight that spreads the budget.
                offline_streak   integer NOT NULL DEFAULT 0,
                not_found_streak integer NOT NULL DEFAULT 0,
                next_check_at   timestamptz NOT NULL DEFAULT '-infinity',
                lease_owner     text,
                lease_expires_at timestamptz,
                weight          double precision NOT NULL DEFAULT 0.4472
            )
            """,
            "CREATE INDEX accounts_next_check ON accounts (next_check_at)",
            """
            CREATE TABLE lives (
                id           bigserial PRIMARY KEY,
                account_id   bigint REFERENCES accounts (id) ON DELETE SET NULL,
                username     text NOT NULL,
                room_id      text NOT NULL,
                title        text,
                started_at   timestamptz NOT NULL,
                ended_at     timestamptz,
                peak_viewers integer,
                status       text NOT NULL CHECK (status IN ('live', 'ended')),
                end_reason   text,
                restricted   boolean NOT NULL DEFAULT false,
                stream_url   text,
                -- Batched check_alive of open lives: when next, and which node holds it.
                next_alive_check_at timestamptz NOT NULL DEFAULT now(),
                alive_lease_owner   text,
                alive_lease_expires_at timestamptz
            )
            """,
            "CREATE INDEX lives_account_started ON lives (account_id, started_at DESC)",
            // A live is resumed after a restart, never duplicated: at most one open live per account.
            "CREATE UNIQUE INDEX lives_one_open_per_account ON lives (account_id) WHERE status = 'live'",
            "CREATE INDEX lives_started ON lives (started_at DESC)",
            """
            CREATE TABLE events (
                id         bigserial PRIMARY KEY,
                type       text NOT NULL,
                live_id    bigint REFERENCES lives (id) ON DELETE SET NULL,
                username   text,
                payload    jsonb NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            "CREATE INDEX events_live ON events (live_id)",
            // The outbox: one row per event and channel, written with the event, delivered at least once.
            """
            CREATE TABLE deliveries (
                id              bigserial PRIMARY KEY,
                event_id        bigint NOT NULL REFERENCES events (id) ON DELETE CASCADE,
                channel         text NOT NULL,
                state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
                attempts        integer NOT NULL DEFAULT 0,
                next_attempt_at timestamptz NOT NULL DEFAULT now(),
                last_error      text,
                delivered_at    timestamptz,
                UNIQUE (event_id, channel)
            )
            """,
            "CREATE INDEX deliveries_pending ON deliveries (next_attempt_at) WHERE state = 'pending'",
            // Nodes sharing this database, each with its request budget: the budget of the whole
            // cluster decides how often each account can be checked.
            """
            CREATE TABLE nodes (
                node_id      text PRIMARY KEY,
                budget_rps   double precision NOT NULL,
                heartbeat_at timestamptz NOT NULL DEFAULT now(),
                started_at   timestamptz NOT NULL DEFAULT now()
            )
            """,
        ]),
    ]

    static var latestVersion: Int { all.last?.version ?? 0 }
}
