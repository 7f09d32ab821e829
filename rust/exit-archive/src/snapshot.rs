//! One-file snapshots: a versioned header of u64 words, little-endian column sections, a
//! CRC-32 trailer. The two tables below (`HEADER`, `SECTIONS`) are the format: writing,
//! reading and the file-length check all walk them.
//!
//! ```text
//! magic "EXITARC\0" | version u32 | header_len u32 | header (u64 words, HEADER)
//! sections (SECTIONS, in order, each count(header) × element size bytes)
//! trailer: crc32 of everything before u32 | total file length u64
//! ```
//! Loading is three steps: read (every declared length is checked against the file size
//! before anything is allocated, and the checksum before any value is trusted), `validate`
//! (every value, in one function), then build. Reading goes chunk by chunk; each chunk is
//! checksummed right after it is read, on a second thread for large files, and the embedding
//! rows' squared norms and finiteness are noted there too (while the rows are in cache) for
//! `validate` to judge and `build` to keep.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytemuck::Pod;

use crate::archive::{Archive, Counters};
use crate::config::ID_LIMIT;
use crate::config::{Admission, Config, Prioritization};
use crate::error::{Error, Result};
use crate::lineage::{LineageLog, LogRecord, NOT_PLACED, NO_PARENT};
use crate::novelty::Metric;
use crate::priorities::{weight_ref_fits, Priorities};
use crate::residents::{sq_norm, Record, Residents};
use crate::rng::Rng;

const MAGIC: &[u8; 8] = b"EXITARC\0";
/// Version 2 added pinned lineage, 3 softmax, admission and their header words, 4 the rank
/// order of residents (so loading needs no sort), 5 the weight reference of proportional mode.
const VERSION: u32 = 5;
const PREFIX_LEN: usize = 16;
const TRAILER_LEN: usize = 12;
/// Read granularity: each chunk is checksummed (and its embedding rows checked) right after
/// it is read, while it is in cache. Larger reads cost fewer syscalls; 1 MiB is the L2 size
/// here and measured no slower than 2-4 MiB.
const CHUNK: usize = 1 << 20;
/// Files at least this long are checksummed on a second thread while the first reads on.
const PIPELINE_MIN_LEN: u64 = 8 << 20;

#[cfg(test)]
mod mutations;

#[cfg(not(target_endian = "little"))]
compile_error!("snapshots are written as raw little-endian arrays");

/// Header words, in file order, with the version that introduced each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Word {
    Capacity,
    EmbeddingDim,
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
    WeightRef,
}

