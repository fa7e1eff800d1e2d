//! [`SbomStore`] on Postgres. Lists travel as array parameters (`= ANY($1)`, `UNNEST`), so
//! every method is a fixed number of statements whatever the number of keys. Interning and
//! document inserts hold `pg_advisory_xact_lock(SBOM_LOCK)`: document ids are allocated as
//! `MAX(id) + 1` ranges (posting blobs hold offsets from the first), which needs one writer
//! at a time, as SQLite's `BEGIN IMMEDIATE` gives.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::{Postgres, Row, Transaction};

use super::{PostgresStore, SBOM_LOCK, nul_free_owned};
use crate::store::{Result, SbomDocInfo, SbomDocRow, SbomStats, SbomStore, StoreError};

fn corrupt(detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        table: "sbom",
        detail: detail.into(),
    }
}

async fn lock(tx: &mut Transaction<'static, Postgres>) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SBOM_LOCK)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl SbomStore for PostgresStore {
    async fn sbom_all_shas(&self) -> Result<HashSet<String>> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT sha256 FROM sbom_docs")
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().collect())
    }

    async fn sbom_known(&self, shas: &[String]) -> Result<HashSet<String>> {
        if shas.is_empty() {
            return Ok(HashSet::new());
        }
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT sha256 FROM sbom_docs WHERE sha256 = ANY($1::text[])")
                .bind(shas)
                .fetch_all(self.pool())
                .await?;
        Ok(rows.into_iter().collect())
    }

    async fn sbom_intern(
        &self,
        packages: &[(String, String)],
        versions: &[(String, String)],
    ) -> Result<(HashMap<String, i64>, HashMap<(String, String), i64>)> {
        let mut tx = self.begin().await?;
        lock(&mut tx).await?;
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
        let (names, ecosystems): (Vec<String>, Vec<String>) =
            keys.into_iter().map(|(k, e)| (k.to_string(), e)).unzip();
        sqlx::query(
            "INSERT INTO sbom_packages (key, ecosystem)
             SELECT * FROM UNNEST($1::text[], $2::text[]) ON CONFLICT (key) DO NOTHING",
        )
        .bind(&names)
        .bind(&ecosystems)
        .execute(&mut *tx)
        .await?;
        let mut pkg_ids: HashMap<String, i64> = HashMap::with_capacity(names.len());
        for r in sqlx::query("SELECT id, key FROM sbom_packages WHERE key = ANY($1::text[])")
            .bind(&names)
            .fetch_all(&mut *tx)
            .await?
        {
            pkg_ids.insert(r.try_get(1)?, r.try_get(0)?);
        }
        let mut wanted: Vec<(i64, String)> = Vec::with_capacity(versions.len());
        for (k, v) in versions {
            let pid = *pkg_ids
                .get(k)
                .ok_or_else(|| corrupt(format!("package `{k}` not interned")))?;
            wanted.push((pid, v.clone()));
        }
        wanted.sort_unstable();
        wanted.dedup();
        let (pids, vers): (Vec<i64>, Vec<String>) = wanted.into_iter().unzip();
        sqlx::query(
            "INSERT INTO sbom_versions (package_id, version)
             SELECT * FROM UNNEST($1::int8[], $2::text[]) ON CONFLICT (package_id, version) DO NOTHING",
        )
        .bind(&pids)
        .bind(&vers)
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query(
            "SELECT v.id, v.package_id, v.version FROM sbom_versions v
             JOIN UNNEST($1::int8[], $2::text[]) AS w(package_id, version)
               ON v.package_id = w.package_id AND v.version = w.version",
        )
        .bind(&pids)
        .bind(&vers)
        .fetch_all(&mut *tx)
        .await?;
        let key_of: HashMap<i64, &str> = pkg_ids.iter().map(|(k, id)| (*id, k.as_str())).collect();
        let mut ver_ids: HashMap<(String, String), i64> = HashMap::with_capacity(rows.len());
        for r in rows {
            let pid: i64 = r.try_get(1)?;
            if let Some(k) = key_of.get(&pid) {
                ver_ids.insert((k.to_string(), r.try_get(2)?), r.try_get(0)?);
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
        let mut tx = self.begin().await?;
        // One inserter at a time: MAX(id) + 1 cannot race, and a document stored by a
        // concurrent ingest is seen here (each statement reads the latest commits).
        lock(&mut tx).await?;
        let shas: Vec<&str> = docs.iter().map(|d| d.sha256.as_str()).collect();
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sbom_docs WHERE sha256 = ANY($1::text[])")
                .bind(&shas)
                .fetch_one(&mut *tx)
                .await?;
        if n > 0 {
            return Ok(None); // rolled back on drop
        }
        let first: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM sbom_docs")
            .fetch_one(&mut *tx)
            .await?;
        let count = docs.len();
        let mut ids = Vec::with_capacity(count);
        let (mut sha, mut subject, mut digest, mut source) = (
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
        );
        let (mut format, mut spec, mut components, mut at, mut graphs) = (
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
        );
        for (i, d) in docs.into_iter().enumerate() {
            ids.push(first + i as i64);
            sha.push(d.sha256);
            subject.push(nul_free_owned(d.subject));
            digest.push(d.digest.map(nul_free_owned));
            source.push(nul_free_owned(d.source));
            format.push(d.format);
            spec.push(nul_free_owned(d.spec_version));
            components.push(d.components);
            at.push(d.ingested_at);
            graphs.push(d.graph);
        }
        sqlx::query(
            "INSERT INTO sbom_docs (id, sha256, subject, digest, source, format, spec_version, components, ingested_at)
             SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int8[], $9::int8[])",
        )
        .bind(&ids)
        .bind(sha)
        .bind(subject)
        .bind(digest)
        .bind(source)
        .bind(format)
        .bind(spec)
        .bind(components)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO sbom_graphs (doc_id, graph) SELECT * FROM UNNEST($1::int8[], $2::bytea[])",
        )
        .bind(&ids)
        .bind(graphs)
        .execute(&mut *tx)
        .await?;
        if !postings.is_empty() {
            let (vids, blobs): (Vec<i64>, Vec<Vec<u8>>) = postings.into_iter().unzip();
            sqlx::query(
                "INSERT INTO sbom_postings (version_id, segment, docs)
                 SELECT u.version_id, $2, u.docs FROM UNNEST($1::int8[], $3::bytea[]) AS u(version_id, docs)",
            )
            .bind(vids)
            .bind(first)
            .bind(blobs)
            .execute(&mut *tx)
            .await?;
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
        let rows = sqlx::query(
            "SELECT version_id, segment, docs FROM sbom_postings WHERE version_id = ANY($1::int8[])",
        )
        .bind(version_ids)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    async fn sbom_docs(&self, ids: &[i64]) -> Result<Vec<SbomDocInfo>> {
        // A join over the list (not `= ANY`), so a repeated id is answered repeatedly, as
        // the SQLite store does.
        let rows = sqlx::query(
            "SELECT d.id, d.sha256, d.subject, d.digest, d.source
             FROM UNNEST($1::int8[]) AS j(id) JOIN sbom_docs d ON d.id = j.id",
        )
        .bind(ids)
        .fetch_all(self.pool())
        .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(SbomDocInfo {
                    id: r.try_get(0)?,
                    sha256: r.try_get(1)?,
                    subject: r.try_get(2)?,
                    digest: r.try_get(3)?,
                    source: r.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
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
        for r in sqlx::query(
            "SELECT v.id, p.key, v.version FROM sbom_versions v JOIN sbom_packages p ON p.id = v.package_id WHERE v.id = ANY($1::int8[])",
        )
        .bind(ids)
        .fetch_all(self.pool())
        .await?
        {
            out.insert(r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?));
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
