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

use crate::error::{invalid, Error, Result};
use crate::id::Id;
use crate::prefetch;

/// `parent` of a root.
pub(crate) const NO_PARENT: u64 = u64::MAX;
/// `slot` of an id that was never placed in a slot (rejected, or evicted within its batch).
pub(crate) const NOT_PLACED: u32 = u32::MAX;

/// Lineage of an id: kept for every id ever inserted, evicted ones included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lineage {
    /// The parent id, `None` for a root.
    pub parent: Option<Id>,
    /// The root of the id's tree: itself for a root.
    pub root: Id,
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
    fn root(id: u64) -> Self {
        LogRecord {
            parent: NO_PARENT,
            root: id,
            depth: 0,
            slot: NOT_PLACED,
        }
    }

    pub(crate) fn lineage(&self) -> Lineage {
        Lineage {
            parent: (self.parent != NO_PARENT).then_some(Id(self.parent)),
            root: Id(self.root),
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

    /// Hints that the record of `id` will be read soon (nothing when it is not kept).
    #[inline]
    pub(crate) fn prefetch(&self, id: u64) {
        if let Some(i) = id.checked_sub(self.base) {
            if let Some(r) = self.records.get(i as usize) {
                prefetch::prefetch(r);
            }
        }
    }

    /// Appends the records of `m` new ids numbered from `next_id()`, `parents[i]` naming
    /// each one's parent (None: a root). Checks every parent: its lineage must be kept, or it
    /// must come earlier in the batch; a depth past `u32::MAX` is refused. On an error the log
    /// is left as it was.
    pub(crate) fn push_children(&mut self, parents: Option<&[Option<Id>]>, m: usize) -> Result<()> {
        let first = self.next_id();
        let before = self.records.len();
        crate::huge::try_reserve_unbounded(&mut self.records, m)
            .map_err(|_| Error::Invalid(format!("cannot allocate lineage records for {m} ids")))?;
        let Some(parents) = parents else {
            self.records
                .extend((0..m as u64).map(|i| LogRecord::root(first + i)));
            return Ok(());
        };
        let result = self.push_each(first, parents);
        if result.is_err() {
            self.records.truncate(before);
        }
        result
    }

    fn push_each(&mut self, first: u64, parents: &[Option<Id>]) -> Result<()> {
        let records = self.records.as_ptr();
        let base = self.base;
        let hint = move |p: &Option<Id>| {
            if let Some(i) = p.and_then(|p| p.0.checked_sub(base)) {
                prefetch::prefetch(prefetch::at(records, i as usize));
            }
        };
        for (i, &parent) in prefetch::ahead(parents, 2 * prefetch::AHEAD, hint).enumerate() {
            let id = first + i as u64;
            let Some(Id(p)) = parent else {
                self.records.push(LogRecord::root(id));
                continue;
            };
            // A parent inserted earlier in this batch has its record pushed already.
            let Some(&record) = (if p < id { self.get(p) } else { None }) else {
                return Err(Error::UnknownId(Id(p)));
            };
            let Some(depth) = record.depth.checked_add(1) else {
                return invalid(format!("lineage depth would exceed {}", u32::MAX));
            };
            self.records.push(LogRecord {
                parent: p,
                root: record.root,
                depth,
                slot: NOT_PLACED,
            });
        }
        Ok(())
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
    #[cfg(any(test, feature = "check-invariants"))]
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
