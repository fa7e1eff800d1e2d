//! Storage of the SBOM blast-radius index (`migrations/*/0003_sbom_index.sql`): documents,
//! interned package keys and versions, and per-batch posting lists. The encoding of graphs
//! and postings lives in `crate::blast::index`; the store only keeps bytes.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use serde::Serialize;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::sqlite::SqliteStore;
use super::{Result, StoreError};

/// Variables per statement: far below SQLite's limit, small enough to keep statements cheap.
const CHUNK: usize = 400;

/// A document to insert; its id is assigned by [`SbomStore::sbom_insert`].
#[derive(Clone, Debug)]
pub struct SbomDocRow {
    pub sha256: String,
    pub subject: String,
    pub digest: Option<String>,
    pub source: String,
    pub format: String,
    pub spec_version: String,
    pub components: i64,
    pub ingested_at: i64,
    pub graph: Vec<u8>,
}

/// What a query needs of a stored document.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SbomDocInfo {
    pub id: i64,
    pub sha256: String,
    pub subject: String,
    pub digest: Option<String>,
    pub source: String,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct SbomStats {
    pub documents: i64,
    pub subjects: i64,
    pub packages: i64,
    pub versions: i64,
    pub postings: i64,
}

#[async_trait]
pub trait SbomStore: Send + Sync {
    /// Every stored document hash (so an ingest skips known documents before parsing them).
    async fn sbom_all_shas(&self) -> Result<HashSet<String>>;
    /// Which of these document hashes are already stored.
    async fn sbom_known(&self, shas: &[String]) -> Result<HashSet<String>>;
    /// Ids of package keys `(key, ecosystem)` and of versions `(key, version)`, creating
    /// the missing ones. Idempotent; its own transaction.
    async fn sbom_intern(
        &self,
        packages: &[(String, String)],
        versions: &[(String, String)],
    ) -> Result<(HashMap<String, i64>, HashMap<(String, String), i64>)>;
    /// Insert documents and their postings in one transaction. Document ids are assigned
    /// consecutively from the returned first id; posting blobs hold offsets from it.
    /// `None` (and nothing stored) when one of the documents was stored meanwhile.
    async fn sbom_insert(
        &self,
        docs: Vec<SbomDocRow>,
        postings: Vec<(i64, Vec<u8>)>,
    ) -> Result<Option<i64>>;
    /// The versions indexed for a package key.
    async fn sbom_versions_of(&self, key: &str) -> Result<Vec<(i64, String)>>;
    /// `(version_id, segment, blob)` for these versions.
    async fn sbom_postings(&self, version_ids: &[i64]) -> Result<Vec<(i64, i64, Vec<u8>)>>;
    async fn sbom_docs(&self, ids: &[i64]) -> Result<Vec<SbomDocInfo>>;
    async fn sbom_graph(&self, id: i64) -> Result<Option<Vec<u8>>>;
    /// `(package key, version)` of version ids.
    async fn sbom_version_labels(&self, ids: &[i64]) -> Result<HashMap<i64, (String, String)>>;
    async fn sbom_stats(&self) -> Result<SbomStats>;
}

fn corrupt(detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        table: "sbom",
        detail: detail.into(),
    }
}

