//! A cursor that reads entries in rank order from a position, forwards or backwards, along
//! the leaf chain.

use super::{Entry, OrderIndex, NONE};

pub(crate) struct Cursor<'a> {
    tree: &'a OrderIndex,
    leaf: u32,
    index: usize,
}

impl<'a> Cursor<'a> {
    /// At rank `r` (< the tree's length).
    pub(crate) fn at_rank(tree: &'a OrderIndex, r: usize) -> Self {
        let pos = tree.locate(r);
        Cursor {
            tree,
            leaf: pos.leaf,
            index: pos.index,
        }
    }

    pub(crate) fn entry(&self) -> Entry {
        self.tree.leaves[self.leaf as usize].nth(self.index)
    }

    /// Moves to the next entry; false (not moving) at the end.
    pub(crate) fn advance(&mut self) -> bool {
        if self.index + 1 < self.tree.leaves[self.leaf as usize].len() {
            self.index += 1;
            return true;
        }
        let mut next = self.tree.leaves[self.leaf as usize].next;
        while next != NONE {
            if self.tree.leaves[next as usize].len > 0 {
                self.leaf = next;
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
            let len = self.tree.leaves[prev as usize].len();
            if len > 0 {
                self.leaf = prev;
                self.index = len - 1;
                return true;
            }
            prev = self.tree.leaves[prev as usize].prev;
        }
        false
    }
}
