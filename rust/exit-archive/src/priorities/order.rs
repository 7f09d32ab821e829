//! Order-statistics B+tree over unique `(u64, u64)` keys, each carrying a `u32` slot: select
//! by rank, rank of a key, batched insertion and removal of sorted keys, in-order walks and
//! leaf-by-leaf positions for cursors.
//!
//! Built for batches on trees larger than the caches:
//! - a batch descends once: sorted keys are split among children by the separators, and the
//!   leaves it will visit are routed first and prefetched a few ahead of their turn;
//! - a leaf keeps a sorted prefix and appends insertions unsorted after it, so an insertion
//!   touches the leaf's header and one line at its end; the leaf is sorted when something
//!   needs its order (a rank query, a removal, a split, a walk).
//!
//! Removal is lazy (empty nodes are unlinked, half-empty ones are not merged); the tree is
//! rebuilt packed once its leaves are on average less than half full, which keeps the
//! amortized cost O(log n) per key.

use crate::prefetch::{prefetch, prefetch_range};

pub(crate) type Key = (u64, u64);

const LEAF_CAP: usize = 64;
const INNER_CAP: usize = 64;
/// Entries per node when nodes are built or split: room for inserts before the next split.
const LEAF_FILL: usize = 48;
const INNER_FILL: usize = 48;
/// How many leaves ahead of the one being changed a batch prefetches.
const PREFETCH_AHEAD: usize = 6;
const NONE: u32 = u32::MAX;

#[derive(Clone)]
#[repr(C, align(64))]
struct Leaf {
    len: u32,
    /// `keys[..sorted]` ascend; `keys[sorted..len]` were appended since and are unordered.
    sorted: u32,
    prev: u32,
    next: u32,
    keys: [Key; LEAF_CAP],
    slots: [u32; LEAF_CAP],
}

#[derive(Clone)]
struct Inner {
    len: usize,
    /// `seps[i]` (i >= 1) separates child i - 1 (keys below) from child i (keys at or above).
    seps: [Key; INNER_CAP],
    children: [u32; INNER_CAP],
    counts: [u32; INNER_CAP],
}

impl Leaf {
    fn empty() -> Self {
        Leaf {
            len: 0,
            sorted: 0,
            prev: NONE,
            next: NONE,
            keys: [(0, 0); LEAF_CAP],
            slots: [0; LEAF_CAP],
        }
    }

    fn len(&self) -> usize {
        self.len as usize
    }

    /// Sorts the appended entries into the prefix.
    fn normalize(&mut self) {
        let (s, n) = (self.sorted as usize, self.len as usize);
        if s == n {
            return;
        }
        // On the stack: a leaf is sorted once per batch that touches it, often thousands of
        // times per batch.
        let mut buf = [((0, 0), 0u32); LEAF_CAP];
        let tail = &mut buf[..n - s];
        for (t, i) in tail.iter_mut().zip(s..n) {
            *t = (self.keys[i], self.slots[i]);
        }
        tail.sort_unstable_by_key(|e| e.0);
        // Merge from the back: the prefix moves up only as far as needed.
        let (mut i, mut j, mut w) = (s, tail.len(), n);
        while j > 0 {
            w -= 1;
            if i > 0 && self.keys[i - 1] > tail[j - 1].0 {
                i -= 1;
                self.keys[w] = self.keys[i];
                self.slots[w] = self.slots[i];
            } else {
                j -= 1;
                (self.keys[w], self.slots[w]) = tail[j];
            }
        }
        self.sorted = self.len;
    }

    /// Appends sorted entries that fit.
    fn append(&mut self, entries: &[(Key, u32)]) {
        let n = self.len();
        let still_sorted = self.sorted as usize == n && (n == 0 || self.keys[n - 1] < entries[0].0);
        for (k, &(key, slot)) in entries.iter().enumerate() {
            self.keys[n + k] = key;
            self.slots[n + k] = slot;
        }
        self.len += entries.len() as u32;
        if still_sorted {
            self.sorted = self.len;
        }
    }

