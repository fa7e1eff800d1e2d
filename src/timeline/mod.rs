//! The append-only, hash-chained action timeline.
//!
//! `hash = sha256(prev_hash ‖ "\n" ‖ canonical(event))` over the stored columns (the `data`
//! column as its exact stored text, see [`chain_hash`]), so verification recomputes the
//! chain from the database alone. The incident row keeps the
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

/// The fields of an event that its hash covers, in hash order.
pub struct Fields<'a> {
    pub incident: &'a str,
    pub seq: i64,
    pub at: i64,
    pub actor: &'a str,
    pub kind: &'a str,
    pub step: Option<&'a str>,
    pub index: Option<u32>,
    pub summary: &'a str,
    pub data_json: &'a str,
}

/// `sha256(prev_hash ‖ "\n" ‖ canonical(fields))`, where the canonical form is every field in
/// a fixed order, each string length-prefixed (u64, big-endian) and each integer fixed-width:
/// unambiguous without escaping, and streamed into the hasher without building a buffer.
pub fn chain_hash(prev_hash: &str, f: &Fields<'_>) -> String {
    fn bytes(h: &mut Sha256, b: &[u8]) {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    }
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    bytes(&mut h, f.incident.as_bytes());
    h.update(f.seq.to_be_bytes());
    h.update(f.at.to_be_bytes());
    bytes(&mut h, f.actor.as_bytes());
    bytes(&mut h, f.kind.as_bytes());
    match f.step {
        Some(s) => {
            h.update([1u8]);
            bytes(&mut h, s.as_bytes());
        }
        None => h.update([0u8]),
    }
    match f.index {
        Some(i) => {
            h.update([1u8]);
            h.update(i.to_be_bytes());
        }
        None => h.update([0u8]),
    }
    bytes(&mut h, f.summary.as_bytes());
    bytes(&mut h, f.data_json.as_bytes());
    hex::encode(h.finalize())
}

impl Event {
    pub fn compute_hash(&self) -> String {
        chain_hash(
            &self.prev_hash,
            &Fields {
                incident: &self.incident,
                seq: self.seq,
                at: self.at,
                actor: &self.actor,
                kind: &self.kind,
                step: self.step.as_deref(),
                index: self.index,
                summary: &self.summary,
                data_json: &self.data_json,
            },
        )
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
