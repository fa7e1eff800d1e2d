//! The append-only, hash-chained action timeline.
//!
//! `hash = sha256(prev_hash ‖ "\n" ‖ canonical(event))`, where the canonical form is a JSON
//! array of the stored columns in a fixed order (the `data` column as its exact stored text),
//! so verification recomputes the chain from the database alone. The incident row keeps the
//! head (last seq and hash), which catches a truncated tail as well.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub mod render;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One stored timeline event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub incident: String,
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub kind: String,
    pub step: Option<String>,
    pub index: Option<u32>,
    pub summary: String,
    /// The stored JSON text, hashed exactly as stored.
    #[serde(skip)]
    pub data_json: String,
    pub prev_hash: String,
    pub hash: String,
}

impl Event {
    pub fn data(&self) -> Value {
        serde_json::from_str(&self.data_json).unwrap_or(Value::Null)
    }
}

#[allow(clippy::too_many_arguments)]
pub fn canonical(
    incident: &str,
    seq: i64,
    at: i64,
    actor: &str,
    kind: &str,
    step: Option<&str>,
    index: Option<u32>,
    summary: &str,
    data_json: &str,
) -> String {
    // A JSON array: order-stable and unambiguous (every string is escaped and delimited).
    serde_json::to_string(&(
        incident, seq, at, actor, kind, step, index, summary, data_json,
    ))
    .unwrap_or_default()
}

pub fn chain_hash(prev_hash: &str, canonical: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical.as_bytes());
    hex::encode(h.finalize())
}

impl Event {
    pub fn compute_hash(&self) -> String {
        let c = canonical(
            &self.incident,
            self.seq,
            self.at,
            &self.actor,
            &self.kind,
            self.step.as_deref(),
            self.index,
            &self.summary,
            &self.data_json,
        );
        chain_hash(&self.prev_hash, &c)
    }
}

/// Why a chain does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("event seq {seq}: expected seq {expected} (an event was deleted or reordered)")]
    Gap { seq: i64, expected: i64 },
    #[error(
        "event seq {seq}: prev_hash does not match the previous event's hash (deleted or reordered)"
    )]
    Link { seq: i64 },
    #[error("event seq {seq}: content does not match its hash (the event was edited)")]
    Content { seq: i64 },
    #[error(
        "the incident's head is seq {head_seq} but the log ends at seq {last} (events were removed from the end)"
    )]
    Head { head_seq: i64, last: i64 },
    #[error("the incident's head hash does not match the last event (the log was rewritten)")]
    HeadHash,
}

impl ChainError {
    /// The first sequence number at which the chain is broken.
    pub fn seq(&self) -> i64 {
        match self {
            Self::Gap { seq, .. } | Self::Link { seq } | Self::Content { seq } => *seq,
            Self::Head { last, .. } => last + 1,
            Self::HeadHash => 0,
        }
    }
}

/// Recompute the chain. `events` must be ordered by the stored seq.
pub fn verify(events: &[Event], head_seq: i64, head_hash: &str) -> Result<usize, ChainError> {
    let mut prev = GENESIS.to_string();
    for (i, e) in events.iter().enumerate() {
        let expected = i as i64 + 1;
        if e.seq != expected {
            return Err(ChainError::Gap {
                seq: e.seq,
                expected,
            });
        }
        if e.prev_hash != prev {
            return Err(ChainError::Link { seq: e.seq });
        }
        if e.compute_hash() != e.hash {
            return Err(ChainError::Content { seq: e.seq });
        }
        prev = e.hash.clone();
    }
    let last = events.last().map(|e| e.seq).unwrap_or(0);
    if last != head_seq {
        return Err(ChainError::Head { head_seq, last });
    }
    if prev != head_hash {
        return Err(ChainError::HeadHash);
    }
    Ok(events.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<Event> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let mut e = Event {
                    incident: "inc-1".into(),
                    seq,
                    at: 1000 + seq,
                    actor: "recall".into(),
                    kind: "k".into(),
                    step: Some("s".into()),
                    index: None,
                    summary: format!("event {seq}"),
                    data_json: "{}".into(),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = e.compute_hash();
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain(5);
        let head = c[4].hash.clone();
        assert_eq!(verify(&c, 5, &head), Ok(5));
    }

    #[test]
    fn edit_delete_reorder_truncate_are_caught() {
        let c = chain(5);
        let head = c[4].hash.clone();
        let mut edited = c.clone();
        edited[2].summary = "nothing happened".into();
        assert_eq!(
            verify(&edited, 5, &head),
            Err(ChainError::Content { seq: 3 })
        );
        let mut deleted = c.clone();
        deleted.remove(1);
        assert_eq!(verify(&deleted, 5, &head).map_err(|e| e.seq()), Err(3));
        let mut reordered = c.clone();
        reordered.swap(1, 2);
        assert!(verify(&reordered, 5, &head).is_err());
        let truncated = c[..4].to_vec();
        assert!(matches!(
            verify(&truncated, 5, &head),
            Err(ChainError::Head { .. })
        ));
    }
}
