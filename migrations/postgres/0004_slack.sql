-- Slack (recall serve): one thread per incident, what has been posted to it, and the
-- signatures of requests already accepted (replay protection shared by every process on
-- the database).

CREATE TABLE slack_threads (
    incident_id   TEXT PRIMARY KEY REFERENCES incidents(id),
    channel       TEXT NOT NULL,
    thread_ts     TEXT,                 -- the live message (thread parent), once posted
    last_seq      BIGINT NOT NULL DEFAULT 0,   -- timeline events up to here are posted
    last_render   TEXT NOT NULL DEFAULT '',   -- sha256 of the live message last sent
    started_by    TEXT NOT NULL DEFAULT '',
    response_url  TEXT,
    done          BOOLEAN NOT NULL DEFAULT false, -- incident finished and everything posted
    updated_at    BIGINT NOT NULL
);

CREATE TABLE slack_seen (
    signature     TEXT PRIMARY KEY,
    seen_at       BIGINT NOT NULL
);
CREATE INDEX slack_seen_at ON slack_seen(seen_at);
