//! The lineage log: one record per id ever inserted, unless explicitly forgotten.
//!
//! Records are indexed by id. [`crate::Archive::forget_lineage`] drops the records of evicted
//! ids below a floor; residents below the floor keep theirs in a small side table (at most
//! one per resident, dropped when that resident leaves), so a long run can bound the log at `LINEAGE_BYTES_PER_ID` per id
//! inserted since the floor.

use std::collections::HashMap;
use std::ops::{Index, IndexMut};

use crate::archive::{LogRecord, NOT_RESIDENT};

#[derive(Clone, Debug, Default)]
pub(crate) struct LineageLog {
    /// Id of `records[0]`; ids below it were forgotten unless they are in `pinned`.
    base: u64,
    records: Vec<LogRecord>,
    /// Records of ids below `base` that were resident when they would have been forgotten.
    pinned: HashMap<u64, LogRecord>,
}

impl LineageLog {
    pub(crate) fn from_parts(
        base: u64,
        records: Vec<LogRecord>,
        pinned: HashMap<u64, LogRecord>,
    ) -> Self {
        LineageLog {
            base,
            records,
            pinned,
        }
    }

    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// Kept records below the floor, sorted by id.
    pub(crate) fn pinned(&self) -> Vec<(u64, LogRecord)> {
        let mut v: Vec<(u64, LogRecord)> = self.pinned.iter().map(|(&k, &r)| (k, r)).collect();
        v.sort_unstable_by_key(|&(id, _)| id);
        v
    }

    #[inline]
    pub(crate) fn get(&self, id: u64) -> Option<&LogRecord> {
        if id >= self.base {
            self.records.get(usize::try_from(id - self.base).ok()?)
        } else {
            self.pinned.get(&id)
        }
    }

    pub(crate) fn push(&mut self, record: LogRecord) {
        self.records.push(record);
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &LogRecord> {
        self.records.iter().chain(self.pinned.values())
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut LogRecord> {
        self.records.iter_mut().chain(self.pinned.values_mut())
    }

    /// Records of ids >= base, in id order.
    pub(crate) fn records(&self) -> &[LogRecord] {
        &self.records
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.records.capacity() * std::mem::size_of::<LogRecord>()
            + self.pinned.capacity() * (std::mem::size_of::<(u64, LogRecord)>() + 1)
    }

    /// An id left the archive: below the floor its record goes with it.
    #[inline]
    pub(crate) fn release(&mut self, id: u64) {
        if id < self.base {
            self.pinned.remove(&id);
        }
    }

    /// Drops pinned records of ids that are no longer resident.
    pub(crate) fn purge_pinned(&mut self) {
        self.pinned.retain(|_, r| r.slot != NOT_RESIDENT);
    }

    /// Forgets evicted ids below `floor` (>= base); residents keep their records.
    pub(crate) fn forget_before(&mut self, floor: u64) {
        self.purge_pinned();
        let k = (floor - self.base) as usize;
        for (i, r) in self.records.drain(..k).enumerate() {
            if r.slot != NOT_RESIDENT {
                self.pinned.insert(self.base + i as u64, r);
            }
        }
        self.base = floor;
        self.pinned.shrink_to_fit();
        if self.records.capacity() > 2 * self.records.len() + 1024 {
            self.records
                .shrink_to(self.records.len() + self.records.len() / 4);
        }
    }
}

impl Index<u64> for LineageLog {
    type Output = LogRecord;

    #[inline]
    fn index(&self, id: u64) -> &LogRecord {
        if id >= self.base {
            &self.records[(id - self.base) as usize]
        } else {
            &self.pinned[&id]
        }
    }
}

impl IndexMut<u64> for LineageLog {
    #[inline]
    fn index_mut(&mut self, id: u64) -> &mut LogRecord {
        if id >= self.base {
            &mut self.records[(id - self.base) as usize]
        } else {
            self.pinned.get_mut(&id).expect("lineage of a resident id")
        }
    }
}
