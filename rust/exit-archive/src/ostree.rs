//! Order-statistics B+tree over unique `(u64, u64)` keys: insert, remove, select by rank and
//! rank of a key, each O(log n) with wide nodes (few cache misses per operation).
//!
//! Removal is lazy (empty nodes are unlinked, half-empty ones are not merged); the tree is
//! rebuilt packed once it holds too many sparse leaves, which keeps the amortized cost O(log n).

pub type Key = (u64, u64);

const LEAF_CAP: usize = 64;
const INNER_CAP: usize = 64;
const REBUILD_FILL: usize = LEAF_CAP * 3 / 4;

#[derive(Clone)]
struct Leaf {
    len: usize,
    keys: [Key; LEAF_CAP + 1],
}

#[derive(Clone)]
struct Inner {
    len: usize,
    /// `seps[i]` is a lower bound of child `i`'s keys; `seps[0]` is not used for routing.
    seps: [Key; INNER_CAP + 1],
    children: [u32; INNER_CAP + 1],
    counts: [u32; INNER_CAP + 1],
}

impl Leaf {
    fn empty() -> Self {
        Leaf {
            len: 0,
            keys: [(0, 0); LEAF_CAP + 1],
        }
    }
}

impl Inner {
    fn empty() -> Self {
        Inner {
            len: 0,
            seps: [(0, 0); INNER_CAP + 1],
            children: [0; INNER_CAP + 1],
            counts: [0; INNER_CAP + 1],
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

    fn insert_child(&mut self, at: usize, sep: Key, child: u32, count: u32) {
        let len = self.len;
        self.seps.copy_within(at..len, at + 1);
        self.children.copy_within(at..len, at + 1);
        self.counts.copy_within(at..len, at + 1);
        self.seps[at] = sep;
        self.children[at] = child;
        self.counts[at] = count;
        self.len += 1;
    }

    fn remove_child(&mut self, at: usize) {
        let len = self.len;
        self.seps.copy_within(at + 1..len, at);
        self.children.copy_within(at + 1..len, at);
        self.counts.copy_within(at + 1..len, at);
        self.len -= 1;
    }
}

#[derive(Clone)]
pub struct OsTree {
    leaves: Vec<Leaf>,
    inners: Vec<Inner>,
    free_leaves: Vec<u32>,
    free_inners: Vec<u32>,
    root: u32,
    /// Number of inner levels above the leaves (0: the root is a leaf).
    height: usize,
    len: usize,
}

impl Default for OsTree {
    fn default() -> Self {
        Self::new()
    }
}

impl OsTree {
    pub fn new() -> Self {
        OsTree {
            leaves: vec![Leaf::empty()],
            inners: Vec::new(),
            free_leaves: Vec::new(),
            free_inners: Vec::new(),
            root: 0,
            height: 0,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held by the node arenas.
    pub fn memory_bytes(&self) -> usize {
        self.leaves.capacity() * std::mem::size_of::<Leaf>()
            + self.inners.capacity() * std::mem::size_of::<Inner>()
    }

    fn alloc_leaf(&mut self, leaf: Leaf) -> u32 {
        if let Some(i) = self.free_leaves.pop() {
            self.leaves[i as usize] = leaf;
            i
        } else {
            self.leaves.push(leaf);
            (self.leaves.len() - 1) as u32
        }
    }

    fn alloc_inner(&mut self, inner: Inner) -> u32 {
        if let Some(i) = self.free_inners.pop() {
            self.inners[i as usize] = inner;
            i
        } else {
            self.inners.push(inner);
            (self.inners.len() - 1) as u32
        }
    }

    /// The key of rank `r` (0-based, ascending order). Panics if `r >= len`.
    pub fn select(&self, mut r: usize) -> Key {
        assert!(r < self.len, "rank {r} out of range {}", self.len);
        let mut node = self.root as usize;
        for _ in 0..self.height {
            let inner = &self.inners[node];
            let mut i = 0;
            while r >= inner.counts[i] as usize {
                r -= inner.counts[i] as usize;
                i += 1;
            }
            node = inner.children[i] as usize;
        }
        self.leaves[node].keys[r]
    }

    /// Number of keys strictly smaller than `key`.
    pub fn rank_lower_bound(&self, key: &Key) -> usize {
        let mut node = self.root as usize;
        let mut acc = 0usize;
        for _ in 0..self.height {
            let inner = &self.inners[node];
            let i = inner.child_for(key);
            acc += inner.counts[..i].iter().map(|&c| c as usize).sum::<usize>();
            node = inner.children[i] as usize;
        }
        let leaf = &self.leaves[node];
        acc + leaf.keys[..leaf.len].partition_point(|k| k < key)
    }

    /// Inserts a key that must not be present.
    pub fn insert(&mut self, key: Key) {
        let mut path = [(0u32, 0usize); 24];
        let mut node = self.root;
        for slot in path.iter_mut().take(self.height) {
            let inner = &mut self.inners[node as usize];
            let i = inner.child_for(&key);
            inner.counts[i] += 1;
            *slot = (node, i);
            node = inner.children[i];
        }
        self.len += 1;

        let leaf = &mut self.leaves[node as usize];
        let at = leaf.keys[..leaf.len].partition_point(|k| k < &key);
        debug_assert!(at == leaf.len || leaf.keys[at] != key, "duplicate key");
        leaf.keys.copy_within(at..leaf.len, at + 1);
        leaf.keys[at] = key;
        leaf.len += 1;
        if leaf.len <= LEAF_CAP {
            return;
        }
        let mid = leaf.len / 2;
        let mut right = Leaf::empty();
        right.len = leaf.len - mid;
        right.keys[..right.len].copy_from_slice(&leaf.keys[mid..leaf.len]);
        leaf.len = mid;
        let (sep, lcount, rcount) = (right.keys[0], mid as u32, right.len as u32);
        let right_id = self.alloc_leaf(right);
        self.push_split(&path[..self.height], sep, right_id, lcount, rcount);
    }

    /// Links a node split off at the bottom of `path` into its parents, splitting them as needed.
    fn push_split(&mut self, path: &[(u32, usize)], sep: Key, new: u32, lcount: u32, rcount: u32) {
        let (mut sep, mut new, mut lcount, mut rcount) = (sep, new, lcount, rcount);
        for &(parent, i) in path.iter().rev() {
            let p = &mut self.inners[parent as usize];
            p.counts[i] = lcount;
            p.insert_child(i + 1, sep, new, rcount);
            if p.len <= INNER_CAP {
                return;
            }
            let mid = p.len / 2;
            let mut right = Inner::empty();
            right.len = p.len - mid;
            right.seps[..right.len].copy_from_slice(&p.seps[mid..p.len]);
            right.children[..right.len].copy_from_slice(&p.children[mid..p.len]);
            right.counts[..right.len].copy_from_slice(&p.counts[mid..p.len]);
            p.len = mid;
            lcount = p.total();
            rcount = right.total();
            sep = right.seps[0];
            new = self.alloc_inner(right);
        }
        let mut root = Inner::empty();
        root.len = 2;
        root.children[0] = self.root;
        root.counts[0] = lcount;
        root.seps[1] = sep;
        root.children[1] = new;
        root.counts[1] = rcount;
        self.root = self.alloc_inner(root);
        self.height += 1;
    }

    /// Removes `key`; returns false (and changes nothing) if it is absent.
    pub fn remove(&mut self, key: &Key) -> bool {
        let mut path = [(0u32, 0usize); 24];
        let mut node = self.root;
        for slot in path.iter_mut().take(self.height) {
            let inner = &self.inners[node as usize];
            let i = inner.child_for(key);
            *slot = (node, i);
            node = inner.children[i];
        }
        let leaf = &mut self.leaves[node as usize];
        let at = leaf.keys[..leaf.len].partition_point(|k| k < key);
        if at == leaf.len || leaf.keys[at] != *key {
            return false;
        }
        leaf.keys.copy_within(at + 1..leaf.len, at);
        leaf.len -= 1;
        let mut emptied = leaf.len == 0;
        self.len -= 1;
        let path = &path[..self.height];
        for &(parent, i) in path {
            self.inners[parent as usize].counts[i] -= 1;
        }
        if emptied && self.height > 0 {
            self.free_leaves.push(node);
        }
        for &(parent, i) in path.iter().rev() {
            if !emptied {
                break;
            }
            let p = &mut self.inners[parent as usize];
            p.remove_child(i);
            emptied = p.len == 0;
            if emptied && parent != self.root {
                self.free_inners.push(parent);
            }
        }
        if self.len == 0 {
            *self = OsTree::new();
            return true;
        }
        while self.height > 0 && self.inners[self.root as usize].len == 1 {
            let old = self.root;
            self.root = self.inners[old as usize].children[0];
            self.free_inners.push(old);
            self.height -= 1;
        }
        let live_leaves = self.leaves.len() - self.free_leaves.len();
        if live_leaves > 4 && live_leaves * (LEAF_CAP / 8) > self.len {
            self.rebuild();
        }
        true
    }

    /// All keys in ascending order.
    pub fn keys(&self) -> Vec<Key> {
        let mut out = Vec::with_capacity(self.len);
        self.collect(self.root, self.height, &mut out);
        out
    }

    fn collect(&self, node: u32, height: usize, out: &mut Vec<Key>) {
        if height == 0 {
            let leaf = &self.leaves[node as usize];
            out.extend_from_slice(&leaf.keys[..leaf.len]);
        } else {
            let inner = &self.inners[node as usize];
            for &c in &inner.children[..inner.len] {
                self.collect(c, height - 1, out);
            }
        }
    }

    fn rebuild(&mut self) {
        let keys = self.keys();
        *self = OsTree::from_sorted(&keys);
    }

    /// Builds a packed tree from strictly ascending keys.
    pub fn from_sorted(keys: &[Key]) -> Self {
        debug_assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let mut tree = OsTree::new();
        if keys.is_empty() {
            return tree;
        }
        tree.leaves.clear();
        // (node, first key, count) of the level being built.
        let mut level: Vec<(u32, Key, u32)> = keys
            .chunks(REBUILD_FILL)
            .map(|chunk| {
                let mut leaf = Leaf::empty();
                leaf.len = chunk.len();
                leaf.keys[..chunk.len()].copy_from_slice(chunk);
                tree.leaves.push(leaf);
                ((tree.leaves.len() - 1) as u32, chunk[0], chunk.len() as u32)
            })
            .collect();
        let mut height = 0;
        while level.len() > 1 {
            level = level
                .chunks(INNER_CAP * 3 / 4)
                .map(|chunk| {
                    let mut inner = Inner::empty();
                    inner.len = chunk.len();
                    for (i, &(child, first, count)) in chunk.iter().enumerate() {
                        inner.children[i] = child;
                        inner.seps[i] = first;
                        inner.counts[i] = count;
                    }
                    let total = inner.total();
                    tree.inners.push(inner);
                    ((tree.inners.len() - 1) as u32, chunk[0].1, total)
                })
                .collect();
            height += 1;
        }
        tree.root = level[0].0;
        tree.height = height;
        tree.len = keys.len();
        tree
    }

    /// Checks structural invariants (tests and debugging).
    pub fn check(&self) {
        let keys = self.keys();
        assert_eq!(keys.len(), self.len);
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys out of order");
        self.check_counts(self.root, self.height);
    }

    fn check_counts(&self, node: u32, height: usize) -> u32 {
        if height == 0 {
            return self.leaves[node as usize].len as u32;
        }
        let inner = &self.inners[node as usize];
        for i in 0..inner.len {
            let c = self.check_counts(inner.children[i], height - 1);
            assert_eq!(c, inner.counts[i], "stale subtree count");
        }
        inner.total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use std::collections::BTreeSet;

    #[test]
    fn matches_a_sorted_set_under_random_operations() {
        let mut rng = Rng::new(3);
        let mut tree = OsTree::new();
        let mut model = BTreeSet::new();
        for step in 0..60_000 {
            let key = (rng.below(500), rng.below(40));
            if rng.below(3) == 0 && !model.is_empty() {
                let victim = *model
                    .iter()
                    .nth(rng.below(model.len() as u64) as usize)
                    .unwrap();
                assert!(tree.remove(&victim));
                model.remove(&victim);
            } else if model.insert(key) {
                tree.insert(key);
            } else {
                assert!(!tree.remove(&(u64::MAX, 0)));
            }
            if step % 997 == 0 {
                tree.check();
                let sorted: Vec<Key> = model.iter().copied().collect();
                assert_eq!(tree.keys(), sorted);
                for (r, k) in sorted.iter().enumerate().step_by(7) {
                    assert_eq!(tree.select(r), *k);
                    assert_eq!(tree.rank_lower_bound(k), r);
                }
            }
        }
        // Drain to empty through the lazy-removal and rebuild paths.
        let all: Vec<Key> = model.iter().copied().collect();
        for (i, k) in all.iter().enumerate() {
            assert!(tree.remove(k));
            if i % 101 == 0 {
                tree.check();
            }
        }
        assert!(tree.is_empty());
        tree.check();
    }

    #[test]
    fn from_sorted_builds_a_valid_tree() {
        let keys: Vec<Key> = (0..10_000u64).map(|i| (i / 3, i)).collect();
        let tree = OsTree::from_sorted(&keys);
        tree.check();
        assert_eq!(tree.select(4321), keys[4321]);
        assert_eq!(tree.rank_lower_bound(&(100, 0)), 300);
    }
}
