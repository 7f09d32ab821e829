//! One-file snapshots: versioned header, little-endian sections, CRC-32 trailer.
//!
//! Layout (all integers little-endian):
//! ```text
//! magic "EXITARC\0" | version u32 | header_len u32 | header (HEADER_LEN bytes)
//! lineage:   parent u64 × m | root u64 × m | depth u32 × m   (m = next_id − lineage_base)
//! pinned:    id u64 × p | parent u64 × p | root u64 × p | depth u32 × p  (residents below
//!            lineage_base; version 2 and later)
//! residents: id u64 × n | score f64 × n | added_step u64 × n | last_step u64 × n
//!            | times_sampled u64 × n | payload_len u32 × n
//! payload bytes (payload_bytes) | embeddings f32 × n·dim
//! trailer:   crc32 of everything before u32 | total file length u64
//! ```
//! Every declared length is checked against the file size before anything is allocated, and
//! the checksum is verified before any value is trusted.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::archive::{Archive, LogRecord, SlotRecord, NOT_RESIDENT, NO_PARENT, SOFTMAX_SLACK};
use crate::arena::Arena;
use crate::config::{Admission, Config, Prioritization};
use crate::error::{Error, Result};
use crate::lineage::LineageLog;
use crate::novelty::Metric;
use crate::rng::Rng;

const MAGIC: &[u8; 8] = b"EXITARC\0";
const VERSION: u32 = 3;
/// Header bytes per version: version 2 added the pinned-lineage count, version 3 the
/// rejected count and the softmax reference (and the softmax and admission mode codes).
const HEADER_LEN_V1: usize = 8 * 18;
const HEADER_LEN_V2: usize = 8 * 19;
const HEADER_LEN: usize = 8 * 21;
const PREFIX_LEN: usize = 16;
const TRAILER_LEN: usize = 12;
/// Read/checksum granularity: large enough for few syscalls, small enough to stay in L2.
const CHUNK: usize = 256 << 10;

fn corrupt<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Corrupt(msg.into()))
}

/// Plain-old-data element types that are read and written as raw little-endian bytes.
trait Pod: Copy + Default {}
impl Pod for u8 {}
impl Pod for u32 {}
impl Pod for u64 {}
impl Pod for f32 {}
impl Pod for f64 {}

#[cfg(not(target_endian = "little"))]
compile_error!("snapshots are written as raw little-endian arrays");

fn as_bytes<T: Pod>(v: &[T]) -> &[u8] {
    // SAFETY: T is a primitive number type with no padding and no invalid bit patterns.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

fn as_bytes_mut<T: Pod>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: as above; every byte pattern is a valid T.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, std::mem::size_of_val(v)) }
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

    fn put_u64(&mut self, x: u64) -> Result<()> {
        self.put(&x.to_le_bytes())
    }
}

struct CrcReader<R: Read> {
    inner: R,
    crc: crc32fast::Hasher,
}

impl<R: Read> CrcReader<R> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        // Checksum each chunk right after reading it, while it is still in cache.
        for chunk in buf.chunks_mut(CHUNK) {
            self.inner.read_exact(chunk).or_else(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    corrupt("file is truncated")
                } else {
                    Err(e.into())
                }
            })?;
            self.crc.update(chunk);
        }
        Ok(())
    }

    fn vec<T: Pod>(&mut self, len: usize) -> Result<Vec<T>> {
        let mut v = vec![T::default(); len];
        self.fill(as_bytes_mut(&mut v))?;
        Ok(v)
    }
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
}

/// Exact file length implied by the header counts; None on overflow.
fn expected_len(
    header_len: usize,
    lineage_records: u64,
    pinned: u64,
    n: u64,
    payload_bytes: u64,
    dim: u64,
) -> Option<u64> {
    let lineage = lineage_records
        .checked_mul(20)?
        .checked_add(pinned.checked_mul(28)?)?;
    let residents = n.checked_mul(44)?;
    let embeddings = n.checked_mul(dim)?.checked_mul(4)?;
    ((PREFIX_LEN + header_len + TRAILER_LEN) as u64)
        .checked_add(lineage)?
        .checked_add(residents)?
        .checked_add(payload_bytes)?
        .checked_add(embeddings)
}