const HEADER: [(Word, u32); 21] = [
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

/// Header words of a version, by `Word` (absent ones read as 0).
#[derive(Clone, Debug)]
struct Header {
    version: u32,
    words: [u64; HEADER.len()],
}

impl Header {
    fn get(&self, w: Word) -> u64 {
        self.words[w as usize]
    }

    fn len_in_file(version: u32) -> usize {
        8 * HEADER.iter().filter(|(_, since)| *since <= version).count()
    }
}

/// How many elements a section has, from the header.
#[derive(Clone, Copy, Debug)]
enum Count {
    /// Lineage records of ids >= the floor.
    Lineage,
    Pinned,
    Residents,
    PayloadBytes,
    EmbeddingValues,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Elem {
    U8,
    U32,
    U64,
    F32,
}

impl Elem {
    fn size(self) -> u64 {
        match self {
            Elem::U8 => 1,
            Elem::U32 | Elem::F32 => 4,
            Elem::U64 => 8,
        }
    }
}

/// Column sections, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Col {
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

struct Section {
    col: Col,
    elem: Elem,
    count: Count,
    since: u32,
}

// Columns are kept and read by `Col` index, so the file order must be the `Col` order.
const _: () = {
    let mut i = 0;
    while i < SECTIONS.len() {
        assert!(SECTIONS[i].col as usize == i);
        i += 1;
    }
};

const fn section(col: Col, elem: Elem, count: Count, since: u32) -> Section {
    Section {
        col,
        elem,
        count,
        since,
    }
}

const SECTIONS: [Section; 16] = [
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

fn sections(version: u32) -> impl Iterator<Item = &'static Section> {
    SECTIONS.iter().filter(move |s| s.since <= version)
}

/// Element count of a section; None on overflow or a floor above the next id.
fn count(h: &Header, c: Count) -> Option<u64> {
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
fn expected_len(h: &Header) -> Option<u64> {
    let mut total = (PREFIX_LEN + Header::len_in_file(h.version) + TRAILER_LEN) as u64;
    for s in sections(h.version) {
        total = total.checked_add(count(h, s.count)?.checked_mul(s.elem.size())?)?;
    }
    Some(total)
}

fn corrupt<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Corrupt(msg.into()))
}

/// A section's values.
enum Column {
    U8(Vec<u8>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    F32(Vec<f32>),
}

/// Every section of a file, by `Col` (an older version's missing ones are empty).
struct Columns(Vec<Column>);

impl Columns {
    fn take(&mut self, c: Col) -> Column {
        std::mem::replace(&mut self.0[c as usize], Column::U8(Vec::new()))
    }

    fn u64s(&mut self, c: Col) -> Vec<u64> {
        match self.take(c) {
            Column::U64(v) => v,
            _ => Vec::new(),
        }
    }

    fn u32s(&mut self, c: Col) -> Vec<u32> {
        match self.take(c) {
            Column::U32(v) => v,
            _ => Vec::new(),
        }
    }

    fn bytes(&mut self, c: Col) -> Vec<u8> {
        match self.take(c) {
            Column::U8(v) => v,
            _ => Vec::new(),
        }
    }

    fn f32s(&mut self, c: Col) -> Vec<f32> {
        match self.take(c) {
            Column::F32(v) => v,
            _ => Vec::new(),
        }
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
}

/// A filled chunk of a section, in file order.
enum Chunk<'a> {
    Bytes(&'a [u8]),
    /// Whole embedding rows.
    Rows(&'a [f32]),
}

/// What is learnt from the bytes while they are in cache: the checksum, and for the
/// embedding rows their squared norms (kept for the archive) and whether any row is
/// non-finite or zero (reported by `validate`, in its order of checks).
struct Verifier {
    crc: crc32fast::Hasher,
    dim: usize,
    sq_norms: Vec<f32>,
    non_finite: bool,
    zero: bool,
}

impl Verifier {
    fn take(&mut self, chunk: Chunk) {
        match chunk {
            Chunk::Bytes(b) => self.crc.update(b),
            Chunk::Rows(rows) => {
                self.crc.update(bytemuck::cast_slice(rows));
                let start = self.sq_norms.len();
                let norms = rows.chunks_exact(self.dim).map(sq_norm);
                self.sq_norms.extend(norms);
                for (row, &n) in rows.chunks_exact(self.dim).zip(&self.sq_norms[start..]) {
                    // A finite sum of squares means finite values; an infinite one may
                    // still come from finite values (overflow), so look at those rows.
                    self.non_finite |= !n.is_finite() && row.iter().any(|x| !x.is_finite());
                    self.zero |= n == 0.0;
                }
            }
        }
    }
}

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<()> {
    r.read_exact(buf).or_else(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            corrupt("file is truncated")
        } else {
            Err(e.into())
        }
    })
}

/// Reads every column chunk by chunk, handing each filled chunk to `sink`.
fn fill_columns<'a, R: Read>(
    r: &mut R,
    columns: &'a mut [Column],
    dim: usize,
    mut sink: impl FnMut(Chunk<'a>),
) -> Result<()> {
    fn fill<'a, R: Read, T: Pod>(
        r: &mut R,
        v: &'a mut [T],
        len: usize,
        mut sink: impl FnMut(&'a [T]),
    ) -> Result<()> {
        for c in v.chunks_mut(len) {
            read_exact(r, bytemuck::cast_slice_mut(c))?;
            sink(c);
        }
        Ok(())
    }
    let rows_per_chunk = (CHUNK / 4 / dim.max(1)).max(1);
    for column in columns {
        match column {
            Column::U8(v) => fill(r, v, CHUNK, |c| sink(Chunk::Bytes(c)))?,
            Column::U32(v) => fill(r, v, CHUNK / 4, |c| {
                sink(Chunk::Bytes(bytemuck::cast_slice(c)))
            })?,
            Column::U64(v) => fill(r, v, CHUNK / 8, |c| {
                sink(Chunk::Bytes(bytemuck::cast_slice(c)))
            })?,
            Column::F32(v) => fill(r, v, rows_per_chunk * dim.max(1), |c| sink(Chunk::Rows(c)))?,
        }
    }
    Ok(())
}

/// Reads the columns and verifies them: on a second thread when the file is large and a
/// second core exists, so that checksumming overlaps reading.
fn read_columns<R: Read>(
    r: &mut R,
    columns: &mut [Column],
    mut verifier: Verifier,
    file_len: u64,
) -> Result<Verifier> {
    let dim = verifier.dim;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if file_len < PIPELINE_MIN_LEN || cores < 2 {
        fill_columns(r, columns, dim, |c| verifier.take(c))?;
        return Ok(verifier);
    }
    std::thread::scope(|scope| {
        // Bounded, so the checksum reads chunks that are still in cache.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(8);
        let worker = scope.spawn(move || {
            for chunk in rx {
                verifier.take(chunk);
            }
            verifier
        });
        let filled = fill_columns(r, columns, dim, |c| {
            tx.send(c)
                .expect("the verifier lives until the sender is dropped")
        });
        drop(tx);
        let verifier = worker.join().expect("the verifier does not panic");
        filled.map(|()| verifier)
    })
}

impl Archive {
    fn header(&self) -> [u64; HEADER.len()] {
        let cfg = &self.cfg;
        let modes =
            cfg.metric as u64 | (cfg.prioritization as u64) << 8 | (cfg.admission as u64) << 16;
        let rng = self.rng.state();
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
            Word::NextId => self.next_id(),
            Word::Residents => self.len() as u64,
            Word::PayloadBytes => self.residents.live_bytes(),
            Word::Evicted => self.counters.evicted,
            Word::Removed => self.counters.removed,
            Word::Sampled => self.counters.sampled,
            Word::LineageFloor => self.log.base(),
            Word::Pinned => self.log.pinned().len() as u64,
            Word::Rejected => self.counters.rejected,
            Word::WeightRef => self.priorities.weight_ref().to_bits(),
        })
    }

    fn write_section<W: Write>(&self, w: &mut CrcWriter<W>, col: Col) -> Result<()> {
        let records = self.log.records();
        let pinned = self.log.pinned();
        let residents = self.residents.records();
        let lineage = |f: fn(&LogRecord) -> u64| -> Vec<u64> { records.iter().map(f).collect() };
        let pinned_col =
            |f: fn(&(u64, LogRecord)) -> u64| -> Vec<u64> { pinned.iter().map(f).collect() };
        let resident = |f: fn(&Record) -> u64| -> Vec<u64> { residents.iter().map(f).collect() };
        match col {
            Col::Parent => w.put_column(&lineage(|r| r.parent)),
            Col::Root => w.put_column(&lineage(|r| r.root)),
            Col::Depth => w.put_column(&records.iter().map(|r| r.depth).collect::<Vec<u32>>()),
            Col::PinnedId => w.put_column(&pinned_col(|p| p.0)),
            Col::PinnedParent => w.put_column(&pinned_col(|p| p.1.parent)),
            Col::PinnedRoot => w.put_column(&pinned_col(|p| p.1.root)),
            Col::PinnedDepth => {
                w.put_column(&pinned.iter().map(|p| p.1.depth).collect::<Vec<u32>>())
            }
            Col::Id => w.put_column(&resident(|r| r.id)),
            Col::Score => w.put_column(self.priorities.scores()),
            Col::AddedStep => w.put_column(&resident(|r| r.added_step)),
            Col::LastStep => w.put_column(self.priorities.last_steps()),
            Col::TimesSampled => w.put_column(&resident(|r| r.times_sampled)),
            Col::PayloadLen => w.put_column(&residents.iter().map(|r| r.len).collect::<Vec<u32>>()),
            Col::RankOrder => w.put_column(&self.priorities.rank_order()),
            Col::Payloads => {
                for s in 0..self.len() {
                    w.put(self.residents.payload(s))?;
                }
                Ok(())
            }
            Col::Embeddings => w.put_column(self.residents.embeddings()),
        }
    }

    fn write_to<W: Write>(&self, inner: W) -> Result<W> {
        let mut w = CrcWriter {
            inner,
            crc: crc32fast::Hasher::new(),
            written: 0,
        };
        w.put(MAGIC)?;
        w.put(&VERSION.to_le_bytes())?;
        w.put(&(Header::len_in_file(VERSION) as u32).to_le_bytes())?;
        w.put_column(&self.header())?;
        for s in sections(VERSION) {
            self.write_section(&mut w, s.col)?;
        }
        let crc = w.crc.clone().finalize();
        let total = w.written + TRAILER_LEN as u64;
        w.inner.write_all(&crc.to_le_bytes())?;
        w.inner.write_all(&total.to_le_bytes())?;
        Ok(w.inner)
    }

    /// The snapshot as bytes (the same format as [`Archive::save`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.write_to(Vec::new())
            .expect("writing to memory cannot fail")
    }

    /// Loads a snapshot from bytes (the format of [`Archive::save`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Archive> {
        Archive::read_from(bytes, bytes.len() as u64)
    }

    /// Writes a snapshot atomically: temp file in the same folder, fsync, rename, fsync folder.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let tmp = temp_path(path);
        let result = (|| {
            let file = File::create(&tmp)?;
            let mut buffered = self.write_to(BufWriter::with_capacity(1 << 20, file))?;
            buffered.flush()?;
            let file = buffered
                .into_inner()
                .map_err(|e| Error::Io(e.to_string()))?;
            file.sync_all()?;
            fs::rename(&tmp, path)?;
            sync_parent(path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result?;
        remove_stale_temps(path);
        Ok(())
    }

    /// Loads a snapshot file written by [`Archive::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Archive> {
        let file = File::open(path.as_ref())?;
        let len = file.metadata()?.len();
        Archive::read_from(file, len)
    }

    fn read_from<R: Read>(inner: R, file_len: u64) -> Result<Archive> {
        let (header, mut columns, verified) = read(inner, file_len)?;
        let weight_ref = validate(&header, &mut columns, &verified)?;
        Ok(build(&header, columns, verified.sq_norms, weight_ref))
    }
}

