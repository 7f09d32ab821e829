//! A leaf of the order index: up to `LEAF_CAP` entries in ascending key order. Every change
//! leaves it sorted (an insertion merges its sorted batch in from the back), so reads use
//! the arrays as they are.

use super::{Entry, Key, NONE};

pub(super) const LEAF_CAP: usize = 64;

#[derive(Clone)]
#[repr(C, align(64))]
pub(super) struct Leaf {
    pub(super) len: u32,
    pub(super) prev: u32,
    pub(super) next: u32,
    /// `keys[..len]` ascend; `slots[i]` belongs to `keys[i]`.
    pub(super) keys: [Key; LEAF_CAP],
    pub(super) slots: [u32; LEAF_CAP],
}

impl Leaf {
    pub(super) fn empty() -> Self {
        Leaf {
            len: 0,
            prev: NONE,
            next: NONE,
            keys: [Key::default(); LEAF_CAP],
            slots: [0; LEAF_CAP],
        }
    }

    /// A leaf holding `entries` (ascending).
    pub(super) fn filled(entries: &[Entry]) -> Self {
        let mut leaf = Leaf::empty();
        leaf.len = entries.len() as u32;
        for (k, e) in entries.iter().enumerate() {
            leaf.keys[k] = e.key;
            leaf.slots[k] = e.slot;
        }
        leaf
    }

    pub(super) fn len(&self) -> usize {
        self.len as usize
    }

    pub(super) fn keys(&self) -> &[Key] {
        &self.keys[..self.len()]
    }

    pub(super) fn slots(&self) -> &[u32] {
        &self.slots[..self.len()]
    }

    /// The entry of rank `i` within the leaf (0-based, ascending).
    #[inline]
    pub(super) fn nth(&self, i: usize) -> Entry {
        Entry {
            key: self.keys[i],
            slot: self.slots[i],
        }
    }

    /// The entries in ascending order, appended to `out`.
    pub(super) fn ordered(&self, out: &mut Vec<Entry>) {
        out.extend((0..self.len()).map(|i| self.nth(i)));
    }

    /// Merges sorted entries that fit in, from the back: each entry finds its place by a
    /// binary search, and the entries above it move once, by one block copy per entry.
    fn merge_in(&mut self, entries: &[Entry]) {
        let mut end = self.len();
        for (j, e) in entries.iter().enumerate().rev() {
            // The j entries before `e` in the batch will also land below keys[at..end].
            let at = self.keys[..end].partition_point(|k| *k < e.key);
            self.keys.copy_within(at..end, at + j + 1);
            self.slots.copy_within(at..end, at + j + 1);
            self.keys[at + j] = e.key;
            self.slots[at + j] = e.slot;
            end = at;
        }
        self.len += entries.len() as u32;
    }

    /// Number of keys below `key`.
    pub(super) fn count_below(&self, key: &Key) -> usize {
        self.keys().partition_point(|k| k < key)
    }

    /// Index of a present key.
    pub(super) fn position(&self, key: &Key) -> Option<usize> {
        self.keys().binary_search(key).ok()
    }

    /// Removes present keys (strictly ascending): the runs between them move down by one
    /// block copy each.
    pub(super) fn remove(&mut self, keys: &[Key]) {
        let n = self.len();
        let (mut read, mut write) = (0, 0);
        for key in keys {
            let at = read
                + self.keys[read..n]
                    .binary_search(key)
                    .expect("removed a key that is not present");
            self.keys.copy_within(read..at, write);
            self.slots.copy_within(read..at, write);
            write += at - read;
            read = at + 1;
        }
        self.keys.copy_within(read..n, write);
        self.slots.copy_within(read..n, write);
        self.len = (write + n - read) as u32;
    }

    /// Removes the entries of ranks `lo..hi` within the leaf.
    pub(super) fn remove_ranks(&mut self, lo: usize, hi: usize) {
        let n = self.len();
        self.keys.copy_within(hi..n, lo);
        self.slots.copy_within(hi..n, lo);
        self.len = (n - (hi - lo)) as u32;
    }

    /// Inserts sorted entries, splitting when they do not fit: returns the leaf's entries in
    /// order when it must split (the caller spreads them over new leaves).
    pub(super) fn insert(&mut self, entries: &[Entry]) -> Option<Vec<Entry>> {
        if self.len() + entries.len() <= LEAF_CAP {
            self.merge_in(entries);
            return None;
        }
        let mut merged = Vec::with_capacity(self.len() + entries.len());
        self.ordered(&mut merged);
        let mine = merged.len();
        merged.extend_from_slice(entries);
        // Two sorted runs: merge them in place.
        merge_runs(&mut merged, mine);
        Some(merged)
    }
}

/// Sorts `v`, whose `v[..mid]` and `v[mid..]` are each sorted by key.
fn merge_runs(v: &mut [Entry], mid: usize) {
    if mid == 0 || mid == v.len() || v[mid - 1].key < v[mid].key {
        return;
    }
    let right = v[mid..].to_vec();
    let (mut i, mut j, mut w) = (mid, right.len(), v.len());
    while j > 0 {
        w -= 1;
        if i > 0 && v[i - 1].key > right[j - 1].key {
            i -= 1;
            v[w] = v[i];
        } else {
            j -= 1;
            v[w] = right[j];
        }
    }
}
