//! Changes to the order index, a batch at a time: sorted insertions and removals descend
//! once, splitting the batch among children by their separators; rank ranges are cut out
//! whole subtrees at a time.

use super::leaf::Leaf;
use super::{
    piece_sizes, Child, Entry, Inner, Key, OrderIndex, INNER_CAP, INNER_FILL, LEAF_CAP, LEAF_FILL,
    NONE,
};
use crate::prefetch::{prefetch, prefetch_range};

/// How many leaves ahead of the one being changed a batch prefetches.
const LEAVES_AHEAD: usize = 6;

/// The leaves a batch will visit, in order, prefetched a few ahead of the one being changed.
/// Routed before the batch changes anything; splits only add leaves after the visited ones,
/// so the list stays right (and a prefetch is only a hint anyway). Two stages: the header
/// line first, then, once the header is cached, the whole leaf (a change moves the entries
/// after its first key).
struct Lookahead {
    leaves: Vec<u32>,
    next: usize,
}

impl Lookahead {
    fn step(&mut self, leaves: &[Leaf]) {
        if let Some(leaf) = self.leaves.get(self.next + 2 * LEAVES_AHEAD) {
            if let Some(leaf) = leaves.get(*leaf as usize) {
                prefetch(leaf);
            }
        }
        if let Some(leaf) = self.leaves.get(self.next + LEAVES_AHEAD) {
            if let Some(leaf) = leaves.get(*leaf as usize) {
                prefetch_range(leaf);
            }
        }
        self.next += 1;
    }
}

/// The share of a sorted batch one child gets: child index and the batch range.
#[derive(Clone, Copy, Default)]
struct Part {
    child: usize,
    start: usize,
    end: usize,
}

/// The children a sorted batch visits below one inner node, on the stack: a batch visits
/// every inner node above the leaves it changes, and a heap list per visit cost more than
/// the partition itself.
struct Parts {
    items: [Part; INNER_CAP],
    len: usize,
}

impl std::ops::Deref for Parts {
    type Target = [Part];

    fn deref(&self) -> &Self::Target {
        &self.items[..self.len]
    }
}

impl OrderIndex {
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

