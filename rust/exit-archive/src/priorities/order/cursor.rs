//! A cursor that reads entries in rank order from a position, forwards or backwards, through
//! an ordered copy of the current leaf: each leaf's unsorted tail is sorted once per visit.

use super::leaf::LEAF_CAP;
use super::{Entry, OrderIndex, NONE};

pub(crate) struct Cursor<'a> {
    tree: &'a OrderIndex,
    leaf: u32,
    entries: [Entry; LEAF_CAP],
    len: usize,
    index: usize,
}

impl<'a> Cursor<'a> {
    /// At rank `r` (< the tree's length).
    pub(crate) fn at_rank(tree: &'a OrderIndex, r: usize) -> Self {
        let pos = tree.locate(r);
        let mut c = Cursor {
            tree,
            leaf: pos.leaf,
            entries: [Entry::default(); LEAF_CAP],
            len: 0,
            index: pos.index,
        };
        c.load(pos.leaf);
        c
    }

    fn load(&mut self, leaf: u32) {
        self.leaf = leaf;
        self.len = self.tree.leaves[leaf as usize].ordered_into(&mut self.entries);
    }

    pub(crate) fn entry(&self) -> Entry {
        self.entries[self.index]
    }

    /// Moves to the next entry; false (not moving) at the end.
    pub(crate) fn advance(&mut self) -> bool {
        if self.index + 1 < self.len {
            self.index += 1;
            return true;
        }
        let mut next = self.tree.leaves[self.leaf as usize].next;
        while next != NONE {
            if self.tree.leaves[next as usize].len > 0 {
                self.load(next);
                self.index = 0;
                return true;
            }
            next = self.tree.leaves[next as usize].next;
        }
        false
    }

    /// Moves to the previous entry; false (not moving) at the start.
    pub(crate) fn retreat(&mut self) -> bool {
        if self.index > 0 {
            self.index -= 1;
            return true;
        }
        let mut prev = self.tree.leaves[self.leaf as usize].prev;
        while prev != NONE {
            if self.tree.leaves[prev as usize].len > 0 {
                self.load(prev);
                self.index = self.len - 1;
                return true;
            }
            prev = self.tree.leaves[prev as usize].prev;
        }
        false
    }
}