impl Archive {
    fn write_to<W: Write>(&self, inner: W) -> Result<W> {
        let mut w = CrcWriter {
            inner,
            crc: crc32fast::Hasher::new(),
            written: 0,
        };
        let cfg = &self.cfg;
        w.put(MAGIC)?;
        w.put(&VERSION.to_le_bytes())?;
        w.put(&(HEADER_LEN as u32).to_le_bytes())?;
        let modes =
            cfg.metric as u64 | (cfg.prioritization as u64) << 8 | (cfg.admission as u64) << 16;
        let header = [
            cfg.capacity as u64,
            cfg.embedding_dim.unwrap_or(0) as u64,
            modes,
            cfg.temperature.to_bits(),
            cfg.staleness_coef.to_bits(),
            cfg.seed,
            cfg.max_payload_bytes as u64,
        ];
        for x in header.into_iter().chain(self.rng.state()) {
            w.put_u64(x)?;
        }
        for x in [
            self.next_id,
            self.len() as u64,
            self.payloads.live_bytes(),
            self.evicted,
            self.removed,
            self.sampled,
            self.log.base(),
        ] {
            w.put_u64(x)?;
        }
        let pinned: Vec<(u64, LogRecord)> = self
            .log
            .pinned()
            .into_iter()
            .filter(|(_, r)| r.slot != NOT_RESIDENT)
            .collect();
        w.put_u64(pinned.len() as u64)?;
        w.put_u64(self.rejected)?;
        w.put_u64(self.softmax_ref.to_bits())?;
        // Columnar on disk: each field is written as one contiguous little-endian array.
        let records = self.log.records();
        let column = |f: fn(&LogRecord) -> u64| -> Vec<u64> { records.iter().map(f).collect() };
        w.put(as_bytes(&column(|r| r.parent)))?;
        w.put(as_bytes(&column(|r| r.root)))?;
        let depth: Vec<u32> = records.iter().map(|r| r.depth).collect();
        w.put(as_bytes(&depth))?;
        let pinned_ids: Vec<u64> = pinned.iter().map(|p| p.0).collect();
        w.put(as_bytes(&pinned_ids))?;
        let column =
            |f: fn(&LogRecord) -> u64| -> Vec<u64> { pinned.iter().map(|p| f(&p.1)).collect() };
        w.put(as_bytes(&column(|r| r.parent)))?;
        w.put(as_bytes(&column(|r| r.root)))?;
        let depth: Vec<u32> = pinned.iter().map(|p| p.1.depth).collect();
        w.put(as_bytes(&depth))?;
        let column = |f: fn(&SlotRecord) -> u64| -> Vec<u64> { self.slots.iter().map(f).collect() };
        w.put(as_bytes(&column(|s| s.id)))?;
        w.put(as_bytes(&column(|s| s.score.to_bits())))?;
        w.put(as_bytes(&column(|s| s.added_step)))?;
        w.put(as_bytes(&column(|s| s.last_step)))?;
        w.put(as_bytes(&column(|s| s.times_sampled)))?;
        let lens: Vec<u32> = (0..self.len())
            .map(|s| self.payloads.get(s).len() as u32)
            .collect();
        w.put(as_bytes(&lens))?;
        for s in 0..self.len() {
            w.put(self.payloads.get(s))?;
        }
        w.put(as_bytes(&self.embeddings))?;
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

    pub fn load(path: impl AsRef<Path>) -> Result<Archive> {
        let file = File::open(path.as_ref())?;
        let len = file.metadata()?.len();
        Archive::read_from(std::io::BufReader::with_capacity(1 << 16, file), len)
    }

    fn read_from<R: Read>(inner: R, file_len: u64) -> Result<Archive> {
        if file_len < (PREFIX_LEN + HEADER_LEN_V1 + TRAILER_LEN) as u64 {
            return corrupt(format!("{file_len} bytes is too short for a snapshot"));
        }
        let mut r = CrcReader {
            inner,
            crc: crc32fast::Hasher::new(),
        };
        let mut prefix = [0u8; PREFIX_LEN];
        r.fill(&mut prefix)?;
        if &prefix[..8] != MAGIC {
            return corrupt("not an exit-archive snapshot (bad magic)");
        }
        let version = u32::from_le_bytes(prefix[8..12].try_into().expect("4 bytes"));
        let header_len = match version {
            1 => HEADER_LEN_V1,
            2 => HEADER_LEN_V2,
            VERSION => HEADER_LEN,
            _ => return corrupt(format!("unsupported snapshot version {version}")),
        };
        if u32::from_le_bytes(prefix[12..16].try_into().expect("4 bytes")) != header_len as u32 {
            return corrupt("unexpected header length");
        }
        let mut h = [0u8; HEADER_LEN];
        r.fill(&mut h[..header_len])?;
        let [capacity, dim, modes, temperature, coef, seed, max_payload] =
            std::array::from_fn(|i| u64_at(&h, i));
        let rng_state: [u64; 4] = std::array::from_fn(|i| u64_at(&h, 7 + i));
        let [next_id, n, payload_bytes, evicted, removed, sampled, base, pinned_count, rejected, softmax_ref] =
            std::array::from_fn(|i| u64_at(&h, 11 + i));
        let softmax_ref = f64::from_bits(softmax_ref);
        if base > next_id || pinned_count > base {
            return corrupt("lineage floor beyond the next id");
        }
        match expected_len(
            header_len,
            next_id - base,
            pinned_count,
            n,
            payload_bytes,
            dim,
        ) {
            Some(expected) if expected == file_len => {}
            _ => return corrupt("declared sizes do not match the file length"),
        }
        let metric = match modes & 0xff {
            0 => Metric::Cosine,
            1 => Metric::L2,
            _ => return corrupt("unknown metric"),
        };
        // Versions before 3 knew neither softmax nor admission rules.
        let prioritization = match (modes >> 8 & 0xff, version) {
            (0, _) => Prioritization::Rank,
            (1, _) => Prioritization::Proportional,
            (2, 3..) => Prioritization::Softmax,
            _ => return corrupt("unknown prioritization"),
        };
        let admission = match modes >> 16 {
            0 => Admission::Always,
            1 if version >= 3 => Admission::NotBelowMin,
            _ => return corrupt("unknown admission rule"),
        };
        if !softmax_ref.is_finite() {
            return corrupt("invalid softmax reference");
        }
        let cfg = Config {
            capacity: capacity as usize,
            embedding_dim: (dim > 0).then_some(dim as usize),
            metric,
            prioritization,
            temperature: f64::from_bits(temperature),
            staleness_coef: f64::from_bits(coef),
            admission,
            seed,
            max_payload_bytes: max_payload as usize,
        };
        let (next, n, dim) = ((next_id - base) as usize, n as usize, dim as usize);
        let parent: Vec<u64> = r.vec(next)?;
        let root: Vec<u64> = r.vec(next)?;
        let depth: Vec<u32> = r.vec(next)?;
        let pinned_count = pinned_count as usize;
        let pinned_ids: Vec<u64> = r.vec(pinned_count)?;
        let pinned_parent: Vec<u64> = r.vec(pinned_count)?;
        let pinned_root: Vec<u64> = r.vec(pinned_count)?;
        let pinned_depth: Vec<u32> = r.vec(pinned_count)?;
        let ids: Vec<u64> = r.vec(n)?;
        let scores: Vec<f64> = r.vec(n)?;
        let added_step: Vec<u64> = r.vec(n)?;
        let last_step: Vec<u64> = r.vec(n)?;
        let times_sampled: Vec<u64> = r.vec(n)?;
        let lens: Vec<u32> = r.vec(n)?;
        let bytes: Vec<u8> = r.vec(payload_bytes as usize)?;
        let embeddings: Vec<f32> = r.vec(n * dim)?;
        let crc = r.crc.clone().finalize();
        let mut trailer = [0u8; TRAILER_LEN];
        r.inner
            .read_exact(&mut trailer)
            .map_err(|_| Error::Corrupt("file is truncated".into()))?;
        if u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes")) != crc {
            return corrupt("checksum mismatch");
        }
        if u64::from_le_bytes(trailer[4..].try_into().expect("8 bytes")) != file_len {
            return corrupt("trailer length mismatch");
        }

        // The bytes are intact; now check they describe a consistent archive.
        cfg.validate().or(corrupt("invalid configuration"))?;
        let Some(rng) = Rng::from_state(rng_state) else {
            return corrupt("invalid RNG state");
        };
        if n > cfg.capacity || n as u64 > next_id {
            return corrupt("more residents than capacity or ids");
        }
        // Lineage: each record agrees with its parent's whenever the parent's is kept.
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
        if pinned_ids.windows(2).any(|w| w[0] >= w[1]) || pinned_ids.iter().any(|&p| p >= base) {
            return corrupt("pinned lineage ids out of order or above the floor");
        }
        for k in 0..pinned_count {
            if !consistent(
                pinned_ids[k],
                pinned_parent[k],
                pinned_root[k],
                pinned_depth[k],
            ) {
                return corrupt(format!("inconsistent lineage at id {}", pinned_ids[k]));
            }
        }
        for i in 0..next {
            if !consistent(base + i as u64, parent[i], root[i], depth[i]) {
                return corrupt(format!("inconsistent lineage at id {}", base + i as u64));
            }
        }
        // Residents: unique ids, each with a lineage record; every pinned id is resident.
        let mut seen = vec![false; next];
        let mut seen_pinned = vec![false; pinned_count];
        for &id in &ids {
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
        for &s in &scores {
            if !s.is_finite() || (prioritization == Prioritization::Proportional && s < 0.0) {
                return corrupt("invalid score");
            }
        }
        if lens.iter().map(|&l| l as u64).sum::<u64>() != payload_bytes
            || lens.iter().any(|&l| l as usize > cfg.max_payload_bytes)
        {
            return corrupt("payload lengths do not add up");
        }
        // One pass over the embeddings: finiteness and the cached squared norms.
        let mut sq_norms: Vec<f32> = Vec::with_capacity(if dim > 0 { n } else { 0 });
        if dim > 0 {
            for row in embeddings.chunks_exact(dim) {
                if !row.iter().all(|x| x.is_finite()) {
                    return corrupt("non-finite embedding");
                }
                sq_norms.push(crate::archive::sq_norm(row));
            }
        }
        if metric == Metric::Cosine && sq_norms.contains(&0.0) {
            return corrupt("zero embedding under the cosine metric");
        }

        let mut archive = Archive::new(cfg)?;
        archive.rng = rng;
        archive.next_id = next_id;
        let record = |parent, root, depth| LogRecord {
            parent,
            root,
            depth,
            slot: NOT_RESIDENT,
        };
        archive.log = LineageLog::from_parts(
            base,
            (0..next)
                .map(|i| record(parent[i], root[i], depth[i]))
                .collect(),
            (0..pinned_count)
                .map(|k| {
                    let r = record(pinned_parent[k], pinned_root[k], pinned_depth[k]);
                    (pinned_ids[k], r)
                })
                .collect(),
        );
        archive.slots = (0..n)
            .map(|s| SlotRecord {
                id: ids[s],
                score: scores[s],
                added_step: added_step[s],
                last_step: last_step[s],
                times_sampled: times_sampled[s],
            })
            .collect();
        archive.payloads = Arena::from_parts(bytes, &lens);
        archive.embeddings = embeddings;
        archive.sq_norms = sq_norms;
        archive.evicted = evicted;
        archive.rejected = rejected;
        archive.softmax_ref = softmax_ref;
        archive.removed = removed;
        archive.sampled = sampled;
        archive.rebuild_indexes();
        if prioritization == Prioritization::Softmax && n > 0 {
            let x = (archive.top_score() - softmax_ref) / archive.cfg.temperature;
            if !(-SOFTMAX_SLACK..=SOFTMAX_SLACK).contains(&x) {
                return corrupt("softmax reference far from the highest score");
            }
        }
        Ok(archive)
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
