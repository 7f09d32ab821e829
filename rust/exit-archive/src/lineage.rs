//! The lineage log: one record per id ever inserted, unless explicitly forgotten.
//!
//! Records are indexed by id. [`crate::Archive::forget_lineage`] drops the records of ids below
//! a floor that are no longer resident; residents below the floor keep theirs in a small side
//! table (at most one per resident, dropped when that resident leaves), so a long run can bound
//! the log at [`LINEAGE_BYTES_PER_ID`] per id inserted since the floor.
//!
//! A record also remembers the last slot its id was placed in. The log does not know who is
//! resident: an id is resident iff its slot is below the resident count and that slot holds
//! the id (ids are never reused), which lets evictions leave the log untouched.

use std::collections::HashMap;
use std::ops::{Index, IndexMut};

/// `parent` of a root.
pub(crate) const NO_PARENT: u64 = u64::MAX;
/// `slot` of an id that was never placed in a slot (rejected, or evicted within its batch).
pub(crate) const NOT_PLACED: u32 = u32::MAX;

/// Lineage of an id: kept for every id ever inserted, evicted ones included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lineage {
    /// The parent id, `None` for a root.
    pub parent: Option<u64>,
    /// The root of the id's tree: itself for a root.
    pub root: u64,
    /// Distance to the root: 0 for a root.
    pub depth: u32,
}

/// Lineage of one id plus its last slot: one record, so a lookup is one cache line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LogRecord {
    pub parent: u64,
    pub root: u64,
    pub depth: u32,
    pub slot: u32,
}

/// Bytes of lineage log per id ever inserted: parent u64, root u64, depth u32, slot u32.
pub const LINEAGE_BYTES_PER_ID: usize = std::mem::size_of::<LogRecord>();

impl LogRecord {
    pub(crate) fn lineage(&self) -> Lineage {
        Lineage {
            parent: (self.parent != NO_PARENT).then_some(self.parent),
            root: self.root,
            depth: self.depth,
        }
    }
}

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

    /// The first id whose record is kept unconditionally.
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// The id the next pushed record gets.
    pub(crate) fn next_id(&self) -> u64 {
        self.base + self.records.len() as u64
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

    /// Hints that the record of `id` (any i64 from the caller; ignored when not a kept id)
    /// will be read soon.
    #[inline]
    pub(crate) fn prefetch(&self, id: i64) {
        if let Some(i) = u64::try_from(id)
            .ok()
            .and_then(|id| id.checked_sub(self.base))
        {
            if let Some(r) = self.records.get(i as usize) {
                crate::prefetch::prefetch(r);
            }
        }
    }

    /// Appends the record of a new id: a root when `parent` is None, else a child of a kept
    /// record (the caller has checked that it exists).
    pub(crate) fn push(&mut self, parent: Option<u64>) {
        let id = self.next_id();
        let record = match parent {
            None => LogRecord {
                parent: NO_PARENT,
                root: id,
                depth: 0,
                slot: NOT_PLACED,
            },
            Some(p) => {
                let r = &self[p];
                LogRecord {
                    parent: p,
                    root: r.root,
                    depth: r.depth + 1,
                    slot: NOT_PLACED,
                }
            }
        };
        self.records.push(record);
    }

    pub(crate) fn reserve(&mut self, additional: usize) {
        crate::huge::reserve_unbounded(&mut self.records, additional);
    }

    /// Records of ids >= base, in id order.
    pub(crate) fn records(&self) -> &[LogRecord] {
        &self.records
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

    /// Forgets ids below `floor` (>= base) unless `resident(id)`; residents keep their records.
    pub(crate) fn forget_before(&mut self, floor: u64, resident: impl Fn(u64, &LogRecord) -> bool) {
        let k = (floor - self.base) as usize;
        for (i, r) in self.records.drain(..k).enumerate() {
            let id = self.base + i as u64;
            if resident(id, &r) {
                self.pinned.insert(id, r);
            }
        }
        self.base = floor;
        self.pinned.shrink_to_fit();
        if self.records.capacity() > 2 * self.records.len() + 1024 {
            self.records
                .shrink_to(self.records.len() + self.records.len() / 4);
        }
    }

    /// Checks that every kept record agrees with its parent's (tests).
    pub(crate) fn check(&self) {
        let pinned = self.pinned.keys().copied();
        for id in pinned.chain(self.base..self.next_id()) {
            let r = self[id];
            if r.parent == NO_PARENT {
                assert_eq!((r.root, r.depth), (id, 0));
            } else {
                assert!(r.parent < id);
                if let Some(parent) = self.get(r.parent) {
                    assert_eq!(r.root, parent.root);
                    assert_eq!(r.depth, parent.depth + 1);
                }
            }
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