/// Step 1: the bytes. Checks magic, version, lengths and checksum; trusts no value yet.
fn read<R: Read>(mut r: R, file_len: u64) -> Result<(Header, Columns, Verifier)> {
    if file_len < (PREFIX_LEN + Header::len_in_file(1) + TRAILER_LEN) as u64 {
        return corrupt(format!("{file_len} bytes is too short for a snapshot"));
    }
    let mut crc = crc32fast::Hasher::new();
    let mut prefix = [0u8; PREFIX_LEN];
    read_exact(&mut r, &mut prefix)?;
    crc.update(&prefix);
    if &prefix[..8] != MAGIC {
        return corrupt("not an exit-archive snapshot (bad magic)");
    }
    let version = u32::from_le_bytes(prefix[8..12].try_into().expect("4 bytes"));
    if !(1..=VERSION).contains(&version) {
        return corrupt(format!("unsupported snapshot version {version}"));
    }
    let header_len = Header::len_in_file(version);
    if u32::from_le_bytes(prefix[12..16].try_into().expect("4 bytes")) != header_len as u32 {
        return corrupt("unexpected header length");
    }
    let mut present = vec![0u64; header_len / 8];
    read_exact(&mut r, bytemuck::cast_slice_mut(&mut present))?;
    crc.update(bytemuck::cast_slice(&present));
    let mut words = [0u64; HEADER.len()];
    let mut next = present.into_iter();
    for (i, (_, since)) in HEADER.iter().enumerate() {
        if *since <= version {
            words[i] = next.next().expect("header length checked");
        }
    }
    let header = Header { version, words };
    match expected_len(&header) {
        Some(expected) if expected == file_len => {}
        _ => return corrupt("declared sizes do not match the file length"),
    }
    // Every count now fits in the file, so these allocations are bounded by its size.
    let mut columns = Columns(
        (0..SECTIONS.len())
            .map(|_| Column::U8(Vec::new()))
            .collect(),
    );
    for s in sections(version) {
        let n = count(&header, s.count).expect("checked by expected_len") as usize;
        columns.0[s.col as usize] = match s.elem {
            Elem::U8 => Column::U8(crate::huge::zeroed(n)),
            Elem::U32 => Column::U32(crate::huge::zeroed(n)),
            Elem::U64 => Column::U64(crate::huge::zeroed(n)),
            Elem::F32 => Column::F32(crate::huge::zeroed(n)),
        };
    }
    let dim = header.get(Word::EmbeddingDim) as usize;
    let rows = if dim == 0 {
        0
    } else {
        header.get(Word::Residents) as usize
    };
    let verifier = Verifier {
        crc,
        dim,
        sq_norms: Vec::with_capacity(rows),
        non_finite: false,
        zero: false,
    };
    // Sections are written in `SECTIONS` order, which is `Col` order.
    let verifier = read_columns(&mut r, &mut columns.0, verifier, file_len)?;
    let crc = verifier.crc.clone().finalize();
    let mut trailer = [0u8; TRAILER_LEN];
    r.read_exact(&mut trailer)
        .map_err(|_| Error::Corrupt("file is truncated".into()))?;
    if u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes")) != crc {
        return corrupt("checksum mismatch");
    }
    if u64::from_le_bytes(trailer[4..].try_into().expect("8 bytes")) != file_len {
        return corrupt("trailer length mismatch");
    }
    Ok((header, columns, verifier))
}

