-- A tttd database at schema version 2: the migrations of commit 8fbed91 and rows shaped
-- like those that release wrote. Made by scripts/make-upgrade-fixture; do not edit by hand.
--
-- PostgreSQL database dump
--


-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: accounts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.accounts (
    id bigint NOT NULL,
    username text NOT NULL,
    display_name text,
    tiktok_user_id text,
    room_id text,
    followers bigint,
    labels text[] DEFAULT '{}'::text[] NOT NULL,
    added_by text,
    added_at timestamp with time zone DEFAULT now() NOT NULL,
    live boolean DEFAULT false NOT NULL,
    check_state text,
    check_detail text,
    last_checked_at timestamp with time zone,
    offline_streak integer DEFAULT 0 NOT NULL,
    not_found_streak integer DEFAULT 0 NOT NULL,
    next_check_at timestamp with time zone DEFAULT '-infinity'::timestamp with time zone NOT NULL,
    lease_owner text,
    lease_expires_at timestamp with time zone,
    weight double precision DEFAULT 0.4472 NOT NULL,
    CONSTRAINT accounts_check_state_check CHECK ((check_state = ANY (ARRAY['live'::text, 'offline'::text, 'unknown'::text, 'not_found'::text]))),
    CONSTRAINT accounts_username_check CHECK (((username ~ '^[a-z0-9_.]{2,24}$'::text) AND (username !~ '\.$'::text)))
);


--
-- Name: accounts_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.accounts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: accounts_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.accounts_id_seq OWNED BY public.accounts.id;


--
-- Name: deliveries; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.deliveries (
    id bigint NOT NULL,
    event_id bigint NOT NULL,
    channel text NOT NULL,
    state text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    last_error text,
    delivered_at timestamp with time zone,
    CONSTRAINT deliveries_state_check CHECK ((state = ANY (ARRAY['pending'::text, 'delivered'::text, 'failed'::text])))
);


--
-- Name: deliveries_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.deliveries_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: deliveries_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.deliveries_id_seq OWNED BY public.deliveries.id;