    /// Number of keys below `key`.
    fn count_below(&self, key: &Key) -> usize {
        let s = self.sorted as usize;
        self.keys[..s].partition_point(|k| k < key)
            + self.keys[s..self.len()].iter().filter(|k| *k < key).count()
    }

    /// Index of a present key.
    fn position(&self, key: &Key) -> Option<usize> {
        let s = self.sorted as usize;
        let at = self.keys[..s].partition_point(|k| k < key);
        if at < s && self.keys[at] == *key {
            return Some(at);
        }
        (s..self.len()).find(|&i| self.keys[i] == *key)
    }

    /// Removes present keys (ascending).
    fn remove(&mut self, keys: &[Key]) {
        let s = self.sorted as usize;
        let (mut w, mut j, mut removed_sorted) = (0, 0, 0);
        for r in 0..self.len() {
            let key = self.keys[r];
            let gone = if r < s {
                while j < keys.len() && keys[j] < key {
                    j += 1;
                }
                j < keys.len() && keys[j] == key
            } else {
                keys.binary_search(&key).is_ok()
            };
            if gone {
                removed_sorted += usize::from(r < s);
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
        self.sorted = (s - removed_sorted) as u32;
    }

    /// The leaf's entries in ascending order (a sorted copy when it has appended entries).
    fn ordered(&self) -> std::borrow::Cow<'_, Leaf> {
        if self.sorted == self.len {
            std::borrow::Cow::Borrowed(self)
        } else {
            let mut copy = self.clone();
            copy.normalize();
            std::borrow::Cow::Owned(copy)
        }
    }
}

impl Inner {
    fn empty() -> Self {
        Inner {
            len: 0,
            seps: [(0, 0); INNER_CAP],
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
}

/// A new node produced by a split: its first key, its index and its entry count.
type Split = (Key, u32, u32);

/// The leaves a batch will visit, in order, prefetched a few ahead of the one being changed.
/// Routed before the batch changes anything; splits only add leaves after the visited ones,
/// so the list stays right (and a prefetch is only a hint anyway). Two stages: the header
/// line first, then, once the header is cached, the lines the change will touch.
struct Lookahead {
    leaves: Vec<u32>,
    next: usize,
}

impl Lookahead {
    fn step(&mut self, leaves: &[Leaf], whole: bool) {
        if let Some(leaf) = self.leaves.get(self.next + 2 * PREFETCH_AHEAD) {
            if let Some(leaf) = leaves.get(*leaf as usize) {
                prefetch(leaf);
            }
        }
        if let Some(leaf) = self.leaves.get(self.next + PREFETCH_AHEAD) {
            if let Some(leaf) = leaves.get(*leaf as usize) {
                if whole {
                    prefetch_range(leaf);
                } else {
                    // An append writes at the end of the keys and slots.
                    let n = leaf.len().min(LEAF_CAP - 1);
                    prefetch(&leaf.keys[n]);
                    prefetch(&leaf.slots[n]);
                }
            }
        }
        self.next += 1;
    }
}

/// The children a sorted batch visits below one inner node, on the stack: a batch visits
/// every inner node above the leaves it changes, and a heap list per visit cost more than
/// the partition itself.
struct Parts {
    items: [(usize, usize, usize); INNER_CAP],
    len: usize,
}

impl std::ops::Deref for Parts {
    type Target = [(usize, usize, usize)];

    fn deref(&self) -> &Self::Target {
        &self.items[..self.len]
    }
}

/// A position in the tree: a leaf and an index in it.
pub(crate) type Position = (u32, usize);

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

    fn alloc_leaf(&mut self) -> u32 {
        if let Some(i) = self.free_leaves.pop() {
            self.leaves[i as usize] = Leaf::empty();
            i
        } else {
            crate::huge::reserve(&mut self.leaves, 1);
            self.leaves.push(Leaf::empty());
            (self.leaves.len() - 1) as u32
        }
    }

    fn alloc_inner(&mut self) -> u32 {
        if let Some(i) = self.free_inners.pop() {
            self.inners[i as usize].len = 0;
            i
        } else {
            self.inners.push(Inner::empty());
            (self.inners.len() - 1) as u32
        }
    }

    /// The leaf holding rank `r` and the rank within it.
    fn leaf_of_rank(&self, mut r: usize) -> (u32, usize) {
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
        (node, r)
    }

    /// Hints that the leaf holding rank `r` will be read soon.
    pub(crate) fn prefetch_rank(&self, r: usize) {
        if r < self.len {
            prefetch_range(&self.leaves[self.leaf_of_rank(r).0 as usize]);
        }
    }

    /// The entry of rank `r` (0-based, ascending order); sorts its leaf if needed.
    pub(crate) fn select(&mut self, r: usize) -> (Key, u32) {
        let (leaf, i) = self.leaf_of_rank(r);
        let leaf = &mut self.leaves[leaf as usize];
        leaf.normalize();
        (leaf.keys[i], leaf.slots[i])
    }

    /// The entry of rank `r` without changing the tree.
    pub(crate) fn select_ref(&self, r: usize) -> (Key, u32) {
        let (leaf, i) = self.leaf_of_rank(r);
        let leaf = self.leaves[leaf as usize].ordered();
        (leaf.keys[i], leaf.slots[i])
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
        let leaf = self.leaf_for(key);
        let leaf = &mut self.leaves[leaf];
        let at = leaf.position(key).expect("set_slot of an absent key");
        leaf.slots[at] = slot;
    }

    /// Inserts strictly ascending entries whose keys are not present.
    pub(crate) fn insert_sorted(&mut self, entries: &[(Key, u32)]) {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        if entries.is_empty() {
            return;
        }
        let mut splits = Vec::new();
        let mut ahead = self.lookahead(entries.len(), |i| entries[i].0);
        self.insert_into(self.root, self.height, entries, &mut splits, &mut ahead);
        self.len += entries.len();
        while !splits.is_empty() {
            // The root split: a new root over the old one and its new siblings.
            let old_total = self.subtree_total(self.root, self.height);
            let mut list = vec![((0, 0), self.root, old_total)];
            list.append(&mut splits);
            let node = self.alloc_inner();
            self.write_inner(node, &list, &mut splits);
            self.root = node;
            self.height += 1;
        }
    }

    fn subtree_total(&self, node: u32, height: usize) -> u32 {
        if height == 0 {
            self.leaves[node as usize].len
        } else {
            self.inners[node as usize].total()
        }
    }

    /// Inserts sorted `entries` below `node`; new siblings of `node` go to `out`.
    fn insert_into(
        &mut self,
        node: u32,
        height: usize,
        entries: &[(Key, u32)],
        out: &mut Vec<Split>,
        ahead: &mut Lookahead,
    ) {
        if height == 0 {
            ahead.step(&self.leaves, false);
            return self.insert_into_leaf(node, entries, out);
        }
        let parts = self.partition(node, 0, entries.len(), |i| entries[i].0);
        let mut new_children: Vec<(usize, Vec<Split>)> = Vec::new();
        for &(i, start, end) in parts.iter() {
            let child = self.inners[node as usize].children[i];
            let mut splits = Vec::new();
            self.insert_into(child, height - 1, &entries[start..end], &mut splits, ahead);
            let moved: u32 = splits.iter().map(|s| s.2).sum();
            let inner = &mut self.inners[node as usize];
            inner.counts[i] = inner.counts[i] + (end - start) as u32 - moved;
            if !splits.is_empty() {
                new_children.push((i, splits));
            }
        }
        if new_children.is_empty() {
            return;
        }
        let inner = &self.inners[node as usize];
        let mut list: Vec<Split> = Vec::with_capacity(inner.len + new_children.len());
        let mut pending = new_children.into_iter().peekable();
        for i in 0..inner.len {
            list.push((inner.seps[i], inner.children[i], inner.counts[i]));
            if pending.peek().is_some_and(|(c, _)| *c == i) {
                list.extend(pending.next().expect("peeked").1);
            }
        }
        self.write_inner(node, &list, out);
    }

    /// (child index, start, end) of each child's share of the sorted keys at positions
    /// `start..end`.
    fn partition(
        &self,
        node: u32,
        mut start: usize,
        end: usize,
        key: impl Fn(usize) -> Key,
    ) -> Parts {
        let inner = &self.inners[node as usize];
        let mut parts = Parts {
            items: [(0, 0, 0); INNER_CAP],
            len: 0,
        };
        while start < end {
            let i = inner.child_for(&key(start));
            let stop = if i + 1 < inner.len {
                let sep = inner.seps[i + 1];
                // First position after `start` whose key is >= sep.
                let (mut lo, mut hi) = (start + 1, end);
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    if key(mid) < sep {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                lo
            } else {
                end
            };
            parts.items[parts.len] = (i, start, stop);
            parts.len += 1;
            start = stop;
        }
        parts
    }

    /// Routes sorted keys to the leaves they visit, prefetching inner nodes on the way.
    fn lookahead(&self, len: usize, key: impl Fn(usize) -> Key + Copy) -> Lookahead {
        let mut leaves = Vec::new();
        if len > 2 {
            self.route(self.root, self.height, 0, len, key, &mut leaves);
        }
        for &l in leaves.iter().take(2 * PREFETCH_AHEAD) {
            prefetch(&self.leaves[l as usize]);
        }
        Lookahead { leaves, next: 0 }
    }

    fn route(
        &self,
        node: u32,
        height: usize,
        start: usize,
        end: usize,
        key: impl Fn(usize) -> Key + Copy,
        out: &mut Vec<u32>,
    ) {
        if height == 0 {
            out.push(node);
            return;
        }
        let parts = self.partition(node, start, end, key);
        let children = &self.inners[node as usize].children;
        for (p, &(i, s, e)) in parts.iter().enumerate() {
            if height >= 2 {
                if let Some(&(j, _, _)) = parts.get(p + PREFETCH_AHEAD) {
                    prefetch_range(&self.inners[children[j] as usize]);
                }
            }
            self.route(children[i], height - 1, s, e, key, out);
        }
    }

    /// Writes a child list into `node`, splitting it into several inner nodes when it is too
    /// long; the extra nodes go to `out`.
    fn write_inner(&mut self, node: u32, list: &[Split], out: &mut Vec<Split>) {
        let pieces = if list.len() <= INNER_CAP {
            1
        } else {
            list.len().div_ceil(INNER_FILL)
        };
        let mut start = 0;
        for (p, size) in piece_sizes(list.len(), pieces).enumerate() {
            let target = if p == 0 { node } else { self.alloc_inner() };
            let inner = &mut self.inners[target as usize];
            inner.len = size;
            for (k, &(sep, child, count)) in list[start..start + size].iter().enumerate() {
                inner.seps[k] = sep;
                inner.children[k] = child;
                inner.counts[k] = count;
            }
            if p > 0 {
                out.push((list[start].0, target, inner.total()));
            }
            start += size;
        }
    }

    fn insert_into_leaf(&mut self, node: u32, entries: &[(Key, u32)], out: &mut Vec<Split>) {
        let leaf = &mut self.leaves[node as usize];
        let total = leaf.len() + entries.len();
        if total <= LEAF_CAP {
            leaf.append(entries);
            return;
        }
        leaf.normalize();
        let mut merged: Vec<(Key, u32)> = Vec::with_capacity(total);
        let (mut i, mut j) = (0, 0);
        while i < leaf.len() || j < entries.len() {
            if j == entries.len() || (i < leaf.len() && leaf.keys[i] < entries[j].0) {
                merged.push((leaf.keys[i], leaf.slots[i]));
                i += 1;
            } else {
                merged.push(entries[j]);
                j += 1;
            }
        }
        let after = leaf.next;
        let mut start = 0;
        let mut previous = node;
        for (p, size) in piece_sizes(total, total.div_ceil(LEAF_FILL)).enumerate() {
            let target = if p == 0 { node } else { self.alloc_leaf() };
            let leaf = &mut self.leaves[target as usize];
            leaf.len = size as u32;
            leaf.sorted = size as u32;
            for (k, &(key, slot)) in merged[start..start + size].iter().enumerate() {
                leaf.keys[k] = key;
                leaf.slots[k] = slot;
            }
            if p > 0 {
                leaf.prev = previous;
                self.leaves[previous as usize].next = target;
                out.push((merged[start].0, target, size as u32));
            }
            previous = target;
            start += size;
        }
        self.leaves[previous as usize].next = after;
        if after != NONE {
            self.leaves[after as usize].prev = previous;
        }
    }

    /// Removes strictly ascending keys, all present.
    pub(crate) fn remove_sorted(&mut self, keys: &[Key]) {
        debug_assert!(keys.windows(2).all(|w| w[0] < w[1]));
        if keys.is_empty() {
            return;
        }
        let mut ahead = self.lookahead(keys.len(), |i| keys[i]);
        self.remove_from(self.root, self.height, keys, &mut ahead);
        self.len -= keys.len();
        // Collapse roots with a single child; an emptied root becomes an empty leaf.
        while self.height > 0 && self.inners[self.root as usize].len <= 1 {
            let old = self.root;
            if self.inners[old as usize].len == 0 {
                self.free_inners.push(old);
                self.root = self.alloc_leaf();
                self.height = 0;
                break;
            }
            self.root = self.inners[old as usize].children[0];
            self.free_inners.push(old);
            self.height -= 1;
        }
        let live_leaves = self.leaves.len() - self.free_leaves.len();
        if live_leaves > 8 && live_leaves * LEAF_FILL > 2 * self.len + LEAF_CAP {
            self.rebuild();
        }
    }

    fn remove_from(&mut self, node: u32, height: usize, keys: &[Key], ahead: &mut Lookahead) {
        if height == 0 {
            ahead.step(&self.leaves, true);
            self.leaves[node as usize].remove(keys);
            return;
        }
        let parts = self.partition(node, 0, keys.len(), |i| keys[i]);
        let mut emptied = false;
        for &(i, start, end) in parts.iter() {
            let child = self.inners[node as usize].children[i];
            self.remove_from(child, height - 1, &keys[start..end], ahead);
            let inner = &mut self.inners[node as usize];
            inner.counts[i] -= (end - start) as u32;
            emptied |= inner.counts[i] == 0;
        }
        if emptied {
            let inner = &self.inners[node as usize];
            let gone: Vec<u32> = (0..inner.len)
                .filter(|&i| inner.counts[i] == 0)
                .map(|i| inner.children[i])
                .collect();
            for child in gone {
                self.free_subtree(child, height - 1);
            }
            let inner = &mut self.inners[node as usize];
            let mut w = 0;
            for r in 0..inner.len {
                if inner.counts[r] > 0 {
                    inner.seps[w] = inner.seps[r];
                    inner.children[w] = inner.children[r];
                    inner.counts[w] = inner.counts[r];
                    w += 1;
                }
            }
            inner.len = w;
        }
    }

    fn free_subtree(&mut self, node: u32, height: usize) {
        if height == 0 {
            let (prev, next) = (
                self.leaves[node as usize].prev,
                self.leaves[node as usize].next,
            );
            if prev != NONE {
                self.leaves[prev as usize].next = next;
            }
            if next != NONE {
                self.leaves[next as usize].prev = prev;
            }
            self.free_leaves.push(node);
            return;
        }
        let inner = self.inners[node as usize].clone();
        for &c in &inner.children[..inner.len] {
            self.free_subtree(c, height - 1);
        }
        self.free_inners.push(node);
    }

    /// The position of rank `r`, its leaf sorted.
    pub(crate) fn locate(&mut self, r: usize) -> Position {
        let (leaf, i) = self.leaf_of_rank(r);
        self.leaves[leaf as usize].normalize();
        (leaf, i)
    }

    /// The entry at a position (of a sorted leaf).
    pub(crate) fn at(&self, (leaf, i): Position) -> (Key, u32) {
        let leaf = &self.leaves[leaf as usize];
        (leaf.keys[i], leaf.slots[i])
    }

    /// The position after `pos`, its leaf sorted; None at the end.
    pub(crate) fn next_position(&mut self, (leaf, i): Position) -> Option<Position> {
        let l = &self.leaves[leaf as usize];
        if i + 1 < l.len() {
            return Some((leaf, i + 1));
        }
        let mut next = l.next;
        while next != NONE {
            let l = &mut self.leaves[next as usize];
            if l.len > 0 {
                l.normalize();
                return Some((next, 0));
            }
            next = l.next;
        }
        None
    }

    /// The position before `pos`, its leaf sorted; None at the start.
    pub(crate) fn prev_position(&mut self, (leaf, i): Position) -> Option<Position> {
        if i > 0 {
            return Some((leaf, i - 1));
        }
        let mut prev = self.leaves[leaf as usize].prev;
        while prev != NONE {
            let l = &mut self.leaves[prev as usize];
            if l.len > 0 {
                l.normalize();
                return Some((prev, l.len() - 1));
            }
            prev = l.prev;
        }
        None
    }

    /// Calls `f` on entries in ascending order from rank `from` until it returns false.
    pub(crate) fn walk_from(&self, from: usize, f: &mut impl FnMut(Key, u32) -> bool) {
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
        f: &mut impl FnMut(Key, u32) -> bool,
    ) -> bool {
        if height == 0 {
            let leaf = self.leaves[node as usize].ordered();
            return (skip..leaf.len()).all(|i| f(leaf.keys[i], leaf.slots[i]));
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
    pub(crate) fn entries(&self) -> Vec<(Key, u32)> {
        let mut out = Vec::with_capacity(self.len);
        self.walk_from(0, &mut |k, s| {
            out.push((k, s));
            true
        });
        out
    }

    fn rebuild(&mut self) {
        let entries = self.entries();
        *self = OrderIndex::from_sorted(&entries);
    }

    /// Builds a packed tree from strictly ascending entries.
    pub(crate) fn from_sorted(entries: &[(Key, u32)]) -> Self {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        let mut tree = OrderIndex::new();
        if entries.is_empty() {
            return tree;
        }
        tree.leaves.clear();
        let chunks = entries.len().div_ceil(LEAF_FILL);
        crate::huge::reserve(&mut tree.leaves, chunks);
        let mut level: Vec<Split> = Vec::with_capacity(chunks);
        for (c, chunk) in entries.chunks(LEAF_FILL).enumerate() {
            let mut leaf = Leaf::empty();
            leaf.len = chunk.len() as u32;
            leaf.sorted = leaf.len;
            leaf.prev = if c > 0 { c as u32 - 1 } else { NONE };
            leaf.next = if c + 1 < chunks { c as u32 + 1 } else { NONE };
            for (k, &(key, slot)) in chunk.iter().enumerate() {
                leaf.keys[k] = key;
                leaf.slots[k] = slot;
            }
            tree.leaves.push(leaf);
            level.push((chunk[0].0, c as u32, chunk.len() as u32));
        }
        let mut height = 0;
        while level.len() > 1 {
            level = level
                .chunks(INNER_FILL)
                .map(|chunk| {
                    let mut inner = Inner::empty();
                    inner.len = chunk.len();
                    for (i, &(first, child, count)) in chunk.iter().enumerate() {
                        inner.seps[i] = first;
                        inner.children[i] = child;
                        inner.counts[i] = count;
                    }
                    let total = inner.total();
                    tree.inners.push(inner);
                    (chunk[0].0, (tree.inners.len() - 1) as u32, total)
                })
                .collect();
            height += 1;
        }
        tree.root = level[0].1;
        tree.height = height;
        tree.len = entries.len();
        tree
    }

    /// Checks structural invariants (tests and debugging).
    pub(crate) fn check(&self) {
        let entries = self.entries();
        assert_eq!(entries.len(), self.len);
        assert!(
            entries.windows(2).all(|w| w[0].0 < w[1].0),
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

    /// Returns the subtree's count; checks counts, sorted prefixes and key ranges [lo, hi).
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
            assert!(leaf.sorted <= leaf.len && leaf.len() <= LEAF_CAP);
            let s = leaf.sorted as usize;
            assert!(
                leaf.keys[..s].windows(2).all(|w| w[0] < w[1]),
                "leaf prefix order"
            );
            for k in &leaf.keys[..leaf.len()] {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use std::collections::BTreeMap;

    fn sorted_batch(rng: &mut Rng, model: &BTreeMap<Key, u32>, size: usize) -> Vec<(Key, u32)> {
        let mut batch = BTreeMap::new();
        while batch.len() < size {
            let key = (rng.below(4000), rng.below(50));
            if !model.contains_key(&key) {
                batch.insert(key, rng.below(1000) as u32);
            }
        }
        batch.into_iter().collect()
    }

    #[test]
    fn batches_match_a_sorted_map() {
        let mut rng = Rng::new(3);
        let mut tree = OrderIndex::new();
        let mut model: BTreeMap<Key, u32> = BTreeMap::new();
        for round in 0..3000 {
            let size = [1, 2, 7, 40, 300][rng.below(5) as usize];
            if rng.below(5) < 2 && !model.is_empty() {
                // Remove a random sorted subset, sometimes a contiguous run.
                let all: Vec<Key> = model.keys().copied().collect();
                let keys: Vec<Key> = if rng.below(2) == 0 {
                    let start = rng.below(all.len() as u64) as usize;
                    all[start..(start + size).min(all.len())].to_vec()
                } else {
                    all.into_iter()
                        .filter(|_| rng.below(4) == 0)
                        .take(size)
                        .collect()
                };
                tree.remove_sorted(&keys);
                for k in &keys {
                    model.remove(k);
                }
            } else if model.len() < 20_000 {
                let batch = sorted_batch(&mut rng, &model, size);
                tree.insert_sorted(&batch);
                model.extend(batch);
            }
            if round % 97 == 0 {
                tree.check();
                let expected: Vec<(Key, u32)> = model.iter().map(|(&k, &s)| (k, s)).collect();
                assert_eq!(tree.entries(), expected);
                for (r, (k, s)) in expected.iter().enumerate().step_by(13) {
                    assert_eq!(tree.select_ref(r), (*k, *s));
                    assert_eq!(tree.rank_lower_bound(k), r);
                }
                for (r, (k, s)) in expected.iter().enumerate().step_by(31) {
                    assert_eq!(tree.select(r), (*k, *s));
                }
                tree.check();
            }
        }
        let all: Vec<Key> = model.keys().copied().collect();
        tree.remove_sorted(&all);
        assert_eq!(tree.len(), 0);
        tree.check();
        tree.insert_sorted(&[((1, 1), 7)]);
        assert_eq!(tree.select(0), ((1, 1), 7));
    }

    #[test]
    fn positions_walk_the_leaf_chain_and_slots_change() {
        let entries: Vec<(Key, u32)> = (0..5000u64).map(|i| ((i / 3, i), i as u32)).collect();
        let mut tree = OrderIndex::from_sorted(&entries);
        // Unsorted appends in some leaves, then walks in both directions.
        let extra: Vec<(Key, u32)> = (0..500u64).map(|i| ((i * 5, 10_000 + i), 9)).collect();
        tree.insert_sorted(&extra);
        tree.check();
        let all = tree.entries();
        assert_eq!(
            tree.rank_lower_bound(&(100, 0)),
            all.partition_point(|e| e.0 < (100, 0))
        );
        let mut pos = tree.locate(17);
        for expected in &all[18..] {
            pos = tree.next_position(pos).expect("not at the end");
            assert_eq!(tree.at(pos), *expected);
        }
        assert!(tree.next_position(pos).is_none());
        for r in (0..all.len() - 1).rev() {
            pos = tree.prev_position(pos).expect("not at the start");
            assert_eq!(tree.at(pos), all[r]);
        }
        assert!(tree.prev_position(pos).is_none());
        tree.set_slot(&(10, 31), 99);
        assert_eq!(
            tree.select_ref(tree.rank_lower_bound(&(10, 31))),
            ((10, 31), 99)
        );
        tree.check();
    }
}
