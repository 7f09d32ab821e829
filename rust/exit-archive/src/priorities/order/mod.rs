//! Order-statistics B+tree over unique [`Key`]s, each carrying a `u32` slot: select by rank,
//! rank of a key, batched insertion and removal of sorted keys, removal of rank ranges,
//! in-order walks and positions for cursors. Every read takes `&self`.
//!
//! Built for batches on trees larger than the caches:
//! - a batch descends once: sorted keys are split among children by the separators, and the
//!   leaves it will visit are routed first and prefetched a few ahead of their turn;
//! - every change leaves each leaf sorted, so reads never sort (see `leaf.rs`).
//!
//! Removal is lazy (empty nodes are unlinked, half-empty ones are not merged); the tree is
//! rebuilt packed once its leaves are on average less than half full, which keeps the
//! amortized cost O(log n) per key.

mod batch;
mod cursor;
mod leaf;
mod rebuild;
#[cfg(test)]
mod tests;

use crate::prefetch::prefetch_range;
pub(crate) use cursor::Cursor;
use leaf::{Leaf, LEAF_CAP};
pub(crate) use rebuild::Removed;

const INNER_CAP: usize = 64;
/// Entries per node when nodes are built or split: room for inserts before the next split.
const LEAF_FILL: usize = 48;
const INNER_FILL: usize = 48;
const NONE: u32 = u32::MAX;

/// Rank order of residents: ascending keys are descending scores, then ascending ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    /// The score mapped so that ascending values are descending scores.
    pub(crate) score_rank: u64,
    pub(crate) id: u64,
}

/// A key and the slot of the resident it names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: Key,
    pub(crate) slot: u32,
}

/// A place in the tree: a leaf and a rank within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Position {
    leaf: u32,
    index: usize,
}

/// An inner node's reference to a child: the child's first key, node index and entry count.
#[derive(Clone, Copy, Debug)]
struct Child {
    first: Key,
    node: u32,
    count: u32,
}

#[derive(Clone)]
struct Inner {
    len: usize,
    /// `seps[i]` (i >= 1) separates child i - 1 (keys below) from child i (keys at or above).
    seps: [Key; INNER_CAP],
    children: [u32; INNER_CAP],
    counts: [u32; INNER_CAP],
}

impl Inner {
    fn empty() -> Self {
        Inner {
            len: 0,
            seps: [Key::default(); INNER_CAP],
            children: [0; INNER_CAP],
            counts: [0; INNER_CAP],
        }
    }

    /// Index of the child whose key range holds `key`.
    #[inline]
    fn child_for(&self, key: &Key) -> usize {
        self.seps[1..self.len].partition_point(|s| s <= key)
    }

    fn total(&self) -> u32 {
        self.counts[..self.len].iter().sum()
    }

    fn child(&self, i: usize) -> Child {
        Child {
            first: self.seps[i],
            node: self.children[i],
            count: self.counts[i],
        }
    }

    fn set_children(&mut self, list: &[Child]) {
        self.len = list.len();
        for (k, c) in list.iter().enumerate() {
            self.seps[k] = c.first;
            self.children[k] = c.node;
            self.counts[k] = c.count;
        }
    }
}

#[derive(Clone)]
pub(crate) struct OrderIndex {
    leaves: Vec<Leaf>,
    inners: Vec<Inner>,
    free_leaves: Vec<u32>,
    free_inners: Vec<u32>,
    root: u32,
    /// Number of inner levels above the leaves (0: the root is a leaf).
    height: usize,
    len: usize,
}

impl Default for OrderIndex {
    fn default() -> Self {
        Self::new()
    }
}

/// Sizes of `pieces` near-equal parts of `total` entries.
fn piece_sizes(total: usize, pieces: usize) -> impl Iterator<Item = usize> {
    let (base, extra) = (total / pieces, total % pieces);
    (0..pieces).map(move |p| base + usize::from(p < extra))
}