--
-- Name: events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.events (
    id bigint NOT NULL,
    type text NOT NULL,
    live_id bigint,
    username text,
    payload jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: events_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: events_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.events_id_seq OWNED BY public.events.id;


--
-- Name: lives; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.lives (
    id bigint NOT NULL,
    account_id bigint,
    username text NOT NULL,
    room_id text NOT NULL,
    title text,
    started_at timestamp with time zone NOT NULL,
    ended_at timestamp with time zone,
    peak_viewers integer,
    status text NOT NULL,
    end_reason text,
    restricted boolean DEFAULT false NOT NULL,
    stream_url text,
    next_alive_check_at timestamp with time zone DEFAULT now() NOT NULL,
    alive_lease_owner text,
    alive_lease_expires_at timestamp with time zone,
    pipeline_owner text,
    pipeline_lease_expires_at timestamp with time zone,
    pipeline_stopped boolean DEFAULT false NOT NULL,
    pipeline_refused boolean DEFAULT false NOT NULL,
    CONSTRAINT lives_status_check CHECK ((status = ANY (ARRAY['live'::text, 'ended'::text])))
);


--
-- Name: lives_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.lives_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: lives_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.lives_id_seq OWNED BY public.lives.id;


--
-- Name: nodes; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.nodes (
    node_id text NOT NULL,
    budget_rps double precision NOT NULL,
    heartbeat_at timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: pipelines; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.pipelines (
    id bigint NOT NULL,
    live_id bigint NOT NULL,
    node_id text NOT NULL,
    state text NOT NULL,
    reason text,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    ended_at timestamp with time zone,
    audio_s double precision DEFAULT 0 NOT NULL,
    gaps_s double precision DEFAULT 0 NOT NULL,
    windows integer DEFAULT 0 NOT NULL,
    CONSTRAINT pipelines_state_check CHECK ((state = ANY (ARRAY['starting'::text, 'capturing'::text, 'reconnecting'::text, 'stopped'::text, 'failed'::text])))
);


--
-- Name: pipelines_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.pipelines_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: pipelines_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.pipelines_id_seq OWNED BY public.pipelines.id;


--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: transcripts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.transcripts (
    id bigint NOT NULL,
    live_id bigint NOT NULL,
    pipeline_id bigint,
    seq integer NOT NULL,
    start_s double precision NOT NULL,
    end_s double precision NOT NULL,
    text text DEFAULT ''::text NOT NULL,
    language text,
    model text,
    silent boolean DEFAULT false NOT NULL,
    filtered boolean DEFAULT false NOT NULL,
    unreliable boolean DEFAULT false NOT NULL,
    skipped boolean DEFAULT false NOT NULL,
    reason text,
    asr_ms integer,
    latency_ms integer,
    segments jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT transcripts_check CHECK ((end_s >= start_s))
);


--
-- Name: transcripts_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.transcripts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: transcripts_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.transcripts_id_seq OWNED BY public.transcripts.id;


--
-- Name: accounts id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.accounts ALTER COLUMN id SET DEFAULT nextval('public.accounts_id_seq'::regclass);


--
-- Name: deliveries id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.deliveries ALTER COLUMN id SET DEFAULT nextval('public.deliveries_id_seq'::regclass);


--
-- Name: events id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events ALTER COLUMN id SET DEFAULT nextval('public.events_id_seq'::regclass);


--
-- Name: lives id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.lives ALTER COLUMN id SET DEFAULT nextval('public.lives_id_seq'::regclass);


--
-- Name: pipelines id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.pipelines ALTER COLUMN id SET DEFAULT nextval('public.pipelines_id_seq'::regclass);


--
-- Name: transcripts id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.transcripts ALTER COLUMN id SET DEFAULT nextval('public.transcripts_id_seq'::regclass);


--
-- Data for Name: accounts; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.accounts (id, username, display_name, tiktok_user_id, room_id, followers, labels, added_by, added_at, live, check_state, check_detail, last_checked_at, offline_streak, not_found_streak, next_check_at, lease_owner, lease_expires_at, weight) VALUES (1, 'alice_fr', 'Alice 🇫🇷 Débats', '6812345678901234567', '7312345678901234567', 15230, '{politique,fr}', 'root', '2026-11-18 14:05:40.31+00', false, 'offline', NULL, '2026-11-24 21:12:31.004+00', 3, 0, '2026-11-24 21:27:44.92+00', NULL, NULL, 0.6325);
INSERT INTO public.accounts (id, username, display_name, tiktok_user_id, room_id, followers, labels, added_by, added_at, live, check_state, check_detail, last_checked_at, offline_streak, not_found_streak, next_check_at, lease_owner, lease_expires_at, weight) VALUES (2, 'bob.live', 'Bob', '6898765432109876543', '7312399999000011111', 402, '{fr}', 'moderator1', '2026-11-18 14:05:40.31+00', true, 'live', NULL, '2026-11-24 21:13:02.552+00', 0, 0, '2026-11-24 21:18:02.552+00', 'tttd-a:/run/tttd/control.sock', '2026-11-24 21:14:02.552+00', 1);
INSERT INTO public.accounts (id, username, display_name, tiktok_user_id, room_id, followers, labels, added_by, added_at, live, check_state, check_detail, last_checked_at, offline_streak, not_found_streak, next_check_at, lease_owner, lease_expires_at, weight) VALUES (3, 'gone_user', NULL, NULL, NULL, NULL, '{}', 'moderator1', '2026-11-19 09:00:12+00', false, 'not_found', 'user not found (statusCode 10202)', '2026-11-24 20:59:40.173+00', 0, 2, '2026-11-25 02:59:40.173+00', NULL, NULL, 0.4472);
INSERT INTO public.accounts (id, username, display_name, tiktok_user_id, room_id, followers, labels, added_by, added_at, live, check_state, check_detail, last_checked_at, offline_streak, not_found_streak, next_check_at, lease_owner, lease_expires_at, weight) VALUES (4, 'new.one_2', NULL, NULL, NULL, NULL, '{"à surveiller"}', 'moderator2', '2026-11-24 21:13:59.88+00', false, NULL, NULL, NULL, 0, 0, '-infinity', NULL, NULL, 0.4472);


--
-- Data for Name: deliveries; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.deliveries (id, event_id, channel, state, attempts, next_attempt_at, last_error, delivered_at) VALUES (1, 12, 'ops', 'delivered', 1, '2026-11-24 20:41:09.1+00', NULL, '2026-11-24 20:41:09.38+00');
INSERT INTO public.deliveries (id, event_id, channel, state, attempts, next_attempt_at, last_error, delivered_at) VALUES (2, 6, 'ops', 'failed', 12, '2026-11-23 19:02:14.6+00', 'HTTP 410: gone', NULL);


--
-- Data for Name: events; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.events (id, type, live_id, username, payload, created_at) VALUES (1, 'live_started', 3, 'alice_fr', '{"at": "2026-11-20T12:00:03.300Z", "type": "live_started", "title": null, "live_id": 3, "room_id": "7312300000000000042", "username": "alice_fr"}', '2026-11-20 12:00:03.3+00');
INSERT INTO public.events (id, type, live_id, username, payload, created_at) VALUES (2, 'pipeline_state', 3, 'alice_fr', '{"type": "pipeline_state", "state": "starting", "reason": null, "live_id": 3, "username": "alice_fr"}', '2026-11-20 12:00:05.11+00');
INSERT INTO public.events (id, type, live_id, username, payload, created_at) VALUES (3, 'transcript', 3, 'alice_fr', '{"seq": 0, "text": "Petit live rapide pour dire bonjour.", "type": "transcript", "end_s": 15, "flags": [], "asr_ms": 350, "silent": false, "live_id": 3, "start_s": 0, "language": "fr", "username": "alice_fr", "latency_ms": 15101}', '2026-11-20 12:00:20+00');
INSERT INTO public.events (id, type, live_id, username, payload, created_at) VALUES (4, 'pipeline_state', 3, 'alice_fr', '{"type": "pipeline_state", "state": "stopped", "reason": "stopped by an admin", "live_id": 3, "username": "alice_fr"}', '2026-11-20 12:10:00+00');
INSERT INTO public.events (id, type, live_id, username, payload, created_at) VALUES (5, 'live_ended', 3, 'alice_fr', '{"at": "2026-11-20T12:41:55.910Z", "type": "live_ended", "title": null, "reason": "room_gone", "live_id": 3, "room_id": "7312300000000000042", "username": "alice_fr"}', '2026-11-20 12:41:55.91+00');
INSERT INTO public.events (id, type, live_id, username, payload, created_at) VALUES (6, 'live_started', 1, 'alice_fr', '{"at": "2026-11-22T19:02:14.551Z", "type": "live_started", "title": "Débat : « l''immigration » ce soir", "live_id": 1, "room_id": "7312345678901234567", "username": "alice_fr"}', '2026-11-22 19:02:14.551+00');
INSERT INTO public.events (id, type, live_id, username, payload, created_at) VALUES (7, 'pipeline_state', 1, 'alice_fr', '{"type": "pipeline_state", "state": "capturing", "reason": null, "live_id": 1, "username": "alice_fr"}', '2026-11-22 19:02:17.8+00');
INSERT INTO public.events (id, type, live_id, username, payload, created_at) VALUES (8, 'transcript', 1, 'alice_fr', '{"seq": 0, "text": "Bonsoir à tous, ce soir on parle de l''immigration, un sujet qui fâche.", "type": "transcript", "end_s": 14.92, "flags": [], "asr_ms": 412, "silent": false, "live_id": 1, "start_s": 0, "language": "fr", "username": "alice_fr", "latency_ms": 15380}', '2026-11-22 19:02:31.4+00');
INSERT INTO public.events (id, type, live_id, username, payload, created_at) VALUES (9, 'transcript', 1, 'alice_fr', '{"seq": 2, "text": "", "type": "transcript", "end_s": 44.4, "flags": ["filtered"], "asr_ms": 388, "reason": "hallucination: \"Sous-titres réalisés par la communauté d''Amara.org\"", "silent": false, "live_id": 1, "start_s": 29.6, "language": "fr", "username": "alice_fr", "latency_ms": 15060}', '2026-11-22 19:03:00.9+00');
INSERT INTO public.events (id, type, live_id, username, payload, created_at) VALUES (10, 'live_ended', 1, 'alice_fr', '{"at": "2026-11-22T20:33:02.118Z", "type": "live_ended", "title": "Débat : « l''immigration » ce soir", "reason": "offline", "live_id": 1, "room_id": "7312345678901234567", "username": "alice_fr"}', '2026-11-22 20:33:02.118+00');
INSERT INTO public.events (id, type, live_id, username, payload, created_at) VALUES (11, 'pipeline_state', 1, 'alice_fr', '{"type": "pipeline_state", "state": "stopped", "reason": "live ended", "live_id": 1, "username": "alice_fr"}', '2026-11-22 20:33:04.4+00');
INSERT INTO public.events (id, type, live_id, username, payload, created_at) VALUES (12, 'live_started', 2, 'bob.live', '{"at": "2026-11-24T20:41:09.007Z", "type": "live_started", "title": "Soirée questions 18+", "live_id": 2, "room_id": "7312399999000011111", "username": "bob.live", "restricted": true}', '2026-11-24 20:41:09.007+00');
INSERT INTO public.events (id, type, live_id, username, payload, created_at) VALUES (13, 'transcript', 2, 'bob.live', '{"seq": 1, "text": "Non mais sérieusement, partagez le live.", "type": "transcript", "end_s": 30, "flags": [], "asr_ms": 377, "silent": false, "live_id": 2, "start_s": 15, "language": "fr", "username": "bob.live", "latency_ms": 15198}', '2026-11-24 20:41:42.5+00');
INSERT INTO public.events (id, type, live_id, username, payload, created_at) VALUES (14, 'pipeline_state', 4, 'deleted_user', '{"type": "pipeline_state", "state": "failed", "reason": "ffmpeg exited with status 1: Server returned 404 Not Found", "live_id": 4, "username": "deleted_user"}', '2026-11-19 10:15:09+00');


--
-- Data for Name: lives; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.lives (id, account_id, username, room_id, title, started_at, ended_at, peak_viewers, status, end_reason, restricted, stream_url, next_alive_check_at, alive_lease_owner, alive_lease_expires_at, pipeline_owner, pipeline_lease_expires_at, pipeline_stopped, pipeline_refused) VALUES (1, 1, 'alice_fr', '7312345678901234567', 'Débat : « l''immigration » ce soir', '2026-11-22 19:02:14.551+00', '2026-11-22 20:33:02.118+00', 812, 'ended', 'offline', false, 'https://pull-flv-f11.tiktokcdn.com/stage/stream-2998877665544_or4.flv?expire=1764443534&sign=8e1f0c2a9b7d6e5f', '2026-11-22 20:32:44+00', NULL, NULL, NULL, NULL, false, false);
INSERT INTO public.lives (id, account_id, username, room_id, title, started_at, ended_at, peak_viewers, status, end_reason, restricted, stream_url, next_alive_check_at, alive_lease_owner, alive_lease_expires_at, pipeline_owner, pipeline_lease_expires_at, pipeline_stopped, pipeline_refused) VALUES (2, 2, 'bob.live', '7312399999000011111', 'Soirée questions 18+', '2026-11-24 20:41:09.007+00', NULL, 57, 'live', NULL, true, 'https://pull-flv-l1.tiktokcdn.com/game/stream-1122334455667_or4.flv?expire=1764621669&sign=0a1b2c3d4e5f6a7b', '2026-11-24 21:14:09.007+00', 'tttd-b:/run/tttd/control.sock', '2026-11-24 21:14:19.007+00', 'tttd-a:/run/tttd/control.sock', '2026-11-24 21:14:35.221+00', false, false);
INSERT INTO public.lives (id, account_id, username, room_id, title, started_at, ended_at, peak_viewers, status, end_reason, restricted, stream_url, next_alive_check_at, alive_lease_owner, alive_lease_expires_at, pipeline_owner, pipeline_lease_expires_at, pipeline_stopped, pipeline_refused) VALUES (3, 1, 'alice_fr', '7312300000000000042', NULL, '2026-11-20 12:00:03.3+00', '2026-11-20 12:41:55.91+00', 93, 'ended', 'room_gone', false, NULL, '2026-11-20 12:41:40+00', NULL, NULL, NULL, NULL, true, false);
INSERT INTO public.lives (id, account_id, username, room_id, title, started_at, ended_at, peak_viewers, status, end_reason, restricted, stream_url, next_alive_check_at, alive_lease_owner, alive_lease_expires_at, pipeline_owner, pipeline_lease_expires_at, pipeline_stopped, pipeline_refused) VALUES (4, NULL, 'deleted_user', '7312311111111111111', 'live supprimé', '2026-11-19 10:15:00+00', '2026-11-19 10:20:00+00', 5, 'ended', 'not_found', false, NULL, '2026-11-19 10:19:00+00', NULL, NULL, NULL, NULL, false, true);


--
-- Data for Name: nodes; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.nodes (node_id, budget_rps, heartbeat_at, started_at) VALUES ('tttd-a:/run/tttd/control.sock', 1, '2026-11-24 21:14:05.118+00', '2026-11-18 14:02:11.402+00');
INSERT INTO public.nodes (node_id, budget_rps, heartbeat_at, started_at) VALUES ('tttd-b:/run/tttd/control.sock', 0.5, '2026-11-24 21:13:58.731+00', '2026-11-20 08:30:00.017+00');


--
-- Data for Name: pipelines; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.pipelines (id, live_id, node_id, state, reason, started_at, updated_at, ended_at, audio_s, gaps_s, windows) VALUES (1, 1, 'tttd-a:/run/tttd/control.sock', 'stopped', 'live ended', '2026-11-22 19:02:16.02+00', '2026-11-22 20:33:04.4+00', '2026-11-22 20:33:04.4+00', 5441.52, 3.18, 363);
INSERT INTO public.pipelines (id, live_id, node_id, state, reason, started_at, updated_at, ended_at, audio_s, gaps_s, windows) VALUES (2, 3, 'tttd-b:/run/tttd/control.sock', 'stopped', 'stopped by an admin', '2026-11-20 12:00:05.11+00', '2026-11-20 12:10:00+00', '2026-11-20 12:10:00+00', 594.9, 0, 40);
INSERT INTO public.pipelines (id, live_id, node_id, state, reason, started_at, updated_at, ended_at, audio_s, gaps_s, windows) VALUES (3, 4, 'tttd-a:/run/tttd/control.sock', 'failed', 'ffmpeg exited with status 1: https://pull-flv-f11.tiktokcdn.com/…: Server returned 404 Not Found', '2026-11-19 10:15:02+00', '2026-11-19 10:15:09+00', '2026-11-19 10:15:09+00', 0, 0, 0);
INSERT INTO public.pipelines (id, live_id, node_id, state, reason, started_at, updated_at, ended_at, audio_s, gaps_s, windows) VALUES (4, 2, 'tttd-a:/run/tttd/control.sock', 'capturing', NULL, '2026-11-24 20:41:11.3+00', '2026-11-24 21:13:55.02+00', NULL, 1961.7, 1.2, 131);


--
-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.schema_migrations (version, name, applied_at) VALUES (1, 'accounts, lives, events and deliveries', '2026-11-10 09:12:03.512+00');
INSERT INTO public.schema_migrations (version, name, applied_at) VALUES (2, 'pipelines and transcripts', '2026-11-18 14:02:11.655+00');


--
-- Data for Name: transcripts; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.transcripts (id, live_id, pipeline_id, seq, start_s, end_s, text, language, model, silent, filtered, unreliable, skipped, reason, asr_ms, latency_ms, segments, created_at) VALUES (1, 1, 1, 0, 0, 14.92, 'Bonsoir à tous, ce soir on parle de l''immigration, un sujet qui fâche.', 'fr', 'whisper-large-v3-turbo', false, false, false, false, NULL, 412, 15380, '[{"end": 6.4, "text": " Bonsoir à tous, ce soir on parle de l''immigration,", "start": 0, "avg_logprob": -0.21, "no_speech_prob": 0.01, "compression_ratio": 1.31}, {"end": 14.92, "text": " un sujet qui fâche.", "start": 6.4, "avg_logprob": -0.27, "no_speech_prob": 0.02, "compression_ratio": 1.12}]', '2026-11-22 19:02:31.4+00');
INSERT INTO public.transcripts (id, live_id, pipeline_id, seq, start_s, end_s, text, language, model, silent, filtered, unreliable, skipped, reason, asr_ms, latency_ms, segments, created_at) VALUES (2, 1, 1, 1, 14.92, 29.6, '', NULL, 'whisper-large-v3-turbo', true, false, false, false, NULL, NULL, 52, NULL, '2026-11-22 19:02:46.1+00');
INSERT INTO public.transcripts (id, live_id, pipeline_id, seq, start_s, end_s, text, language, model, silent, filtered, unreliable, skipped, reason, asr_ms, latency_ms, segments, created_at) VALUES (3, 1, 1, 2, 29.6, 44.4, '', 'fr', 'whisper-large-v3-turbo', false, true, false, false, 'hallucination: "Sous-titres réalisés par la communauté d''Amara.org"', 388, 15060, '[{"end": 44.4, "text": " Sous-titres réalisés par la communauté d''Amara.org", "start": 29.6, "avg_logprob": -0.9, "no_speech_prob": 0.71, "compression_ratio": 1.05}]', '2026-11-22 19:03:00.9+00');
INSERT INTO public.transcripts (id, live_id, pipeline_id, seq, start_s, end_s, text, language, model, silent, filtered, unreliable, skipped, reason, asr_ms, latency_ms, segments, created_at) VALUES (4, 1, 1, 3, 44.4, 59.1, 'euh voilà voilà voilà', 'fr', 'whisper-large-v3-turbo', false, false, true, false, 'low confidence (avg_logprob -1.12)', 401, 15120, '[{"end": 59.1, "text": " euh voilà voilà voilà", "start": 44.4, "avg_logprob": -1.12, "no_speech_prob": 0.3, "compression_ratio": 2.4}]', '2026-11-22 19:03:15.7+00');
INSERT INTO public.transcripts (id, live_id, pipeline_id, seq, start_s, end_s, text, language, model, silent, filtered, unreliable, skipped, reason, asr_ms, latency_ms, segments, created_at) VALUES (5, 1, 1, 4, 59.1, 74, '', NULL, NULL, false, false, false, true, 'ASR refused it: HTTP 413: Maximum content size limit (26214400) exceeded', NULL, 15011, NULL, '2026-11-22 19:03:30.3+00');
INSERT INTO public.transcripts (id, live_id, pipeline_id, seq, start_s, end_s, text, language, model, silent, filtered, unreliable, skipped, reason, asr_ms, latency_ms, segments, created_at) VALUES (6, 2, 4, 0, 0, 15, 'Posez vos questions dans le chat, je réponds à tout.', 'fr', 'whisper-large-v3-turbo', false, false, false, false, NULL, 399, 15222, '[{"end": 15.0, "text": " Posez vos questions dans le chat, je réponds à tout.", "start": 0, "avg_logprob": -0.19, "no_speech_prob": 0.01, "compression_ratio": 1.2}]', '2026-11-24 20:41:27.6+00');
INSERT INTO public.transcripts (id, live_id, pipeline_id, seq, start_s, end_s, text, language, model, silent, filtered, unreliable, skipped, reason, asr_ms, latency_ms, segments, created_at) VALUES (7, 2, 4, 1, 15, 30, 'Non mais sérieusement, partagez le live.', 'fr', 'whisper-large-v3-turbo', false, false, false, false, NULL, 377, 15198, '[{"end": 30.0, "text": " Non mais sérieusement, partagez le live.", "start": 15.0, "avg_logprob": -0.24, "no_speech_prob": 0.02, "compression_ratio": 1.15}]', '2026-11-24 20:41:42.5+00');
INSERT INTO public.transcripts (id, live_id, pipeline_id, seq, start_s, end_s, text, language, model, silent, filtered, unreliable, skipped, reason, asr_ms, latency_ms, segments, created_at) VALUES (8, 3, NULL, 0, 0, 15, 'Petit live rapide pour dire bonjour.', 'fr', 'whisper-large-v3-turbo', false, false, false, false, NULL, 350, 15101, NULL, '2026-11-20 12:00:20+00');


--
-- Name: accounts_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.accounts_id_seq', 5, true);


--
-- Name: deliveries_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.deliveries_id_seq', 2, true);


--
-- Name: events_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.events_id_seq', 14, true);


--
-- Name: lives_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.lives_id_seq', 4, true);


--
-- Name: pipelines_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.pipelines_id_seq', 4, true);


--
-- Name: transcripts_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.transcripts_id_seq', 8, true);


--
-- Name: accounts accounts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.accounts
    ADD CONSTRAINT accounts_pkey PRIMARY KEY (id);


--
-- Name: accounts accounts_username_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.accounts
    ADD CONSTRAINT accounts_username_key UNIQUE (username);


--
-- Name: deliveries deliveries_event_id_channel_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.deliveries
    ADD CONSTRAINT deliveries_event_id_channel_key UNIQUE (event_id, channel);


--
-- Name: deliveries deliveries_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.deliveries
    ADD CONSTRAINT deliveries_pkey PRIMARY KEY (id);


--
-- Name: events events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (id);


--
-- Name: lives lives_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.lives
    ADD CONSTRAINT lives_pkey PRIMARY KEY (id);


--
-- Name: nodes nodes_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.nodes
    ADD CONSTRAINT nodes_pkey PRIMARY KEY (node_id);


--
-- Name: pipelines pipelines_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.pipelines
    ADD CONSTRAINT pipelines_pkey PRIMARY KEY (id);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: transcripts transcripts_live_id_seq_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.transcripts
    ADD CONSTRAINT transcripts_live_id_seq_key UNIQUE (live_id, seq);


--
-- Name: transcripts transcripts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.transcripts
    ADD CONSTRAINT transcripts_pkey PRIMARY KEY (id);


--
-- Name: accounts_next_check; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX accounts_next_check ON public.accounts USING btree (next_check_at);


--
-- Name: deliveries_pending; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX deliveries_pending ON public.deliveries USING btree (next_attempt_at) WHERE (state = 'pending'::text);


--
-- Name: events_live; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX events_live ON public.events USING btree (live_id);


--
-- Name: lives_account_started; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX lives_account_started ON public.lives USING btree (account_id, started_at DESC);


--
-- Name: lives_one_open_per_account; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX lives_one_open_per_account ON public.lives USING btree (account_id) WHERE (status = 'live'::text);


--
-- Name: lives_started; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX lives_started ON public.lives USING btree (started_at DESC);


--
-- Name: pipelines_active; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX pipelines_active ON public.pipelines USING btree (state) WHERE (ended_at IS NULL);


--
-- Name: pipelines_live; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX pipelines_live ON public.pipelines USING btree (live_id);


--
-- Name: deliveries deliveries_event_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.deliveries
    ADD CONSTRAINT deliveries_event_id_fkey FOREIGN KEY (event_id) REFERENCES public.events(id) ON DELETE CASCADE;


--
-- Name: events events_live_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_live_id_fkey FOREIGN KEY (live_id) REFERENCES public.lives(id) ON DELETE SET NULL;


--
-- Name: lives lives_account_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.lives
    ADD CONSTRAINT lives_account_id_fkey FOREIGN KEY (account_id) REFERENCES public.accounts(id) ON DELETE SET NULL;


--
-- Name: pipelines pipelines_live_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.pipelines
    ADD CONSTRAINT pipelines_live_id_fkey FOREIGN KEY (live_id) REFERENCES public.lives(id) ON DELETE CASCADE;


--
-- Name: transcripts transcripts_live_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.transcripts
    ADD CONSTRAINT transcripts_live_id_fkey FOREIGN KEY (live_id) REFERENCES public.lives(id) ON DELETE CASCADE;


--
-- Name: transcripts transcripts_pipeline_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.transcripts
    ADD CONSTRAINT transcripts_pipeline_id_fkey FOREIGN KEY (pipeline_id) REFERENCES public.pipelines(id) ON DELETE SET NULL;


--
-- PostgreSQL database dump complete
--
