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

    /// The appended entries, sorted, on the stack.
    fn sorted_tail(&self) -> ([Entry; LEAF_CAP], usize) {
        let mut buf = [Entry::default(); LEAF_CAP];
        let (s, t) = (self.sorted as usize, self.tail());
        for (b, i) in buf.iter_mut().zip(s..s + t) {
            *b = self.entry(i);
        }
        buf[..t].sort_unstable_by_key(|e| e.key);
        (buf, t)
    }

    /// The entry of rank `i` within the leaf (0-based, ascending).
    pub(super) fn nth(&self, i: usize) -> Entry {
        if self.tail() == 0 {
            return self.entry(i);
        }
        // Merge the sorted prefix with the sorted tail up to rank i.
        let (tail, t) = self.sorted_tail();
        let (mut a, mut b) = (0, 0);
        let s = self.sorted as usize;
        loop {
            let take_prefix = b == t || (a < s && self.keys[a] < tail[b].key);
            if a + b == i {
                return if take_prefix { self.entry(a) } else { tail[b] };
            }
            if take_prefix {
                a += 1;
            } else {
                b += 1;
            }
        }
    }

    /// The entries in ascending order.
    pub(super) fn ordered(&self, out: &mut Vec<Entry>) {
        let start = out.len();
        out.extend((0..self.len()).map(|i| self.entry(i)));
        if self.tail() > 0 {
            out[start..].sort_unstable_by_key(|e| e.key);
        }
    }

    /// Sorts the appended entries into the prefix.
    pub(super) fn normalize(&mut self) {
        let (s, n) = (self.sorted as usize, self.len as usize);
        if s == n {
            return;
        }
        let (tail, t) = self.sorted_tail();
        // Merge from the back: the prefix moves up only as far as needed.
        let (mut i, mut j, mut w) = (s, t, n);
        while j > 0 {
            w -= 1;
            if i > 0 && self.keys[i - 1] > tail[j - 1].key {
                i -= 1;
                self.keys[w] = self.keys[i];
                self.slots[w] = self.slots[i];
            } else {
                j -= 1;
                self.keys[w] = tail[j].key;
                self.slots[w] = tail[j].slot;
            }
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

    /// Removes present keys (ascending); the leaf is sorted afterwards.
    pub(super) fn remove(&mut self, keys: &[Key]) {
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
