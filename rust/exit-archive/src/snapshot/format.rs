//! The file format, as two tables: `HEADER` (u64 words) and `SECTIONS` (columns). Writing,
//! reading and the file-length check all walk them; each entry names the version that
//! introduced it, so older files read with the same tables.
//!
//! ```text
//! magic "EXITARC\0" | version u32 | header_len u32 | header (u64 words, HEADER)
//! sections (SECTIONS, in order, each count(header) × element size bytes, little-endian)
//! trailer: crc32 of everything before u32 | total file length u64
//! ```

pub(super) const MAGIC: &[u8; 8] = b"EXITARC\0";
/// Version 2 added pinned lineage, 3 softmax, admission and their header words, 4 the rank
/// order of residents (so loading needs no sort), 5 the weight reference of proportional mode.
pub(super) const VERSION: u32 = 5;
pub(super) const PREFIX_LEN: usize = 16;
pub(super) const TRAILER_LEN: usize = 12;

#[cfg(not(target_endian = "little"))]
compile_error!("snapshots are written as raw little-endian arrays");

/// Header words, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Word {
    Capacity,
    EmbeddingDim,
    /// Metric (bits 0-7), prioritization (8-15), admission (16-).
    Modes,
    Temperature,
    StalenessCoef,
    Seed,
    MaxPayloadBytes,
    Rng0,
    Rng1,
    Rng2,
    Rng3,
    NextId,
    Residents,
    PayloadBytes,
    Evicted,
    Removed,
    Sampled,
    LineageFloor,
    Pinned,
    Rejected,
    /// Softmax's reference score (version 3); proportional's too from version 5.
    WeightRef,
}

/// Each word with the version that introduced it.
pub(super) const HEADER: [(Word, u32); 21] = [
    (Word::Capacity, 1),
    (Word::EmbeddingDim, 1),
    (Word::Modes, 1),
    (Word::Temperature, 1),
    (Word::StalenessCoef, 1),
    (Word::Seed, 1),
    (Word::MaxPayloadBytes, 1),
    (Word::Rng0, 1),
    (Word::Rng1, 1),
    (Word::Rng2, 1),
    (Word::Rng3, 1),
    (Word::NextId, 1),
    (Word::Residents, 1),
    (Word::PayloadBytes, 1),
    (Word::Evicted, 1),
    (Word::Removed, 1),
    (Word::Sampled, 1),
    (Word::LineageFloor, 1),
    (Word::Pinned, 2),
    (Word::Rejected, 3),
    (Word::WeightRef, 3),
];

// Words are kept by `Word` index, so the table must list them in `Word` order.
const _: () = {
    let mut i = 0;
    while i < HEADER.len() {
        assert!(HEADER[i].0 as usize == i);
        i += 1;
    }
};

/// The header of a file: its version and its words by `Word` (absent ones read as 0).
#[derive(Clone, Debug)]
pub(super) struct Header {
    pub(super) version: u32,
    pub(super) words: [u64; HEADER.len()],
}

impl Header {
    pub(super) fn get(&self, w: Word) -> u64 {
        self.words[w as usize]
    }

    pub(super) fn len_in_file(version: u32) -> usize {
        8 * HEADER.iter().filter(|(_, since)| *since <= version).count()
    }
}

/// How many elements a section has, from the header.
#[derive(Clone, Copy, Debug)]
pub(super) enum Count {
    /// Lineage records of ids from the floor to the next id.
    Lineage,
    Pinned,
    Residents,
    PayloadBytes,
    EmbeddingValues,
}

/// Element type of a section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Elem {
    U8,
    U32,
    U64,
    F32,
}

impl Elem {
    pub(super) fn size(self) -> u64 {
        match self {
            Elem::U8 => 1,
            Elem::U32 | Elem::F32 => 4,
            Elem::U64 => 8,
        }
    }
}

/// Column sections, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Col {
    Parent,
    Root,
    Depth,
    PinnedId,
    PinnedParent,
    PinnedRoot,
    PinnedDepth,
    Id,
    Score,
    AddedStep,
    LastStep,
    TimesSampled,
    PayloadLen,
    RankOrder,
    Payloads,
    Embeddings,
}

pub(super) struct Section {
    pub(super) col: Col,
    pub(super) elem: Elem,
    pub(super) count: Count,
    pub(super) since: u32,
}

const fn section(col: Col, elem: Elem, count: Count, since: u32) -> Section {
    Section {
        col,
        elem,
        count,
        since,
    }
}

pub(super) const SECTIONS: [Section; 16] = [
    section(Col::Parent, Elem::U64, Count::Lineage, 1),
    section(Col::Root, Elem::U64, Count::Lineage, 1),
    section(Col::Depth, Elem::U32, Count::Lineage, 1),
    section(Col::PinnedId, Elem::U64, Count::Pinned, 2),
    section(Col::PinnedParent, Elem::U64, Count::Pinned, 2),
    section(Col::PinnedRoot, Elem::U64, Count::Pinned, 2),
    section(Col::PinnedDepth, Elem::U32, Count::Pinned, 2),
    section(Col::Id, Elem::U64, Count::Residents, 1),
    section(Col::Score, Elem::U64, Count::Residents, 1),
    section(Col::AddedStep, Elem::U64, Count::Residents, 1),
    section(Col::LastStep, Elem::U64, Count::Residents, 1),
    section(Col::TimesSampled, Elem::U64, Count::Residents, 1),
    section(Col::PayloadLen, Elem::U32, Count::Residents, 1),
    section(Col::RankOrder, Elem::U32, Count::Residents, 4),
    section(Col::Payloads, Elem::U8, Count::PayloadBytes, 1),
    section(Col::Embeddings, Elem::F32, Count::EmbeddingValues, 1),
];

/// The sections a version has, in file order.
pub(super) fn sections(version: u32) -> impl Iterator<Item = &'static Section> {
    SECTIONS.iter().filter(move |s| s.since <= version)
}

/// Element count of a section; None on overflow or a floor above the next id.
pub(super) fn count(h: &Header, c: Count) -> Option<u64> {
    match c {
        Count::Lineage => h.get(Word::NextId).checked_sub(h.get(Word::LineageFloor)),
        Count::Pinned => Some(h.get(Word::Pinned)),
        Count::Residents => Some(h.get(Word::Residents)),
        Count::PayloadBytes => Some(h.get(Word::PayloadBytes)),
        Count::EmbeddingValues => h
            .get(Word::Residents)
            .checked_mul(h.get(Word::EmbeddingDim)),
    }
}

/// The exact file length the header implies; None on overflow.
pub(super) fn expected_len(h: &Header) -> Option<u64> {
    let mut total = (PREFIX_LEN + Header::len_in_file(h.version) + TRAILER_LEN) as u64;
    for s in sections(h.version) {
        total = total.checked_add(count(h, s.count)?.checked_mul(s.elem.size())?)?;
    }
    Some(total)
}
