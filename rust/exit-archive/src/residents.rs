//! What each resident slot holds besides its priority: id, steps, sample count, payload bytes
//! and embedding. Payloads live in one buffer; a reused slot keeps its extent when the new
//! payload fits, so archives of similar-sized payloads never fragment. Otherwise the payload
//! is appended and the buffer is compacted once garbage exceeds a quarter of it.

use crate::prefetch::{self, prefetch};

/// One slot's bookkeeping: one record, so a slot touched by an operation is one cache line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Record {
    pub id: u64,
    pub added_step: u64,
    pub times_sampled: u64,
    pub offset: u64,
    pub len: u32,
    pub cap: u32,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Residents {
    dim: usize,
    records: Vec<Record>,
    bytes: Vec<u8>,
    live: u64,
    embeddings: Vec<f32>,
    sq_norms: Vec<f32>,
}

/// Squared length of an embedding row: eight partial sums, so the loop is SIMD (one chain
/// of dependent adds, as in a plain `sum`, runs several times slower; loading a snapshot
/// computes this for every row). Every norm in the crate comes from here, so norms of the
/// same row agree, whether computed at insertion or at load.
pub(crate) fn sq_norm(row: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = row.chunks_exact(8);
    for c in chunks.by_ref() {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x * x;
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|x| x * x).sum();
    acc.iter().sum::<f32>() + tail
}

impl Residents {
    pub(crate) fn new(dim: usize) -> Self {
        Residents {
            dim,
            ..Residents::default()
        }
    }

