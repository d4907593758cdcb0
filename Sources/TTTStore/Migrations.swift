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
        Migration(version: 2, name: "pipelines and transcripts", statements: [
            // A live's pipeline is claimed with a lease, like accounts: the node that dies hands it on.
            // `pipeline_stopped` is an admin's stop (no new pipeline for that live); `pipeline_refused`
            // remembers that the capacity refusal was already announced.
            """
            ALTER TABLE lives
                ADD COLUMN pipeline_owner text,
                ADD COLUMN pipeline_lease_expires_at timestamptz,
                ADD COLUMN pipeline_stopped boolean NOT NULL DEFAULT false,
                ADD COLUMN pipeline_refused boolean NOT NULL DEFAULT false
            """,
            """
            CREATE TABLE pipelines (
                id          bigserial PRIMARY KEY,
                live_id     bigint NOT NULL REFERENCES lives (id) ON DELETE CASCADE,
                node_id     text NOT NULL,
                state       text NOT NULL CHECK (state IN ('starting', 'capturing', 'reconnecting', 'stopped', 'failed')),
                reason      text,
                started_at  timestamptz NOT NULL DEFAULT now(),
                updated_at  timestamptz NOT NULL DEFAULT now(),
                ended_at    timestamptz,
                -- Coverage is measured: audio captured, and the seconds lost between captures.
                audio_s     double precision NOT NULL DEFAULT 0,
                gaps_s      double precision NOT NULL DEFAULT 0,
                windows     integer NOT NULL DEFAULT 0
            )
            """,
            "CREATE INDEX pipelines_live ON pipelines (live_id)",
            "CREATE INDEX pipelines_active ON pipelines (state) WHERE ended_at IS NULL",
            // One row per window: windows of a live tile its captured timeline (start_s/end_s).
            """
            CREATE TABLE transcripts (
                id          bigserial PRIMARY KEY,
                live_id     bigint NOT NULL REFERENCES lives (id) ON DELETE CASCADE,
                pipeline_id bigint REFERENCES pipelines (id) ON DELETE SET NULL,
                seq         integer NOT NULL,
                start_s     double precision NOT NULL,
                end_s       double precision NOT NULL CHECK (end_s >= start_s),
                text        text NOT NULL DEFAULT '',
                language    text,
                model       text,
                silent      boolean NOT NULL DEFAULT false,
                filtered    boolean NOT NULL DEFAULT false,
                unreliable  boolean NOT NULL DEFAULT false,
                skipped     boolean NOT NULL DEFAULT false,
                reason      text,
                asr_ms      integer,
                latency_ms  integer,
                segments    jsonb,
                created_at  timestamptz NOT NULL DEFAULT now(),
                UNIQUE (live_id, seq)
            )
            """,
        ]),
        Migration(version: 3, name: "analyses, alerts and delivery channels", statements: [
            // Which windows wait for the analyzer ('pending'), claimed with a lease like the rest.
            """
            ALTER TABLE transcripts
                ADD COLUMN analysis_state text NOT NULL DEFAULT 'not_needed'
                    CHECK (analysis_state IN ('pending', 'done', 'failed', 'not_needed', 'off')),
                ADD COLUMN analysis_owner text,
                ADD COLUMN analysis_lease_expires_at timestamptz
            """,
            "CREATE INDEX transcripts_analysis_pending ON transcripts (id) WHERE analysis_state = 'pending'",
            """
            CREATE TABLE analyses (
                id              bigserial PRIMARY KEY,
                transcript_id   bigint NOT NULL UNIQUE REFERENCES transcripts (id) ON DELETE CASCADE,
                live_id         bigint NOT NULL REFERENCES lives (id) ON DELETE CASCADE,
                seq             integer NOT NULL,
                status          text NOT NULL CHECK (status IN ('ok', 'cached', 'failed')),
                category        text,
                virality        text,
                hateful         boolean,
                target          text,
                hate_type       text,
                justification   text,
                citation        text,
                quote_verified  boolean,
                manipulation    boolean,
                risk_score      double precision,
                model           text NOT NULL,
                mode            text,
                prompt_sha256   text NOT NULL,
                attempts        integer NOT NULL DEFAULT 1,
                latency_ms      integer,
                -- A failed analysis keeps the model's last reply; a cached one names its source.
                raw_reply       text,
                error           text,
                cached_from     bigint REFERENCES analyses (id) ON DELETE SET NULL,
                -- Streamers repeat slogans: the same normalised text, prompt and model reuse a verdict.
                text_hash       text NOT NULL,
                created_at      timestamptz NOT NULL DEFAULT now()
            )
            """,
            "CREATE INDEX analyses_live ON analyses (live_id, seq)",
            "CREATE INDEX analyses_cache ON analyses (text_hash, prompt_sha256, model) WHERE status = 'ok'",
            """
            CREATE TABLE alerts (
                id              bigserial PRIMARY KEY,
                analysis_id     bigint NOT NULL REFERENCES analyses (id) ON DELETE CASCADE,
                live_id         bigint REFERENCES lives (id) ON DELETE SET NULL,
                username        text NOT NULL,
                risk_score      double precision NOT NULL,
                created_at      timestamptz NOT NULL DEFAULT now(),
                acked_at        timestamptz,
                acked_by        text,
                evidence_path   text,
                evidence_sha256 text,
                -- The `alert` event, whose deliveries say where the alert went.
                event_id        bigint REFERENCES events (id) ON DELETE SET NULL
            )
            """,
            "CREATE INDEX alerts_live ON alerts (live_id, created_at DESC)",
            "CREATE INDEX alerts_unacked ON alerts (created_at DESC) WHERE acked_at IS NULL",
            // The channels of this deployment and the event types each receives, written from the
            // configuration at start and on reload. A trigger queues the deliveries of an event in
            // the transaction that writes it: no event is committed without its deliveries.
            """
            CREATE TABLE channels (
                name        text PRIMARY KEY,
                event_types text[] NOT NULL,
                updated_at  timestamptz NOT NULL DEFAULT now()
            )
            """,
            """
            CREATE FUNCTION tttd_queue_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE
                kind text := NEW.type;
            BEGIN
                IF NEW.type = 'pipeline_state' AND NEW.payload->>'state' = 'failed' THEN
                    kind := 'pipeline_failed';
                END IF;
                INSERT INTO deliveries (event_id, channel)
                SELECT NEW.id, c.name FROM channels c WHERE kind = ANY (c.event_types)
                ON CONFLICT DO NOTHING;
                RETURN NULL;
            END
            $$
            """,
            """
            CREATE TRIGGER events_queue_deliveries AFTER INSERT ON events
                FOR EACH ROW EXECUTE FUNCTION tttd_queue_deliveries()
            """,
            "ALTER TABLE deliveries ADD COLUMN lease_owner text, ADD COLUMN lease_expires_at timestamptz",
        ]),
        // A pipeline that gets no audio gives up and is tried again a minute later: the channels
        // hear of a live's capture failure once an hour, not at every attempt.
        Migration(version: 4, name: "pipeline_failed notices at most hourly per live", statements: [
            """
            CREATE OR REPLACE FUNCTION tttd_queue_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE
                kind text := NEW.type;
            BEGIN
                IF NEW.type = 'pipeline_state' AND NEW.payload->>'state' = 'failed' THEN
                    kind := 'pipeline_failed';
                    IF EXISTS (SELECT 1 FROM events e
                               WHERE e.live_id = NEW.live_id AND e.id <> NEW.id AND e.type = 'pipeline_state'
                                 AND e.payload->>'state' = 'failed' AND e.created_at > now() - interval '1 hour') THEN
                        RETURN NULL;
                    END IF;
                END IF;
                INSERT INTO deliveries (event_id, channel)
                SELECT NEW.id, c.name FROM channels c WHERE kind = ANY (c.event_types)
                ON CONFLICT DO NOTHING;
                RETURN NULL;
            END
            $$
            """,
        ]),
        // Removing an account left its open live behind, never to end (nothing checks a live whose
        // account is gone); removal now ends it. Lives left so by earlier versions end here.
        Migration(version: 5, name: "open lives of removed accounts ended", statements: [
            """
            WITH ended AS (
                UPDATE lives SET status = 'ended', ended_at = now(), end_reason = 'removed',
                    alive_lease_owner = NULL, alive_lease_expires_at = NULL
                WHERE account_id IS NULL AND status = 'live'
                RETURNING id, username, room_id, title, restricted
            )
            INSERT INTO events (type, live_id, username, payload)
            SELECT 'live_ended', l.id, l.username,
                   jsonb_strip_nulls(jsonb_build_object(
                       'type', 'live_ended'::text, 'live_id', l.id, 'username', l.username, 'room_id', l.room_id,
                       'title', l.title, 'reason', 'removed'::text, 'restricted', CASE WHEN l.restricted THEN true END,
                       'at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))
                   || jsonb_build_object('title', l.title)
            FROM ended l
            """,
        ]),
        // Node ids are host name and socket path: two machines cloned with one host name would share
        // one, each freeing the other's leases at start. Each run of a node leaves a token of its own.
        Migration(version: 6, name: "a token for each run of a node", statements: [
            "ALTER TABLE nodes ADD COLUMN run_token text",
        ]),
    ]

    static var latestVersion: Int { all.last?.version ?? 0 }
}
