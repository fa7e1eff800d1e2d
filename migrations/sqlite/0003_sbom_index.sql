-- The SBOM blast-radius index. Designed for the query "which documents contain any of
-- these versions of this package": package key → its versions → posting lists of
-- documents, never a scan of components.

-- One row per ingested document (the same bytes twice are one row: sha256 is unique).
CREATE TABLE sbom_docs (
    id           INTEGER PRIMARY KEY,     -- assigned by the ingesting transaction
    sha256       TEXT NOT NULL UNIQUE,    -- of the document bytes
    subject      TEXT NOT NULL,           -- what it describes: host/repo@sha256:…, or a name
    digest       TEXT,                    -- the image digest when known (sha256:…)
    source       TEXT NOT NULL,           -- file path or image reference it came from
    format       TEXT NOT NULL,           -- cyclonedx-json, cyclonedx-xml, spdx-json
    spec_version TEXT NOT NULL,
    components   BIGINT NOT NULL,
    ingested_at  BIGINT NOT NULL
);
CREATE INDEX sbom_docs_subject ON sbom_docs (subject);
CREATE INDEX sbom_docs_digest ON sbom_docs (digest);

-- A document's dependency graph (component version ids, roots, edges as varints), read
-- only to explain a hit; apart from the documents so their rows stay small and dense.
CREATE TABLE sbom_graphs (
    doc_id BIGINT PRIMARY KEY,
    graph  BLOB NOT NULL
);

-- Package identities (`npm/@babel/core`, `pypi/django`), as normalised purl keys.
CREATE TABLE sbom_packages (
    id        INTEGER PRIMARY KEY,
    key       TEXT NOT NULL UNIQUE,
    ecosystem TEXT NOT NULL
);

CREATE TABLE sbom_versions (
    id         INTEGER PRIMARY KEY,
    package_id BIGINT NOT NULL,
    version    TEXT NOT NULL,
    UNIQUE (package_id, version)
);

-- Posting lists: for a version, the documents containing it. One row per (version,
-- ingest batch); `docs` holds delta-varint offsets from `segment`, the batch's first doc id.
CREATE TABLE sbom_postings (
    version_id BIGINT NOT NULL,
    segment    BIGINT NOT NULL,
    docs       BLOB NOT NULL,
    PRIMARY KEY (version_id, segment)
);
