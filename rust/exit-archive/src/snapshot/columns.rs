//! The columns of a file as read: one typed vector per section, by name. The reader fills
//! them through [`Columns::all`] in table order; a section an older version lacks stays
//! empty. A test checks that every vector has the element type the format table gives.

use super::format::Col;

#[derive(Default)]
pub(super) struct Columns {
    pub(super) parent: Vec<u64>,
    pub(super) root: Vec<u64>,
    pub(super) depth: Vec<u32>,
    pub(super) pinned_id: Vec<u64>,
    pub(super) pinned_parent: Vec<u64>,
    pub(super) pinned_root: Vec<u64>,
    pub(super) pinned_depth: Vec<u32>,
    pub(super) id: Vec<u64>,
    /// f64 bits.
    pub(super) score: Vec<u64>,
    pub(super) added_step: Vec<u64>,
    pub(super) last_step: Vec<u64>,
    pub(super) times_sampled: Vec<u64>,
    pub(super) payload_len: Vec<u32>,
    pub(super) rank_order: Vec<u32>,
    pub(super) payloads: Vec<u8>,
    pub(super) embeddings: Vec<f32>,
}

/// A column to fill, with its element type.
pub(super) enum ColumnMut<'a> {
    U8(&'a mut Vec<u8>),
    U32(&'a mut Vec<u32>),
    U64(&'a mut Vec<u64>),
    F32(&'a mut Vec<f32>),
}

impl ColumnMut<'_> {
    #[cfg(test)]
    fn elem(&self) -> super::format::Elem {
        use super::format::Elem;
        match self {
            ColumnMut::U8(_) => Elem::U8,
            ColumnMut::U32(_) => Elem::U32,
            ColumnMut::U64(_) => Elem::U64,
            ColumnMut::F32(_) => Elem::F32,
        }
    }

    /// Sizes the column to `n` zeroed elements (on huge pages when large).
    pub(super) fn allocate(&mut self, n: usize) {
        match self {
            ColumnMut::U8(v) => **v = crate::huge::zeroed(n),
            ColumnMut::U32(v) => **v = crate::huge::zeroed(n),
            ColumnMut::U64(v) => **v = crate::huge::zeroed(n),
            ColumnMut::F32(v) => **v = crate::huge::zeroed(n),
        }
    }
}

impl Columns {
    /// Every column, by `Col` (file order), borrowed at once so that a reader can hand out
    /// filled chunks of one while it fills the next.
    pub(super) fn all(&mut self) -> [(Col, ColumnMut<'_>); 16] {
        let Columns {
            parent,
            root,
            depth,
            pinned_id,
            pinned_parent,
            pinned_root,
            pinned_depth,
            id,
            score,
            added_step,
            last_step,
            times_sampled,
            payload_len,
            rank_order,
            payloads,
            embeddings,
        } = self;
        [
            (Col::Parent, ColumnMut::U64(parent)),
            (Col::Root, ColumnMut::U64(root)),
            (Col::Depth, ColumnMut::U32(depth)),
            (Col::PinnedId, ColumnMut::U64(pinned_id)),
            (Col::PinnedParent, ColumnMut::U64(pinned_parent)),
            (Col::PinnedRoot, ColumnMut::U64(pinned_root)),
            (Col::PinnedDepth, ColumnMut::U32(pinned_depth)),
            (Col::Id, ColumnMut::U64(id)),
            (Col::Score, ColumnMut::U64(score)),
            (Col::AddedStep, ColumnMut::U64(added_step)),
            (Col::LastStep, ColumnMut::U64(last_step)),
            (Col::TimesSampled, ColumnMut::U64(times_sampled)),
            (Col::PayloadLen, ColumnMut::U32(payload_len)),
            (Col::RankOrder, ColumnMut::U32(rank_order)),
            (Col::Payloads, ColumnMut::U8(payloads)),
            (Col::Embeddings, ColumnMut::F32(embeddings)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::SECTIONS;
    use super::*;

    #[test]
    fn column_types_follow_the_format_table() {
        let mut cols = Columns::default();
        for (s, (col, column)) in SECTIONS.iter().zip(cols.all()) {
            assert_eq!((col, column.elem()), (s.col, s.elem));
        }
    }
}