/// The configuration a header describes.
fn config(h: &Header) -> Result<Config> {
    let modes = h.get(Word::Modes);
    let metric = match modes & 0xff {
        0 => Metric::Cosine,
        1 => Metric::L2,
        _ => return corrupt("unknown metric"),
    };
    let prioritization = match (modes >> 8 & 0xff, h.version) {
        (0, _) => Prioritization::Rank,
        (1, _) => Prioritization::Proportional,
        (2, 3..) => Prioritization::Softmax,
        _ => return corrupt("unknown prioritization"),
    };
    let admission = match (modes >> 16, h.version) {
        (0, _) => Admission::Always,
        (1, 3..) => Admission::NotBelowMin,
        _ => return corrupt("unknown admission rule"),
    };
    let dim = h.get(Word::EmbeddingDim);
    let cfg = Config {
        capacity: usize::try_from(h.get(Word::Capacity)).unwrap_or(0),
        embedding_dim: (dim > 0).then_some(dim as usize),
        metric,
        prioritization,
        temperature: f64::from_bits(h.get(Word::Temperature)),
        staleness_coef: f64::from_bits(h.get(Word::StalenessCoef)),
        admission,
        seed: h.get(Word::Seed),
        max_payload_bytes: usize::try_from(h.get(Word::MaxPayloadBytes)).unwrap_or(usize::MAX),
    };
    cfg.validate().or(corrupt("invalid configuration"))?;
    Ok(cfg)
}

