//! Rebuilding the index packed, in one pass over the leaf chain and a sorted batch: runs
//! between the batch's keys and the removed entries are copied whole, so the pass costs a
//! copy of the entries plus O(log) per change, and a large batch is cheaper this way than
//! one descent per key. Removed entries are named by their ranks (an admission's victims,
//! whose ranks the eviction order gives) or by their keys (a rescore's old keys, found by the
//! merge).

use std::ops::Range;

use super::leaf::Leaf;
use super::{Child, Entry, Inner, Key, OrderIndex, INNER_FILL, LEAF_FILL, NONE};

/// The entries a rebuild leaves out.
#[derive(Clone, Copy)]
pub(crate) enum Removed<'a> {
    /// At these ranks: ascending, disjoint ranges.
    Ranks(&'a [Range<usize>]),
    /// With these keys: strictly ascending, all present; found by the merge itself, with no
    /// descent per key.
    Keys(&'a [Key]),
}

/// The output of a rebuild, as the two arrays leaves are made of.
struct Out {
    keys: Vec<Key>,
    slots: Vec<u32>,
}

impl Out {
    fn push(&mut self, e: Entry) {
        self.keys.push(e.key);
        self.slots.push(e.slot);
    }

    fn copy(&mut self, keys: &[Key], slots: &[u32]) {
        self.keys.extend_from_slice(keys);
        self.slots.extend_from_slice(slots);
    }
}

impl OrderIndex {
    /// Calls `f` with each leaf's keys and slots in ascending order, leaves in chain order.
    fn for_each_leaf(&self, mut f: impl FnMut(&[Key], &[u32])) {
        let mut leaf = self.root;
        for _ in 0..self.height {
            leaf = self.inners[leaf as usize].children[0];
        }
        while leaf != NONE {
            let l = &self.leaves[leaf as usize];
            f(l.keys(), l.slots());
            leaf = l.next;
        }
    }

    /// The index without the `removed` entries and with the sorted `new` ones, built packed.
    pub(crate) fn rebuilt(&self, removed: Removed, new: &[Entry]) -> Self {
        let mut out = Out {
            keys: Vec::with_capacity(self.len + new.len()),
            slots: Vec::with_capacity(self.len + new.len()),
        };
        // Next new entry, next removed range or key, rank of the leaf's first entry.
        let (mut a, mut g, mut rank) = (0, 0, 0);
        self.for_each_leaf(|keys, slots| {
            let n = keys.len();
            let mut i = 0;
            while i < n {
                // Copy as is up to the next new key or removed entry.
                let mut j = n;
                if let Some(next) = new.get(a) {
                    j = i + keys[i..j].partition_point(|k| *k < next.key);
                }
                j = match removed {
                    Removed::Ranks(r) => r
                        .get(g)
                        .map_or(j, |r| j.min(r.start.saturating_sub(rank).max(i))),
                    Removed::Keys(k) => k
                        .get(g)
                        .map_or(j, |next| i + keys[i..j].partition_point(|k| k < next)),
                };
                out.copy(&keys[i..j], &slots[i..j]);
                i = j;
                if i == n {
                    break;
                }
                if new.get(a).is_some_and(|e| e.key < keys[i]) {
                    out.push(new[a]);
                    a += 1;
                    continue;
                }
                // keys[i] is removed.
                match removed {
                    Removed::Ranks(r) => {
                        let end = r[g].end;
                        i = (end - rank).min(n);
                        if end <= rank + n {
                            g += 1;
                        }
                    }
                    Removed::Keys(_) => {
                        i += 1;
                        g += 1;
                    }
                }
            }
            rank += n;
        });
        for &e in &new[a..] {
            out.push(e);
        }
        OrderIndex::from_parts(&out.keys, &out.slots)
    }

    /// Builds a packed tree from strictly ascending keys and their slots.
    pub(crate) fn from_parts(keys: &[Key], slots: &[u32]) -> Self {
        debug_assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let mut tree = OrderIndex::new();
        if keys.is_empty() {
            return tree;
        }
        tree.leaves.clear();
        let chunks = keys.len().div_ceil(LEAF_FILL);
        crate::huge::reserve(&mut tree.leaves, chunks);
        let mut level: Vec<Child> = Vec::with_capacity(chunks);
        // Leaves are filled in place: a leaf is too large to build on the stack and copy.
        tree.leaves.resize_with(chunks, Leaf::empty);
        for (c, (k, s)) in keys
            .chunks(LEAF_FILL)
            .zip(slots.chunks(LEAF_FILL))
            .enumerate()
        {
            let leaf = &mut tree.leaves[c];
            leaf.len = k.len() as u32;
            leaf.keys[..k.len()].copy_from_slice(k);
            leaf.slots[..k.len()].copy_from_slice(s);
            leaf.prev = if c > 0 { c as u32 - 1 } else { NONE };
            leaf.next = if c + 1 < chunks { c as u32 + 1 } else { NONE };
            level.push(Child {
                first: k[0],
                node: c as u32,
                count: k.len() as u32,
            });
        }
        let mut height = 0;
        while level.len() > 1 {
            level = level
                .chunks(INNER_FILL)
                .map(|chunk| {
                    let mut inner = Inner::empty();
                    inner.set_children(chunk);
                    let total = inner.total();
                    tree.inners.push(inner);
                    Child {
                        first: chunk[0].first,
                        node: (tree.inners.len() - 1) as u32,
                        count: total,
                    }
                })
                .collect();
            height += 1;
        }
        tree.root = level[0].node;
        tree.height = height;
        tree.len = keys.len();
        tree
    }
}
