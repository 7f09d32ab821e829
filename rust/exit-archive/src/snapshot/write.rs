//! Writing: the header words and every section, in the format tables' order, from the
//! archive's parts; each section's data comes typed from [`source`], which a test checks
//! against the table's element types.

use std::borrow::Cow;
use std::io::Write;

use bytemuck::Pod;

use super::format::{sections, Col, Header, Word, HEADER, MAGIC, TRAILER_LEN, VERSION};
use crate::archive::Parts;
use crate::error::Result;

/// The data of one section.
pub(super) enum Source<'a> {
    U32(Cow<'a, [u32]>),
    U64(Cow<'a, [u64]>),
    F32(&'a [f32]),
    /// Bytes in several pieces (the payloads, slot by slot).
    Pieces(Vec<&'a [u8]>),
}

impl Source<'_> {
    #[cfg(test)]
    fn elem(&self) -> super::format::Elem {
        use super::format::Elem;
        match self {
            Source::U32(_) => Elem::U32,
            Source::U64(_) => Elem::U64,
            Source::F32(_) => Elem::F32,
            Source::Pieces(_) => Elem::U8,
        }
    }
}

fn header(p: &Parts) -> [u64; HEADER.len()] {
    let cfg = p.cfg;
    let modes = cfg.metric as u64 | (cfg.prioritization as u64) << 8 | (cfg.admission as u64) << 16;
    let rng = p.rng.state();
    HEADER.map(|(w, _)| match w {
        Word::Capacity => cfg.capacity as u64,
        Word::EmbeddingDim => cfg.embedding_dim.unwrap_or(0) as u64,
        Word::Modes => modes,
        Word::Temperature => cfg.temperature.to_bits(),
        Word::StalenessCoef => cfg.staleness_coef.to_bits(),
        Word::Seed => cfg.seed,
        Word::MaxPayloadBytes => cfg.max_payload_bytes as u64,
        Word::Rng0 => rng[0],
        Word::Rng1 => rng[1],
        Word::Rng2 => rng[2],
        Word::Rng3 => rng[3],
        Word::NextId => p.log.next_id(),
        Word::Residents => p.residents.len() as u64,
        Word::PayloadBytes => p.residents.live_bytes(),
        Word::Evicted => p.counters.evicted,
        Word::Removed => p.counters.removed,
        Word::Sampled => p.counters.sampled,
        Word::LineageFloor => p.log.base(),
        Word::Pinned => p.log.pinned().len() as u64,
        Word::Rejected => p.counters.rejected,
        Word::WeightRef => p.priorities.weight_ref().to_bits(),
    })
}

/// The data of a section.
pub(super) fn source<'a>(p: &Parts<'a>, col: Col) -> Source<'a> {
    let records = p.log.records();
    let residents = p.residents.records();
    let pinned = || p.log.pinned();
    let owned = |v: Vec<u64>| Source::U64(Cow::Owned(v));
    match col {
        Col::Parent => owned(records.iter().map(|r| r.parent).collect()),
        Col::Root => owned(records.iter().map(|r| r.root).collect()),
        Col::Depth => Source::U32(records.iter().map(|r| r.depth).collect()),
        Col::PinnedId => owned(pinned().iter().map(|p| p.0).collect()),
        Col::PinnedParent => owned(pinned().iter().map(|p| p.1.parent).collect()),
        Col::PinnedRoot => owned(pinned().iter().map(|p| p.1.root).collect()),
        Col::PinnedDepth => Source::U32(pinned().iter().map(|p| p.1.depth).collect()),
        Col::Id => owned(residents.iter().map(|r| r.id).collect()),
        Col::Score => Source::U64(Cow::Borrowed(bytemuck::cast_slice(p.priorities.scores()))),
        Col::AddedStep => owned(residents.iter().map(|r| r.added_step).collect()),
        Col::LastStep => Source::U64(Cow::Borrowed(p.priorities.last_steps())),
        Col::TimesSampled => owned(residents.iter().map(|r| r.times_sampled).collect()),
        Col::PayloadLen => Source::U32(residents.iter().map(|r| r.len).collect()),
        Col::RankOrder => Source::U32(Cow::Owned(p.priorities.rank_order())),
        Col::Payloads => Source::Pieces(
            (0..residents.len())
                .map(|s| p.residents.payload(s))
                .collect(),
        ),
        Col::Embeddings => Source::F32(p.residents.embeddings()),
    }
}

struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
    written: u64,
}

impl<W: Write> CrcWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.crc.update(bytes);
        self.written += bytes.len() as u64;
        self.inner.write_all(bytes)?;
        Ok(())
    }

    fn put_column<T: Pod>(&mut self, values: &[T]) -> Result<()> {
        self.put(bytemuck::cast_slice(values))
    }

    fn put_source(&mut self, source: Source) -> Result<()> {
        match source {
            Source::U32(v) => self.put_column(&v),
            Source::U64(v) => self.put_column(&v),
            Source::F32(v) => self.put_column(v),
            Source::Pieces(pieces) => pieces.into_iter().try_for_each(|b| self.put(b)),
        }
    }
}

/// Writes the whole snapshot of `p` to `inner`.
pub(super) fn write_to<W: Write>(p: &Parts, inner: W) -> Result<W> {
    let mut w = CrcWriter {
        inner,
        crc: crc32fast::Hasher::new(),
        written: 0,
    };
    w.put(MAGIC)?;
    w.put(&VERSION.to_le_bytes())?;
    w.put(&(Header::len_in_file(VERSION) as u32).to_le_bytes())?;
    w.put_column(&header(p))?;
    for s in sections(VERSION) {
        w.put_source(source(p, s.col))?;
    }
    let crc = w.crc.clone().finalize();
    let total = w.written + TRAILER_LEN as u64;
    w.inner.write_all(&crc.to_le_bytes())?;
    w.inner.write_all(&total.to_le_bytes())?;
    Ok(w.inner)
}

#[cfg(test)]
mod tests {
    use super::super::format::SECTIONS;
    use super::*;
    use crate::{Archive, Config};

    #[test]
    fn sources_follow_the_format_table() {
        let a = Archive::new(Config::new(4)).unwrap();
        for s in &SECTIONS {
            assert_eq!(source(&a.parts(), s.col).elem(), s.elem, "{:?}", s.col);
        }
    }
}