impl OrderIndex {
    pub(crate) fn new() -> Self {
        OrderIndex {
            leaves: vec![Leaf::empty()],
            inners: Vec::new(),
            free_leaves: Vec::new(),
            free_inners: Vec::new(),
            root: 0,
            height: 0,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes held by the node arenas.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.leaves.capacity() * std::mem::size_of::<Leaf>()
            + self.inners.capacity() * std::mem::size_of::<Inner>()
    }

    /// The leaf holding rank `r` and the rank within it.
    fn leaf_of_rank(&self, mut r: usize) -> Position {
        assert!(r < self.len, "rank {r} out of range {}", self.len);
        let mut node = self.root;
        for _ in 0..self.height {
            let inner = &self.inners[node as usize];
            let mut i = 0;
            while r >= inner.counts[i] as usize {
                r -= inner.counts[i] as usize;
                i += 1;
            }
            node = inner.children[i];
        }
        Position {
            leaf: node,
            index: r,
        }
    }

    /// Hints that the leaf holding rank `r` will be read soon.
    pub(crate) fn prefetch_rank(&self, r: usize) {
        if r < self.len {
            prefetch_range(&self.leaves[self.leaf_of_rank(r).leaf as usize]);
        }
    }

    /// The entry of rank `r` (0-based, ascending order).
    pub(crate) fn select(&self, r: usize) -> Entry {
        self.at(self.leaf_of_rank(r))
    }

    /// The entries of many ranks, read in the given order, each leaf prefetched a few draws
    /// ahead of its turn.
    pub(crate) fn select_many(&self, ranks: &[usize], mut f: impl FnMut(usize, Entry)) {
        for (i, &r) in ranks.iter().enumerate() {
            if let Some(&later) = ranks.get(i + crate::prefetch::AHEAD) {
                self.prefetch_rank(later);
            }
            f(i, self.select(r));
        }
    }

    /// Number of keys strictly smaller than `key`.
    pub(crate) fn rank_lower_bound(&self, key: &Key) -> usize {
        let mut node = self.root as usize;
        let mut acc = 0usize;
        for _ in 0..self.height {
            let inner = &self.inners[node];
            let i = inner.child_for(key);
            acc += inner.counts[..i].iter().map(|&c| c as usize).sum::<usize>();
            node = inner.children[i] as usize;
        }
        acc + self.leaves[node].count_below(key)
    }

    fn leaf_for(&self, key: &Key) -> usize {
        let mut node = self.root as usize;
        for _ in 0..self.height {
            let inner = &self.inners[node];
            node = inner.children[inner.child_for(key)] as usize;
        }
        node
    }

    /// Changes the slot carried by a present key.
    pub(crate) fn set_slot(&mut self, key: &Key, slot: u32) {
        let at = self.leaf_for(key);
        let leaf = &mut self.leaves[at];
        let at = leaf.position(key).expect("set_slot of an absent key");
        leaf.slots[at] = slot;
    }

    /// The position of rank `r`.
    fn locate(&self, r: usize) -> Position {
        self.leaf_of_rank(r)
    }

    /// The entry at a position.
    fn at(&self, pos: Position) -> Entry {
        self.leaves[pos.leaf as usize].nth(pos.index)
    }

    /// Calls `f` on entries in ascending order from rank `from` until it returns false.
    pub(crate) fn walk_from(&self, from: usize, f: &mut impl FnMut(Entry) -> bool) {
        if from < self.len {
            self.walk_node(self.root, self.height, from, f);
        }
    }

    /// Returns false once `f` did.
    fn walk_node(
        &self,
        node: u32,
        height: usize,
        mut skip: usize,
        f: &mut impl FnMut(Entry) -> bool,
    ) -> bool {
        if height == 0 {
            let leaf = &self.leaves[node as usize];
            return (skip..leaf.len()).all(|i| f(leaf.nth(i)));
        }
        let inner = &self.inners[node as usize];
        for i in 0..inner.len {
            let c = inner.counts[i] as usize;
            if skip >= c {
                skip -= c;
                continue;
            }
            if !self.walk_node(inner.children[i], height - 1, skip, f) {
                return false;
            }
            skip = 0;
        }
        true
    }

    /// All entries in ascending order.
    pub(crate) fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::with_capacity(self.len);
        self.walk_from(0, &mut |e| {
            out.push(e);
            true
        });
        out
    }

    fn rebuild(&mut self) {
        let entries = self.entries();
        *self = OrderIndex::from_sorted(&entries);
    }

    /// Builds a packed tree from strictly ascending entries.
    pub(crate) fn from_sorted(entries: &[Entry]) -> Self {
        let keys: Vec<Key> = entries.iter().map(|e| e.key).collect();
        let slots: Vec<u32> = entries.iter().map(|e| e.slot).collect();
        OrderIndex::from_parts(&keys, &slots)
    }

    /// Checks structural invariants (tests and debugging).
    #[cfg(any(test, feature = "check-invariants"))]
    pub(crate) fn check(&self) {
        let entries = self.entries();
        assert_eq!(entries.len(), self.len);
        assert!(
            entries.windows(2).all(|w| w[0].key < w[1].key),
            "keys out of order"
        );
        let mut leaves = Vec::new();
        self.check_node(self.root, self.height, None, None, &mut leaves);
        // The leaf chain visits the leaves in order.
        for w in leaves.windows(2) {
            assert_eq!(self.leaves[w[0] as usize].next, w[1], "leaf chain");
            assert_eq!(self.leaves[w[1] as usize].prev, w[0], "leaf chain");
        }
        if let (Some(&first), Some(&last)) = (leaves.first(), leaves.last()) {
            assert_eq!(self.leaves[first as usize].prev, NONE);
            assert_eq!(self.leaves[last as usize].next, NONE);
        }
    }

    /// Returns the subtree's count; checks counts, leaf order and key ranges [lo, hi).
    #[cfg(any(test, feature = "check-invariants"))]
    fn check_node(
        &self,
        node: u32,
        height: usize,
        lo: Option<Key>,
        hi: Option<Key>,
        leaves: &mut Vec<u32>,
    ) -> u32 {
        if height == 0 {
            let leaf = &self.leaves[node as usize];
            assert!(leaf.len() <= LEAF_CAP);
            assert!(leaf.keys().windows(2).all(|w| w[0] < w[1]), "leaf order");
            for k in leaf.keys() {
                assert!(lo.map_or(true, |lo| *k >= lo) && hi.map_or(true, |hi| *k < hi));
            }
            leaves.push(node);
            return leaf.len;
        }
        let inner = &self.inners[node as usize];
        assert!(inner.len >= 1);
        for i in 0..inner.len {
            let lo = if i == 0 { lo } else { Some(inner.seps[i]) };
            let hi = if i + 1 < inner.len {
                Some(inner.seps[i + 1])
            } else {
                hi
            };
            let c = self.check_node(inner.children[i], height - 1, lo, hi, leaves);
            assert_eq!(c, inner.counts[i], "stale subtree count");
        }
        inner.total()
    }
}
