//! A leaf of the order index: up to `LEAF_CAP` entries, a sorted prefix and an unsorted tail
//! of entries appended since. Appending touches the header and one line at the end; the
//! leaf is sorted when a change needs its order (a removal, a split). Reads never change it:
//! they sort a copy of the (short) tail on the stack.

use super::{Entry, Key, NONE};

pub(super) const LEAF_CAP: usize = 64;

#[derive(Clone)]
#[repr(C, align(64))]
pub(super) struct Leaf {
    pub(super) len: u32,
    /// `keys[..sorted]` ascend; `keys[sorted..len]` were appended since and are unordered.
    pub(super) sorted: u32,
    pub(super) prev: u32,
    pub(super) next: u32,
    pub(super) keys: [Key; LEAF_CAP],
    pub(super) slots: [u32; LEAF_CAP],
}

impl Leaf {
    pub(super) fn empty() -> Self {
        Leaf {
            len: 0,
            sorted: 0,
            prev: NONE,
            next: NONE,
            keys: [Key::default(); LEAF_CAP],
            slots: [0; LEAF_CAP],
        }
    }

    /// A sorted leaf holding `entries`.
    pub(super) fn filled(entries: &[Entry]) -> Self {
        let mut leaf = Leaf::empty();
        leaf.len = entries.len() as u32;
        leaf.sorted = leaf.len;
        for (k, e) in entries.iter().enumerate() {
            leaf.keys[k] = e.key;
            leaf.slots[k] = e.slot;
        }
        leaf
    }

    pub(super) fn len(&self) -> usize {
        self.len as usize
    }

    fn tail(&self) -> usize {
        (self.len - self.sorted) as usize
    }

    fn entry(&self, i: usize) -> Entry {
        Entry {
            key: self.keys[i],
            slot: self.slots[i],
        }
    }

    /// Storage indices of the appended entries, sorted by key (64 bytes on the stack).
    fn sorted_tail(&self) -> ([u8; LEAF_CAP], usize) {
        let (s, t) = (self.sorted as usize, self.tail());
        let mut idx = [0u8; LEAF_CAP];
        for (k, i) in idx[..t].iter_mut().enumerate() {
            *i = (s + k) as u8;
        }
        idx[..t].sort_unstable_by_key(|&i| self.keys[i as usize]);
        (idx, t)
    }

    /// Calls `f` with the storage index of each entry in ascending key order, until it
    /// returns false.
    fn for_each_ordered(&self, mut f: impl FnMut(usize) -> bool) {
        let s = self.sorted as usize;
        if self.tail() == 0 {
            for i in 0..s {
                if !f(i) {
                    return;
                }
            }
            return;
        }
        let (tail, t) = self.sorted_tail();
        let (mut a, mut b) = (0, 0);
        while a < s || b < t {
            let take_prefix = b == t || (a < s && self.keys[a] < self.keys[tail[b] as usize]);
            let i = if take_prefix {
                a += 1;
                a - 1
            } else {
                b += 1;
                tail[b - 1] as usize
            };
            if !f(i) {
                return;
            }
        }
    }

    /// The entry of rank `i` within the leaf (0-based, ascending).
    pub(super) fn nth(&self, i: usize) -> Entry {
        if self.tail() == 0 {
            return self.entry(i);
        }
        let (mut rank, mut found) = (0, 0);
        self.for_each_ordered(|k| {
            found = k;
            rank += 1;
            rank <= i
        });
        self.entry(found)
    }

    /// Copies the entries in ascending order into `out`; returns how many.
    pub(super) fn ordered_into(&self, out: &mut [Entry; LEAF_CAP]) -> usize {
        let mut w = 0;
        self.for_each_ordered(|i| {
            out[w] = self.entry(i);
            w += 1;
            true
        });
        w
    }

    /// The entries in ascending order, appended to `out`.
    pub(super) fn ordered(&self, out: &mut Vec<Entry>) {
        self.for_each_ordered(|i| {
            out.push(self.entry(i));
            true
        });
    }