/// Step 2: every value, checked once, in one place. Fills in what older versions lack (the
/// rank order) so that `build` can trust the columns.
fn validate(h: &Header, cols: &mut Columns, verified: &Verifier) -> Result<f64> {
    let cfg = config(h)?;
    if Rng::from_state([Word::Rng0, Word::Rng1, Word::Rng2, Word::Rng3].map(|w| h.get(w))).is_none()
    {
        return corrupt("invalid RNG state");
    }
    let (next_id, base) = (h.get(Word::NextId), h.get(Word::LineageFloor));
    if next_id > ID_LIMIT {
        return corrupt("next id beyond the id limit 2^63");
    }
    let n = h.get(Word::Residents) as usize;
    if n > cfg.capacity || n as u64 > next_id {
        return corrupt("more residents than capacity or ids");
    }
    if h.get(Word::Pinned) > base {
        return corrupt("more pinned lineage records than ids below the floor");
    }
    // Lineage: each record agrees with its parent's whenever the parent's is kept.
    let get = |c: Col| -> &Column { &cols.0[c as usize] };
    let (Column::U64(parent), Column::U64(root), Column::U32(depth)) =
        (get(Col::Parent), get(Col::Root), get(Col::Depth))
    else {
        return corrupt("missing lineage");
    };
    let (pinned_ids, pinned_parent, pinned_root, pinned_depth) = match (
        get(Col::PinnedId),
        get(Col::PinnedParent),
        get(Col::PinnedRoot),
        get(Col::PinnedDepth),
    ) {
        (Column::U64(a), Column::U64(b), Column::U64(c), Column::U32(d)) => (a, b, c, d),
        _ => (&Vec::new(), &Vec::new(), &Vec::new(), &Vec::new()),
    };
    if pinned_ids.windows(2).any(|w| w[0] >= w[1]) || pinned_ids.iter().any(|&p| p >= base) {
        return corrupt("pinned lineage ids out of order or above the floor");
    }
    let record_of = |id: u64| -> Option<(u64, u32)> {
        if id >= base {
            let i = (id - base) as usize;
            Some((root[i], depth[i]))
        } else {
            let k = pinned_ids.binary_search(&id).ok()?;
            Some((pinned_root[k], pinned_depth[k]))
        }
    };
    let consistent = |id: u64, parent: u64, root: u64, depth: u32| -> bool {
        if parent == NO_PARENT {
            return root == id && depth == 0;
        }
        if parent >= id {
            return false;
        }
        match record_of(parent) {
            Some((pr, pd)) => root == pr && pd.checked_add(1) == Some(depth),
            None => root <= parent && depth >= 1, // the parent's record was forgotten
        }
    };
    for k in 0..pinned_ids.len() {
        if !consistent(
            pinned_ids[k],
            pinned_parent[k],
            pinned_root[k],
            pinned_depth[k],
        ) {
            return corrupt(format!("inconsistent lineage at id {}", pinned_ids[k]));
        }
    }
    for i in 0..parent.len() {
        if !consistent(base + i as u64, parent[i], root[i], depth[i]) {
            return corrupt(format!("inconsistent lineage at id {}", base + i as u64));
        }
    }
    // Residents: unique ids, each with a lineage record; every pinned id is resident.
    let (Column::U64(ids), Column::U64(score_bits), Column::U32(lens)) =
        (get(Col::Id), get(Col::Score), get(Col::PayloadLen))
    else {
        return corrupt("missing residents");
    };
    let mut seen = vec![false; parent.len()];
    let mut seen_pinned = vec![false; pinned_ids.len()];
    for &id in ids {
        let fresh = if id >= next_id {
            false
        } else if id >= base {
            !std::mem::replace(&mut seen[(id - base) as usize], true)
        } else {
            match pinned_ids.binary_search(&id) {
                Ok(k) => !std::mem::replace(&mut seen_pinned[k], true),
                Err(_) => false,
            }
        };
        if !fresh {
            return corrupt("resident ids out of range, repeated or without lineage");
        }
    }
    if seen_pinned.contains(&false) {
        return corrupt("pinned lineage for an id that is not resident");
    }
    let scores: Vec<f64> = score_bits.iter().map(|&b| f64::from_bits(b)).collect();
    if crate::validate::scores(&scores, cfg.prioritization).is_err() {
        return corrupt("invalid score");
    }
    if let (Column::U64(added), Column::U64(last)) = (get(Col::AddedStep), get(Col::LastStep)) {
        if added.iter().zip(last).any(|(a, l)| l < a) {
            return corrupt("a resident's last step is before its added step");
        }
    }
    if lens.iter().map(|&l| l as u64).sum::<u64>() != h.get(Word::PayloadBytes)
        || lens.iter().any(|&l| l as usize > cfg.max_payload_bytes)
    {
        return corrupt("payload lengths do not add up");
    }
    // The embedding rows were looked at while read (the checks of `validate::vectors`).
    if cfg.embedding_dim.is_some()
        && (verified.non_finite || (cfg.metric == Metric::Cosine && verified.zero))
    {
        return corrupt("non-finite embedding, or zero under the cosine metric");
    }
    // The rank order: a permutation of slots listing keys in strictly ascending rank order
    // (version 4), or computed for older files.
    let key = |s: usize| {
        (
            std::cmp::Reverse(crate::priorities::ascending_bits(scores[s])),
            ids[s],
        )
    };
    let order: Vec<u32> = match get(Col::RankOrder) {
        Column::U32(order) if h.version >= 4 => {
            let mut hit = vec![false; n];
            for &s in order {
                if (s as usize) >= n || std::mem::replace(&mut hit[s as usize], true) {
                    return corrupt("rank order is not a permutation of the residents");
                }
            }
            if order
                .windows(2)
                .any(|w| key(w[0] as usize) >= key(w[1] as usize))
            {
                return corrupt("rank order out of order");
            }
            order.clone()
        }
        _ => {
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.sort_unstable_by_key(|&s| key(s as usize));
            order
        }
    };
    cols.0[Col::RankOrder as usize] = Column::U32(order);
    // The weight reference: versions before 5 had one for softmax only.
    let top = scores.iter().copied().reduce(f64::max);
    let mode = cfg.prioritization;
    let stored = f64::from_bits(h.get(Word::WeightRef));
    let weight_ref = match mode {
        Prioritization::Proportional if h.version < 5 => {
            let initial = crate::priorities::initial_weight_ref(mode);
            match top {
                Some(top) if !weight_ref_fits(mode, cfg.temperature, initial, top) => top,
                _ => initial,
            }
        }
        Prioritization::Rank => {
            if !stored.is_finite() {
                return corrupt("invalid weight reference");
            }
            stored
        }
        _ => {
            let fits = match top {
                Some(top) => weight_ref_fits(mode, cfg.temperature, stored, top),
                None => weight_ref_fits(mode, cfg.temperature, stored, stored),
            };
            if !fits {
                return corrupt("weight reference invalid or far from the highest score");
            }
            stored
        }
    };
    Ok(weight_ref)
}