    /// Rebuilds from snapshot columns (validated by the caller).
    pub(crate) fn from_parts(
        dim: usize,
        records: Vec<Record>,
        bytes: Vec<u8>,
        embeddings: Vec<f32>,
        sq_norms: Vec<f32>,
    ) -> Self {
        let live = records.iter().map(|r| r.len as u64).sum();
        Residents {
            dim,
            records,
            bytes,
            live,
            embeddings,
            sq_norms,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    #[inline]
    pub(crate) fn id(&self, slot: usize) -> u64 {
        self.records[slot].id
    }

    pub(crate) fn record(&self, slot: usize) -> &Record {
        &self.records[slot]
    }

    pub(crate) fn records(&self) -> &[Record] {
        &self.records
    }

    pub(crate) fn payload(&self, slot: usize) -> &[u8] {
        let r = &self.records[slot];
        &self.bytes[r.offset as usize..r.offset as usize + r.len as usize]
    }

    pub(crate) fn embedding(&self, slot: usize) -> Option<&[f32]> {
        (self.dim > 0).then(|| &self.embeddings[slot * self.dim..(slot + 1) * self.dim])
    }

    /// Row-major embeddings of slots 0..n.
    pub(crate) fn embeddings(&self) -> &[f32] {
        &self.embeddings
    }

    pub(crate) fn sq_norms(&self) -> &[f32] {
        &self.sq_norms
    }

    /// Sum of resident payload lengths.
    pub(crate) fn live_bytes(&self) -> u64 {
        self.live
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.records.capacity() * std::mem::size_of::<Record>()
            + self.bytes.capacity()
            + (self.embeddings.capacity() + self.sq_norms.capacity()) * 4
    }

    /// Writes new residents: `slots[j]` gets entry `items[j]` = (id, payload, embedding row),
    /// added at `step`. A slot below `len()` is overwritten, others are appended in order.
    pub(crate) fn place<'a>(
        &mut self,
        slots: &[u32],
        items: impl Iterator<Item = (u64, &'a [u8], Option<&'a [f32]>)>,
        step: u64,
    ) {
        let dim = self.dim;
        let appended = slots
            .iter()
            .filter(|&&s| s as usize >= self.records.len())
            .count();
        crate::huge::reserve(&mut self.records, appended);
        crate::huge::reserve(&mut self.embeddings, appended * dim);
        crate::huge::reserve(&mut self.sq_norms, appended * usize::from(dim > 0));
        // Two stages: the record first, then (once it is cached) the payload it points to.
        let records = self.records.as_ptr();
        let record = move |&s: &u32| prefetch(prefetch::at(records, s as usize));
        let hinted = prefetch::ahead(slots, prefetch::AHEAD, record);
        for (j, (&slot, (id, payload, row))) in hinted.zip(items).enumerate() {
            if let Some(r) = slots
                .get(j + prefetch::AHEAD / 2)
                .and_then(|&s| self.records.get(s as usize))
            {
                prefetch(prefetch::at(self.bytes.as_ptr(), r.offset as usize));
            }
            let s = slot as usize;
            if s == self.records.len() {
                self.records.push(Record::default());
                self.embeddings.resize((s + 1) * dim, 0.0);
                self.sq_norms.resize((s + 1) * usize::from(dim > 0), 0.0);
            }
            let r = &mut self.records[s];
            self.live = self.live - r.len as u64 + payload.len() as u64;
            let len = payload.len() as u32;
            if len <= r.cap {
                let start = r.offset as usize;
                self.bytes[start..start + payload.len()].copy_from_slice(payload);
            } else {
                r.offset = self.bytes.len() as u64;
                r.cap = len;
                crate::huge::reserve(&mut self.bytes, payload.len());
                self.bytes.extend_from_slice(payload);
            }
            r.len = len;
            r.id = id;
            r.added_step = step;
            r.times_sampled = 0;
            if let Some(row) = row {
                self.embeddings[s * dim..(s + 1) * dim].copy_from_slice(row);
                self.sq_norms[s] = sq_norm(row);
            }
        }
        self.maybe_compact();
    }

    pub(crate) fn mark_sampled(&mut self, slot: usize) {
        let r = &mut self.records[slot];
        r.times_sampled = r.times_sampled.saturating_add(1);
    }

    /// Drops the resident at `slot`; the last slot's resident moves into it. Returns the id
    /// of the moved resident, if any.
    pub(crate) fn swap_remove(&mut self, slot: usize) -> Option<u64> {
        let last = self.records.len() - 1;
        let gone = self.records.swap_remove(slot);
        self.live -= gone.len as u64;
        if self.dim > 0 {
            let dim = self.dim;
            if slot != last {
                self.embeddings
                    .copy_within(last * dim..(last + 1) * dim, slot * dim);
            }
            self.embeddings.truncate(last * dim);
            self.sq_norms.swap_remove(slot);
        }
        self.maybe_compact();
        (slot != last).then(|| self.records[slot].id)
    }

    fn maybe_compact(&mut self) {
        let used = self.bytes.len() as u64;
        if used > 1 << 20 && used - self.live > used / 4 {
            self.compact();
        }
    }

    /// Rewrites the payload buffer in slot order with no gaps and no spare room per extent.
    pub(crate) fn compact(&mut self) {
        let mut bytes = Vec::new();
        crate::huge::reserve(&mut bytes, self.live as usize);
        for r in &mut self.records {
            let start = r.offset as usize;
            r.offset = bytes.len() as u64;
            bytes.extend_from_slice(&self.bytes[start..start + r.len as usize]);
            r.cap = r.len;
        }
        self.bytes = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_extents_and_compaction_keeps_contents() {
        let mut r = Residents::new(2);
        let rows = [1.0f32, 0.0, 0.0, 2.0];
        r.place(
            &[0, 1],
            [
                (7u64, b"hello".as_slice(), Some(&rows[..2])),
                (8, b"world!", Some(&rows[2..])),
            ]
            .into_iter(),
            3,
        );
        r.place(
            &[0],
            [(9u64, b"hi".as_slice(), Some(&rows[2..]))].into_iter(),
            4,
        );
        assert_eq!((r.payload(0), r.record(0).offset), (b"hi".as_slice(), 0));
        r.place(
            &[0],
            [(10u64, b"a longer payload".as_slice(), Some(&rows[..2]))].into_iter(),
            5,
        );
        assert_eq!(r.payload(0), b"a longer payload");
        assert_eq!(r.swap_remove(0), Some(8));
        assert_eq!(
            (r.id(0), r.payload(0), r.embedding(0)),
            (8, b"world!".as_slice(), Some(&rows[2..]))
        );
        assert_eq!(r.sq_norms(), &[4.0]);
        r.compact();
        assert_eq!((r.payload(0), r.live_bytes()), (b"world!".as_slice(), 6));
    }

    proptest::proptest! {
        #[test]
        fn sq_norm_is_the_sum_of_squares(
            row in proptest::collection::vec(-400i32..400, 0..100),
            scale in -30i32..30,
        ) {
            // Up to 100 squares of integers below 400 have every partial sum under 2^24,
            // exact in f32, so any summation order must give the exact sum; a power-of-two
            // scale keeps that, away from overflow and underflow.
            let scale = 2f32.powi(scale);
            let values: Vec<f32> = row.iter().map(|&x| x as f32 * scale).collect();
            let exact: i64 = row.iter().map(|&x| (x as i64) * (x as i64)).sum();
            proptest::prop_assert_eq!(sq_norm(&values), exact as f32 * scale * scale);
        }
    }

    #[test]
    fn sq_norm_of_non_finite_or_overflowing_rows_is_not_finite() {
        let mut row = vec![0.5f32; 19];
        for (at, value) in [
            (0, f32::NAN),
            (9, f32::INFINITY),
            (18, f32::NEG_INFINITY),
            (3, 3e30),
        ] {
            row[at] = value;
            assert!(!sq_norm(&row).is_finite());
            row[at] = 0.5;
        }
        assert_eq!(sq_norm(&row), 19.0 * 0.25);
        assert_eq!(sq_norm(&[0.0; 13]), 0.0);
    }
}