    /// Inserts strictly ascending entries whose keys are not present.
    pub(crate) fn insert_sorted(&mut self, entries: &[Entry]) {
        debug_assert!(entries.windows(2).all(|w| w[0].key < w[1].key));
        if entries.is_empty() {
            return;
        }
        let mut splits = Vec::new();
        let mut ahead = self.lookahead(entries.len(), |i| entries[i].key);
        self.insert_into(self.root, self.height, entries, &mut splits, &mut ahead);
        self.len += entries.len();
        while !splits.is_empty() {
            // The root split: a new root over the old one and its new siblings.
            let mut list = vec![Child {
                first: Key::default(),
                node: self.root,
                count: self.subtree_total(self.root, self.height),
            }];
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
        entries: &[Entry],
        out: &mut Vec<Child>,
        ahead: &mut Lookahead,
    ) {
        if height == 0 {
            ahead.step(&self.leaves);
            return self.insert_into_leaf(node, entries, out);
        }
        let parts = self.partition(node, 0, entries.len(), |i| entries[i].key);
        let mut new_children: Vec<(usize, Vec<Child>)> = Vec::new();
        for part in parts.iter() {
            let child = self.inners[node as usize].children[part.child];
            let mut splits = Vec::new();
            let batch = &entries[part.start..part.end];
            self.insert_into(child, height - 1, batch, &mut splits, ahead);
            let moved: u32 = splits.iter().map(|s| s.count).sum();
            let inner = &mut self.inners[node as usize];
            // Splits move old entries too, so `moved` may exceed the batch.
            inner.counts[part.child] = inner.counts[part.child] + batch.len() as u32 - moved;
            if !splits.is_empty() {
                new_children.push((part.child, splits));
            }
        }
        if new_children.is_empty() {
            return;
        }
        let inner = &self.inners[node as usize];
        let mut list: Vec<Child> = Vec::with_capacity(inner.len + new_children.len());
        let mut pending = new_children.into_iter().peekable();
        for i in 0..inner.len {
            list.push(inner.child(i));
            if pending.peek().is_some_and(|(c, _)| *c == i) {
                list.extend(pending.next().expect("peeked").1);
            }
        }
        self.write_inner(node, &list, out);
    }

    /// Each child's share of the sorted keys at positions `start..end`.
    fn partition(
        &self,
        node: u32,
        mut start: usize,
        end: usize,
        key: impl Fn(usize) -> Key,
    ) -> Parts {
        let inner = &self.inners[node as usize];
        let mut parts = Parts {
            items: [Part::default(); INNER_CAP],
            len: 0,
        };
        while start < end {
            let child = inner.child_for(&key(start));
            let stop = if child + 1 < inner.len {
                let sep = inner.seps[child + 1];
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
            parts.items[parts.len] = Part {
                child,
                start,
                end: stop,
            };
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
        for &l in leaves.iter().take(2 * LEAVES_AHEAD) {
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
        for (p, part) in parts.iter().enumerate() {
            if height >= 2 {
                if let Some(later) = parts.get(p + LEAVES_AHEAD) {
                    prefetch_range(&self.inners[children[later.child] as usize]);
                }
            }
            self.route(
                children[part.child],
                height - 1,
                part.start,
                part.end,
                key,
                out,
            );
        }
    }

    /// Writes a child list into `node`, splitting it into several inner nodes when it is too
    /// long; the extra nodes go to `out`.
    fn write_inner(&mut self, node: u32, list: &[Child], out: &mut Vec<Child>) {
        let pieces = if list.len() <= INNER_CAP {
            1
        } else {
            list.len().div_ceil(INNER_FILL)
        };
        let mut start = 0;
        for (p, size) in piece_sizes(list.len(), pieces).enumerate() {
            let target = if p == 0 { node } else { self.alloc_inner() };
            let inner = &mut self.inners[target as usize];
            inner.set_children(&list[start..start + size]);
            if p > 0 {
                out.push(Child {
                    first: list[start].first,
                    node: target,
                    count: inner.total(),
                });
            }
            start += size;
        }
    }

    fn insert_into_leaf(&mut self, node: u32, entries: &[Entry], out: &mut Vec<Child>) {
        let Some(merged) = self.leaves[node as usize].insert(entries) else {
            return;
        };
        // Spread over this leaf and new ones after it, in the leaf chain too.
        let after = self.leaves[node as usize].next;
        let mut start = 0;
        let mut previous = node;
        for (p, size) in piece_sizes(merged.len(), merged.len().div_ceil(LEAF_FILL)).enumerate() {
            let target = if p == 0 { node } else { self.alloc_leaf() };
            let prev = self.leaves[target as usize].prev;
            let mut leaf = Leaf::filled(&merged[start..start + size]);
            leaf.prev = if p == 0 { prev } else { previous };
            if p > 0 {
                self.leaves[previous as usize].next = target;
                out.push(Child {
                    first: merged[start].key,
                    node: target,
                    count: size as u32,
                });
            }
            self.leaves[target as usize] = leaf;
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
        self.tidy();
    }

    fn remove_from(&mut self, node: u32, height: usize, keys: &[Key], ahead: &mut Lookahead) {
        if height == 0 {
            ahead.step(&self.leaves);
            self.leaves[node as usize].remove(keys);
            return;
        }
        let parts = self.partition(node, 0, keys.len(), |i| keys[i]);
        let mut emptied = false;
        for part in parts.iter() {
            let child = self.inners[node as usize].children[part.child];
            self.remove_from(child, height - 1, &keys[part.start..part.end], ahead);
            let inner = &mut self.inners[node as usize];
            inner.counts[part.child] -= (part.end - part.start) as u32;
            emptied |= inner.counts[part.child] == 0;
        }
        if emptied {
            self.drop_empty_children(node, height);
        }
    }

    /// Removes the entries of ranks `lo..hi`.
    pub(crate) fn remove_range(&mut self, lo: usize, hi: usize) {
        let hi = hi.min(self.len);
        if lo >= hi {
            return;
        }
        self.remove_range_from(self.root, self.height, lo, hi);
        self.len -= hi - lo;
        self.tidy();
    }

    /// Removes ranks `lo..hi` counted within the subtree of `node`.
    fn remove_range_from(&mut self, node: u32, height: usize, lo: usize, hi: usize) {
        if height == 0 {
            self.leaves[node as usize].remove_ranks(lo, hi);
            return;
        }
        let mut start = 0;
        let mut emptied = false;
        for i in 0..self.inners[node as usize].len {
            let count = self.inners[node as usize].counts[i] as usize;
            let (a, b) = (lo.max(start), hi.min(start + count));
            if a < b {
                if b - a < count {
                    let child = self.inners[node as usize].children[i];
                    self.remove_range_from(child, height - 1, a - start, b - start);
                }
                let inner = &mut self.inners[node as usize];
                inner.counts[i] -= (b - a) as u32;
                emptied |= inner.counts[i] == 0;
            }
            start += count;
            if start >= hi {
                break;
            }
        }
        if emptied {
            self.drop_empty_children(node, height);
        }
    }

    /// Frees the children of `node` whose count fell to 0 and closes the gaps.
    fn drop_empty_children(&mut self, node: u32, height: usize) {
        let inner = &self.inners[node as usize];
        let gone: Vec<u32> = (0..inner.len)
            .filter(|&i| inner.counts[i] == 0)
            .map(|i| inner.children[i])
            .collect();
        for child in gone {
            self.free_subtree(child, height - 1);
        }
        let inner = &mut self.inners[node as usize];
        let kept: Vec<Child> = (0..inner.len)
            .filter(|&i| inner.counts[i] > 0)
            .map(|i| inner.child(i))
            .collect();
        inner.set_children(&kept);
    }

    fn free_subtree(&mut self, node: u32, height: usize) {
        if height == 0 {
            let leaf = &self.leaves[node as usize];
            let (prev, next) = (leaf.prev, leaf.next);
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

    /// After removals: collapses roots with a single child (an emptied root becomes an empty
    /// leaf) and rebuilds the tree packed once its leaves are half empty on average.
    fn tidy(&mut self) {
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
}