#[async_trait]
impl SbomStore for SqliteStore {
    async fn sbom_all_shas(&self) -> Result<HashSet<String>> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT sha256 FROM sbom_docs")
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().collect())
    }

    async fn sbom_known(&self, shas: &[String]) -> Result<HashSet<String>> {
        let mut out = HashSet::new();
        for chunk in shas.chunks(CHUNK) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT sha256 FROM sbom_docs WHERE sha256 IN (");
            let mut sep = q.separated(", ");
            for s in chunk {
                sep.push_bind(s.as_str());
            }
            q.push(")");
            for r in q.build().fetch_all(self.pool()).await? {
                out.insert(r.try_get::<String, _>(0)?);
            }
        }
        Ok(out)
    }

    async fn sbom_intern(
        &self,
        packages: &[(String, String)],
        versions: &[(String, String)],
    ) -> Result<(HashMap<String, i64>, HashMap<(String, String), i64>)> {
        // Set-based statements over JSON parameters: one INSERT and one indexed SELECT per
        // table, whatever the number of keys (a chunked `IN (VALUES …)` scanned the table).
        let mut tx = self.begin().await?;
        let mut keys: Vec<(&str, String)> = packages
            .iter()
            .map(|(k, e)| (k.as_str(), e.clone()))
            .chain(
                versions
                    .iter()
                    .map(|(k, _)| (k.as_str(), k.split('/').next().unwrap_or("").to_string())),
            )
            .collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
        keys.dedup_by(|a, b| a.0 == b.0);
        let pk_json = serde_json::to_string(&keys).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "INSERT INTO sbom_packages (key, ecosystem)
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each($1) WHERE true
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(&pk_json)
        .execute(&mut *tx)
        .await?;
        let text: Option<String> = sqlx::query_scalar(
            "SELECT json_group_array(json_array(p.id, p.key))
             FROM json_each($1) j CROSS JOIN sbom_packages p ON p.key = json_extract(j.value, '$[0]')",
        )
        .bind(&pk_json)
        .fetch_one(&mut *tx)
        .await?;
        let pk_rows: Vec<(i64, String)> = serde_json::from_str(text.as_deref().unwrap_or("[]"))
            .map_err(|e| corrupt(format!("package ids: {e}")))?;
        let pkg_ids: HashMap<String, i64> = pk_rows.into_iter().map(|(id, k)| (k, id)).collect();
        let mut wanted: Vec<(i64, &str)> = Vec::with_capacity(versions.len());
        for (k, v) in versions {
            let pid = *pkg_ids
                .get(k)
                .ok_or_else(|| corrupt(format!("package `{k}` not interned")))?;
            wanted.push((pid, v.as_str()));
        }
        wanted.sort_unstable();
        wanted.dedup();
        let v_json = serde_json::to_string(&wanted).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "INSERT INTO sbom_versions (package_id, version)
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each($1) WHERE true
             ON CONFLICT (package_id, version) DO NOTHING",
        )
        .bind(&v_json)
        .execute(&mut *tx)
        .await?;
        let text: Option<String> = sqlx::query_scalar(
            "SELECT json_group_array(json_array(v.id, v.package_id, v.version))
             FROM json_each($1) j CROSS JOIN sbom_versions v
               ON v.package_id = json_extract(j.value, '$[0]') AND v.version = json_extract(j.value, '$[1]')",
        )
        .bind(&v_json)
        .fetch_one(&mut *tx)
        .await?;
        let v_rows: Vec<(i64, i64, String)> = serde_json::from_str(text.as_deref().unwrap_or("[]"))
            .map_err(|e| corrupt(format!("version ids: {e}")))?;
        let key_of: HashMap<i64, &str> = pkg_ids.iter().map(|(k, id)| (*id, k.as_str())).collect();
        let mut ver_ids: HashMap<(String, String), i64> = HashMap::with_capacity(v_rows.len());
        for (id, pid, v) in v_rows {
            if let Some(k) = key_of.get(&pid) {
                ver_ids.insert((k.to_string(), v), id);
            }
        }
        tx.commit().await?;
        Ok((pkg_ids, ver_ids))
    }

    async fn sbom_insert(
        &self,
        docs: Vec<SbomDocRow>,
        postings: Vec<(i64, Vec<u8>)>,
    ) -> Result<Option<i64>> {
        if docs.is_empty() {
            return Ok(None);
        }
        // BEGIN IMMEDIATE holds the write lock: MAX(id) + 1 cannot race another writer.
        let mut tx = self.begin().await?;
        let shas: Vec<&str> = docs.iter().map(|d| d.sha256.as_str()).collect();
        for chunk in shas.chunks(CHUNK) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT COUNT(*) FROM sbom_docs WHERE sha256 IN (");
            let mut sep = q.separated(", ");
            for s in chunk {
                sep.push_bind(*s);
            }
            q.push(")");
            let n: i64 = q.build().fetch_one(&mut *tx).await?.try_get(0)?;
            if n > 0 {
                return Ok(None); // rolled back on drop
            }
        }
        let first: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM sbom_docs")
            .fetch_one(&mut *tx)
            .await?;
        let rows: Vec<(i64, SbomDocRow)> = docs
            .into_iter()
            .enumerate()
            .map(|(i, d)| (first + i as i64, d))
            .collect();
        for chunk in rows.chunks(64) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO sbom_docs (id, sha256, subject, digest, source, format, spec_version, components, ingested_at) ",
            );
            q.push_values(chunk, |mut b, (id, d)| {
                b.push_bind(*id)
                    .push_bind(d.sha256.as_str())
                    .push_bind(d.subject.as_str())
                    .push_bind(d.digest.as_deref())
                    .push_bind(d.source.as_str())
                    .push_bind(d.format.as_str())
                    .push_bind(d.spec_version.as_str())
                    .push_bind(d.components)
                    .push_bind(d.ingested_at);
            });
            q.build().execute(&mut *tx).await?;
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT INTO sbom_graphs (doc_id, graph) ");
            q.push_values(chunk, |mut b, (id, d)| {
                b.push_bind(*id).push_bind(d.graph.as_slice());
            });
            q.build().execute(&mut *tx).await?;
        }
        for chunk in postings.chunks(CHUNK / 3) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT INTO sbom_postings (version_id, segment, docs) ");
            q.push_values(chunk, |mut b, (vid, blob)| {
                b.push_bind(*vid)
                    .push_bind(first)
                    .push_bind(blob.as_slice());
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Some(first))
    }

    async fn sbom_versions_of(&self, key: &str) -> Result<Vec<(i64, String)>> {
        let rows = sqlx::query(
            "SELECT v.id, v.version FROM sbom_versions v JOIN sbom_packages p ON p.id = v.package_id WHERE p.key = $1",
        )
        .bind(key)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    async fn sbom_postings(&self, version_ids: &[i64]) -> Result<Vec<(i64, i64, Vec<u8>)>> {
        // One statement for any number of ids: the list travels as one JSON parameter.
        let list = serde_json::to_string(version_ids).unwrap_or_else(|_| "[]".into());
        let rows = sqlx::query(
            "SELECT version_id, segment, docs FROM sbom_postings
             WHERE version_id IN (SELECT value FROM json_each($1))",
        )
        .bind(list)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    async fn sbom_docs(&self, ids: &[i64]) -> Result<Vec<SbomDocInfo>> {
        // One statement and one result row for any number of ids: the list goes in as a
        // JSON parameter and the documents come back as one JSON array. Per-row overhead
        // (the driver's, several µs) would otherwise dominate a 10,000-image answer.
        let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        let text: Option<String> = sqlx::query_scalar(
            "SELECT json_group_array(json_array(d.id, d.sha256, d.subject, d.digest, d.source))
             FROM json_each($1) j CROSS JOIN sbom_docs d ON d.id = j.value",
        )
        .bind(list)
        .fetch_one(self.pool())
        .await?;
        type Tuple = (i64, String, String, Option<String>, String);
        let rows: Vec<Tuple> = serde_json::from_str(text.as_deref().unwrap_or("[]"))
            .map_err(|e| corrupt(format!("document list: {e}")))?;
        let mut out: Vec<SbomDocInfo> = rows
            .into_iter()
            .map(|(id, sha256, subject, digest, source)| SbomDocInfo {
                id,
                sha256,
                subject,
                digest,
                source,
            })
            .collect();
        out.sort_by_key(|d| d.id);
        Ok(out)
    }

    async fn sbom_graph(&self, id: i64) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT graph FROM sbom_graphs WHERE doc_id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    async fn sbom_version_labels(&self, ids: &[i64]) -> Result<HashMap<i64, (String, String)>> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT v.id, p.key, v.version FROM sbom_versions v JOIN sbom_packages p ON p.id = v.package_id WHERE v.id IN (",
            );
            let mut sep = q.separated(", ");
            for v in chunk {
                sep.push_bind(*v);
            }
            q.push(")");
            for r in q.build().fetch_all(self.pool()).await? {
                out.insert(r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?));
            }
        }
        Ok(out)
    }

    async fn sbom_stats(&self) -> Result<SbomStats> {
        let r = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM sbom_docs), (SELECT COUNT(DISTINCT subject) FROM sbom_docs),
                    (SELECT COUNT(*) FROM sbom_packages), (SELECT COUNT(*) FROM sbom_versions),
                    (SELECT COUNT(*) FROM sbom_postings)",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(SbomStats {
            documents: r.try_get(0)?,
            subjects: r.try_get(1)?,
            packages: r.try_get(2)?,
            versions: r.try_get(3)?,
            postings: r.try_get(4)?,
        })
    }
}
