//! The index's binary encodings, pure: a document's dependency graph (component version
//! ids, roots, edges) and posting lists (sorted document offsets), both as LEB128 varints,
//! plus the shortest-path search that explains a hit (subject → a@1 → b@2).

use std::collections::{HashSet, VecDeque};

/// Format byte of [`Graph::encode`]; bump when the layout changes.
const GRAPH_V1: u8 = 1;

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn get_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// One document's components (as interned version ids, in document order), the ones the
/// subject depends on directly, and the dependency edges between them (by position).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub versions: Vec<i64>,
    pub roots: Vec<u32>,
    pub edges: Vec<(u32, u32)>,
}

impl Graph {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.versions.len() * 3 + self.edges.len() * 4);
        out.push(GRAPH_V1);
        put_varint(&mut out, self.versions.len() as u64);
        for v in &self.versions {
            put_varint(&mut out, *v as u64);
        }
        put_varint(&mut out, self.roots.len() as u64);
        for r in &self.roots {
            put_varint(&mut out, u64::from(*r));
        }
        put_varint(&mut out, self.edges.len() as u64);
        for (a, b) in &self.edges {
            put_varint(&mut out, u64::from(*a));
            put_varint(&mut out, u64::from(*b));
        }
        out
    }

    /// `None` for bytes that are not a graph of this version (corruption is reported by
    /// the caller, never a panic).
    pub fn decode(b: &[u8]) -> Option<Graph> {
        if b.first() != Some(&GRAPH_V1) {
            return None;
        }
        let mut pos = 1;
        let n = usize::try_from(get_varint(b, &mut pos)?).ok()?;
        // Every entry takes at least one byte: a count beyond the input is corrupt.
        if n > b.len() {
            return None;
        }
        let mut versions = Vec::with_capacity(n);
        for _ in 0..n {
            versions.push(i64::try_from(get_varint(b, &mut pos)?).ok()?);
        }
        let r = usize::try_from(get_varint(b, &mut pos)?).ok()?;
        if r > b.len() {
            return None;
        }
        let mut roots = Vec::with_capacity(r);
        for _ in 0..r {
            roots.push(u32::try_from(get_varint(b, &mut pos)?).ok()?);
        }
        let e = usize::try_from(get_varint(b, &mut pos)?).ok()?;
        if e > b.len() {
            return None;
        }
        let mut edges = Vec::with_capacity(e);
        for _ in 0..e {
            let a = u32::try_from(get_varint(b, &mut pos)?).ok()?;
            let c = u32::try_from(get_varint(b, &mut pos)?).ok()?;
            edges.push((a, c));
        }
        Some(Graph {
            versions,
            roots,
            edges,
        })
    }

    /// Shortest chain from the subject to any component whose position is in `targets`:
    /// breadth-first from the roots (or, without roots, from components nothing depends
    /// on). Without edges at all, a target stands alone (the document gives no path).
    pub fn path_to(&self, targets: &HashSet<u32>) -> Option<Vec<u32>> {
        let n = self.versions.len();
        if targets.is_empty() || n == 0 {
            return None;
        }
        let mut adj: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut has_parent = vec![false; n];
        for (a, b) in &self.edges {
            if (*a as usize) < n && (*b as usize) < n {
                adj[*a as usize].push(*b);
                has_parent[*b as usize] = true;
            }
        }
        let starts: Vec<u32> = if self.roots.is_empty() {
            (0..n as u32).filter(|i| !has_parent[*i as usize]).collect()
        } else {
            self.roots
                .iter()
                .copied()
                .filter(|r| (*r as usize) < n)
                .collect()
        };
        let mut prev: Vec<Option<u32>> = vec![None; n];
        let mut seen = vec![false; n];
        let mut queue = VecDeque::new();
        for s in starts {
            if !seen[s as usize] {
                seen[s as usize] = true;
                queue.push_back(s);
            }
        }
        while let Some(u) = queue.pop_front() {
            if targets.contains(&u) {
                let mut path = vec![u];
                let mut cur = u;
                while let Some(p) = prev[cur as usize] {
                    path.push(p);
                    cur = p;
                }
                path.reverse();
                return Some(path);
            }
            for &v in &adj[u as usize] {
                if !seen[v as usize] {
                    seen[v as usize] = true;
                    prev[v as usize] = Some(u);
                    queue.push_back(v);
                }
            }
        }
        // Unreachable from the roots (a flat document, or a detached part): the target alone.
        targets.iter().min().map(|t| vec![*t])
    }
}

/// Sorted, de-duplicated offsets as delta varints.
pub fn encode_postings(offsets: &mut [u32]) -> Vec<u8> {
    offsets.sort_unstable();
    let mut out = Vec::with_capacity(offsets.len() * 2);
    let mut last: Option<u32> = None;
    for &o in offsets.iter() {
        match last {
            Some(l) if l == o => continue,
            Some(l) => put_varint(&mut out, u64::from(o - l)),
            None => put_varint(&mut out, u64::from(o)),
        }
        last = Some(o);
    }
    out
}

/// Document ids of a posting blob whose offsets count from `segment`.
pub fn decode_postings(segment: i64, blob: &[u8], out: &mut Vec<i64>) -> Option<()> {
    let mut pos = 0;
    let mut cur: i64 = segment;
    let mut first = true;
    while pos < blob.len() {
        let d = i64::try_from(get_varint(blob, &mut pos)?).ok()?;
        // Corrupt bytes must give `None`, never an overflow.
        cur = if first {
            segment.checked_add(d)?
        } else {
            cur.checked_add(d)?
        };
        first = false;
        out.push(cur);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn graphs_round_trip_and_explain_paths() {
        let g = Graph {
            versions: vec![10, 11, 12, 13],
            roots: vec![0],
            edges: vec![(0, 1), (1, 2), (0, 3)],
        };
        let back = Graph::decode(&g.encode()).expect("decodes");
        assert_eq!(back, g);
        assert_eq!(g.path_to(&HashSet::from([2])), Some(vec![0, 1, 2]));
        assert_eq!(g.path_to(&HashSet::from([3])), Some(vec![0, 3]));
        let flat = Graph {
            versions: vec![1, 2],
            roots: vec![],
            edges: vec![],
        };
        assert_eq!(flat.path_to(&HashSet::from([1])), Some(vec![1]));
        assert_eq!(Graph::decode(&[9, 1, 2]), None);
        assert_eq!(
            Graph::decode(&[GRAPH_V1, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            None
        );
    }

    #[test]
    fn postings_round_trip() {
        let mut o = vec![5, 1, 1, 300, 2];
        let blob = encode_postings(&mut o);
        let mut ids = Vec::new();
        decode_postings(1000, &blob, &mut ids).expect("decodes");
        assert_eq!(ids, vec![1001, 1002, 1005, 1300]);
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(b in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = Graph::decode(&b);
            let mut out = Vec::new();
            let _ = decode_postings(0, &b, &mut out);
        }

        #[test]
        fn postings_are_exact(mut o in prop::collection::vec(0u32..100_000, 0..200)) {
            let blob = encode_postings(&mut o);
            let mut ids = Vec::new();
            decode_postings(0, &blob, &mut ids).expect("decodes");
            let mut want: Vec<i64> = o.iter().map(|x| i64::from(*x)).collect();
            want.dedup();
            prop_assert_eq!(ids, want);
        }
    }
}
