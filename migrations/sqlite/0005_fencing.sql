-- Fencing: the lease epoch grows by one each time a different owner takes an incident's
-- lease; every commit of a lease holder carries the epoch it was granted and is refused
-- once another process has taken over. `leases` holds named leases (the leader lease:
-- which process runs the Slack outbox).
ALTER TABLE incidents ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
CREATE TABLE leases (
    name     TEXT PRIMARY KEY,
    owner    TEXT NOT NULL,
    epoch    INTEGER NOT NULL,
    until_ms INTEGER NOT NULL
);
