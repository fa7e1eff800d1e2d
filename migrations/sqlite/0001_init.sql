-- Recall schema v1 (SQLite). Kept to portable SQL so migrations/postgres can mirror it:
-- TEXT for ids and JSON, BIGINT milliseconds since the Unix epoch for every time.

CREATE TABLE incidents (
    id               TEXT PRIMARY KEY,
    playbook_name    TEXT NOT NULL,
    playbook_sha256  TEXT NOT NULL,
    playbook_source  TEXT NOT NULL,   -- the exact bytes the run is pinned to
    playbook_file    TEXT NOT NULL,
    params_json      TEXT NOT NULL,
    mode             TEXT NOT NULL,   -- live | rehearsal
    status           TEXT NOT NULL,   -- running | waiting | succeeded | failed
    auto_approve     INTEGER NOT NULL DEFAULT 0,
    started_by       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    finished_at      BIGINT,
    lease_owner      TEXT,
    lease_until      BIGINT
);

-- The head of each incident's timeline chain (last seq and hash): anchors the tail so a
-- truncated log is caught. A row of its own because it changes on every commit, and the
-- incident row carries the playbook text and params (overflow pages rewritten on update).
CREATE TABLE timeline_heads (
    incident_id      TEXT PRIMARY KEY REFERENCES incidents(id),
    head_seq         BIGINT NOT NULL,
    head_hash        TEXT NOT NULL
);

CREATE TABLE steps (
    incident_id      TEXT NOT NULL REFERENCES incidents(id),
    step_id          TEXT NOT NULL,
    status           TEXT NOT NULL,
    fanout           INTEGER NOT NULL DEFAULT 0,
    outputs_json     TEXT NOT NULL DEFAULT 'null',
    error            TEXT,
    started_at       BIGINT,
    finished_at      BIGINT,
    approval_deadline BIGINT,          -- absolute deadline of an approval wait (a timer row)
    PRIMARY KEY (incident_id, step_id)
);

CREATE TABLE tasks (
    incident_id      TEXT NOT NULL,
    step_id          TEXT NOT NULL,
    item_index       INTEGER NOT NULL,
    item_json        TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    inputs_json      TEXT NOT NULL DEFAULT 'null',
    idem_key         TEXT NOT NULL,
    outputs_json     TEXT NOT NULL DEFAULT 'null',
    error            TEXT,
    next_run_at      BIGINT,           -- absolute deadline of a retry timer
    needs_probe      INTEGER NOT NULL DEFAULT 0,
    started_at       BIGINT,
    finished_at      BIGINT,
    PRIMARY KEY (incident_id, step_id, item_index)
);

CREATE TABLE approvals (
    incident_id      TEXT NOT NULL,
    step_id          TEXT NOT NULL,
    actor            TEXT NOT NULL,
    decision         TEXT NOT NULL,   -- approve | reject
    target           TEXT NOT NULL,
    reason           TEXT NOT NULL,
    at               BIGINT NOT NULL,
    PRIMARY KEY (incident_id, step_id, actor)
);

-- Requests from outside the driving process (CLI approvals, later Slack and the API),
-- consumed by whichever runner holds the incident's lease.
CREATE TABLE inbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id      TEXT NOT NULL,
    kind             TEXT NOT NULL,
    payload_json     TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    consumed_at      BIGINT
);
CREATE INDEX inbox_pending ON inbox (incident_id, consumed_at);

-- The append-only, hash-chained timeline.
CREATE TABLE events (
    incident_id      TEXT NOT NULL,
    seq              BIGINT NOT NULL,
    at               BIGINT NOT NULL,
    actor            TEXT NOT NULL,
    kind             TEXT NOT NULL,
    step_id          TEXT,
    item_index       INTEGER,
    summary          TEXT NOT NULL,
    data_json        TEXT NOT NULL,
    prev_hash        TEXT NOT NULL,
    hash             TEXT NOT NULL,
    PRIMARY KEY (incident_id, seq)
);

-- Documents produced by an incident (postmortem drafts), stored rather than written to disk
-- so that a rehearsal writes nothing outside the database.
CREATE TABLE artifacts (
    incident_id      TEXT NOT NULL,
    name             TEXT NOT NULL,
    content          TEXT NOT NULL,
    sha256           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (incident_id, name)
);