/// Step 3: the archive, from validated columns.
fn build(h: &Header, mut cols: Columns, sq_norms: Vec<f32>, weight_ref: f64) -> Archive {
    let cfg = config(h).expect("validated");
    let base = h.get(Word::LineageFloor);
    let (parent, root, depth) = (
        cols.u64s(Col::Parent),
        cols.u64s(Col::Root),
        cols.u32s(Col::Depth),
    );
    let record = |parent, root, depth| LogRecord {
        parent,
        root,
        depth,
        slot: NOT_PLACED,
    };
    let records: Vec<LogRecord> = (0..parent.len())
        .map(|i| record(parent[i], root[i], depth[i]))
        .collect();
    let (pid, pparent, proot, pdepth) = (
        cols.u64s(Col::PinnedId),
        cols.u64s(Col::PinnedParent),
        cols.u64s(Col::PinnedRoot),
        cols.u32s(Col::PinnedDepth),
    );
    let pinned = (0..pid.len())
        .map(|k| (pid[k], record(pparent[k], proot[k], pdepth[k])))
        .collect();
    let mut log = LineageLog::from_parts(base, records, pinned);
    let ids = cols.u64s(Col::Id);
    for (s, &id) in ids.iter().enumerate() {
        log[id].slot = s as u32;
    }
    let scores: Vec<f64> = cols
        .u64s(Col::Score)
        .into_iter()
        .map(f64::from_bits)
        .collect();
    let last = cols.u64s(Col::LastStep);
    let (added, times, lens) = (
        cols.u64s(Col::AddedStep),
        cols.u64s(Col::TimesSampled),
        cols.u32s(Col::PayloadLen),
    );
    let mut offset = 0u64;
    let records: Vec<Record> = (0..ids.len())
        .map(|s| {
            let r = Record {
                id: ids[s],
                added_step: added[s],
                times_sampled: times[s],
                offset,
                len: lens[s],
                cap: lens[s],
            };
            offset += lens[s] as u64;
            r
        })
        .collect();
    let dim = cfg.embedding_dim.unwrap_or(0);
    let embeddings = cols.f32s(Col::Embeddings);
    let residents = Residents::from_parts(
        dim,
        records,
        cols.bytes(Col::Payloads),
        embeddings,
        sq_norms,
    );
    let order = cols.u32s(Col::RankOrder);
    let priorities = Priorities::from_ranked(&cfg, &ids, scores, last, &order, weight_ref);
    let rng = Rng::from_state([Word::Rng0, Word::Rng1, Word::Rng2, Word::Rng3].map(|w| h.get(w)))
        .expect("validated");
    Archive {
        rng,
        log,
        residents,
        priorities,
        counters: Counters {
            evicted: h.get(Word::Evicted),
            rejected: h.get(Word::Rejected),
            removed: h.get(Word::Removed),
            sampled: h.get(Word::Sampled),
        },
        cfg,
    }
}

fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    format!(".{name}.tmp.")
}

fn temp_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{}{}.{unique}", temp_prefix(path), std::process::id());
    path.with_file_name(name)
}

fn sync_parent(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
    }
    let _ = path;
    Ok(())
}

/// Deletes temp files of this snapshot path left by processes that no longer run.
fn remove_stale_temps(path: &Path) {
    let prefix = temp_prefix(path);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let pid = rest.split('.').next().and_then(|p| p.parse::<u32>().ok());
        let alive = match pid {
            Some(pid) if pid == std::process::id() => true,
            Some(pid) => Path::new(&format!("/proc/{pid}")).exists() || !cfg!(target_os = "linux"),
            None => true,
        };
        if !alive {
            let _ = fs::remove_file(entry.path());
        }
    }
}