    /// Sorts the appended entries into the prefix.
    pub(super) fn normalize(&mut self) {
        if self.tail() == 0 {
            return;
        }
        let mut buf = [Entry::default(); LEAF_CAP];
        let n = self.ordered_into(&mut buf);
        for (k, e) in buf[..n].iter().enumerate() {
            self.keys[k] = e.key;
            self.slots[k] = e.slot;
        }
        self.sorted = self.len;
    }

    /// Appends sorted entries that fit.
    pub(super) fn append(&mut self, entries: &[Entry]) {
        let n = self.len();
        let still_sorted =
            self.sorted as usize == n && (n == 0 || self.keys[n - 1] < entries[0].key);
        for (k, e) in entries.iter().enumerate() {
            self.keys[n + k] = e.key;
            self.slots[n + k] = e.slot;
        }
        self.len += entries.len() as u32;
        if still_sorted {
            self.sorted = self.len;
        }
    }

    /// Number of keys below `key`.
    pub(super) fn count_below(&self, key: &Key) -> usize {
        let s = self.sorted as usize;
        self.keys[..s].partition_point(|k| k < key)
            + self.keys[s..self.len()].iter().filter(|k| *k < key).count()
    }

    /// Index (in storage order) of a present key.
    pub(super) fn position(&self, key: &Key) -> Option<usize> {
        let s = self.sorted as usize;
        let at = self.keys[..s].partition_point(|k| k < key);
        if at < s && self.keys[at] == *key {
            return Some(at);
        }
        (s..self.len()).find(|&i| self.keys[i] == *key)
    }

    /// Removes present keys (ascending). A few keys are taken out one by one (the unsorted
    /// tail stays unsorted); many in one pass over the sorted leaf.
    pub(super) fn remove(&mut self, keys: &[Key]) {
        if keys.len() * 8 <= self.len() {
            for key in keys {
                self.remove_one(key);
            }
            return;
        }
        self.normalize();
        let (mut w, mut j) = (0, 0);
        for r in 0..self.len() {
            let key = self.keys[r];
            while j < keys.len() && keys[j] < key {
                j += 1;
            }
            if j < keys.len() && keys[j] == key {
                continue;
            }
            self.keys[w] = key;
            self.slots[w] = self.slots[r];
            w += 1;
        }
        debug_assert_eq!(
            self.len() - w,
            keys.len(),
            "removed a key that is not present"
        );
        self.len = w as u32;
        self.sorted = self.len;
    }

    /// Removes one present key: from the sorted prefix by shifting what follows it (the tail
    /// keeps its place after the prefix), from the tail by moving the last entry into it.
    fn remove_one(&mut self, key: &Key) {
        let (s, n) = (self.sorted as usize, self.len());
        let at = self
            .position(key)
            .expect("removed a key that is not present");
        if at < s {
            self.keys.copy_within(at + 1..n, at);
            self.slots.copy_within(at + 1..n, at);
            self.sorted -= 1;
        } else {
            self.keys[at] = self.keys[n - 1];
            self.slots[at] = self.slots[n - 1];
        }
        self.len -= 1;
    }

    /// Removes the entries of ranks `lo..hi` within the leaf; the leaf is sorted afterwards.
    pub(super) fn remove_ranks(&mut self, lo: usize, hi: usize) {
        self.normalize();
        let n = self.len();
        self.keys.copy_within(hi..n, lo);
        self.slots.copy_within(hi..n, lo);
        self.len = (n - (hi - lo)) as u32;
        self.sorted = self.len;
    }

    /// Inserts sorted entries, splitting when they do not fit: returns the leaf's entries in
    /// order when it must split (the caller spreads them over new leaves).
    pub(super) fn insert(&mut self, entries: &[Entry]) -> Option<Vec<Entry>> {
        if self.len() + entries.len() <= LEAF_CAP {
            self.append(entries);
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
