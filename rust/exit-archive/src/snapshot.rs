//! One-file snapshots: versioned header, little-endian sections, CRC-32 trailer.
//!
//! Layout (all integers little-endian):
//! ```text
//! magic "EXITARC\0" | version u32 | header_len u32 | header (HEADER_LEN bytes)
//! lineage:   parent u64 × next_id | root u64 × next_id | depth u32 × next_id
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

use crate::archive::{Archive, LogRecord, SlotRecord, NOT_RESIDENT, NO_PARENT};
use crate::arena::Arena;
use crate::config::{Config, Prioritization};
use crate::error::{Error, Result};
use crate::novelty::Metric;
use crate::rng::Rng;

const MAGIC: &[u8; 8] = b"EXITARC\0";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 8 * 17 + 8;
const PREFIX_LEN: usize = 16;
const TRAILER_LEN: usize = 12;

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
        self.inner.read_exact(buf).or_else(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                corrupt("file is truncated")
            } else {
                Err(e.into())
            }
        })?;
        self.crc.update(buf);
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
fn expected_len(next_id: u64, n: u64, payload_bytes: u64, dim: u64) -> Option<u64> {
    let lineage = next_id.checked_mul(20)?;
    let residents = n.checked_mul(44)?;
    let embeddings = n.checked_mul(dim)?.checked_mul(4)?;
    ((PREFIX_LEN + HEADER_LEN + TRAILER_LEN) as u64)
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
        let modes = cfg.metric as u64 | (cfg.prioritization as u64) << 8;
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
            0, // reserved
        ] {
            w.put_u64(x)?;
        }
        // Columnar on disk: each field is written as one contiguous little-endian array.
        let column = |f: fn(&LogRecord) -> u64| -> Vec<u64> { self.log.iter().map(f).collect() };
        w.put(as_bytes(&column(|r| r.parent)))?;
        w.put(as_bytes(&column(|r| r.root)))?;
        let depth: Vec<u32> = self.log.iter().map(|r| r.depth).collect();
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
        if file_len < (PREFIX_LEN + HEADER_LEN + TRAILER_LEN) as u64 {
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
        if version != VERSION {
            return corrupt(format!("unsupported snapshot version {version}"));
        }
        if u32::from_le_bytes(prefix[12..16].try_into().expect("4 bytes")) != HEADER_LEN as u32 {
            return corrupt("unexpected header length");
        }
        let mut h = [0u8; HEADER_LEN];
        r.fill(&mut h)?;
        let [capacity, dim, modes, temperature, coef, seed, max_payload] =
            std::array::from_fn(|i| u64_at(&h, i));
        let rng_state: [u64; 4] = std::array::from_fn(|i| u64_at(&h, 7 + i));
        let [next_id, n, payload_bytes, evicted, removed, sampled] =
            std::array::from_fn(|i| u64_at(&h, 11 + i));
        match expected_len(next_id, n, payload_bytes, dim) {
            Some(expected) if expected == file_len => {}
            _ => return corrupt("declared sizes do not match the file length"),
        }
        let metric = match modes & 0xff {
            0 => Metric::Cosine,
            1 => Metric::L2,
            _ => return corrupt("unknown metric"),
        };
        let prioritization = match modes >> 8 {
            0 => Prioritization::Rank,
            1 => Prioritization::Proportional,
            _ => return corrupt("unknown prioritization"),
        };
        let cfg = Config {
            capacity: capacity as usize,
            embedding_dim: (dim > 0).then_some(dim as usize),
            metric,
            prioritization,
            temperature: f64::from_bits(temperature),
            staleness_coef: f64::from_bits(coef),
            seed,
            max_payload_bytes: max_payload as usize,
        };
        let (next, n, dim) = (next_id as usize, n as usize, dim as usize);
        let parent: Vec<u64> = r.vec(next)?;
        let root: Vec<u64> = r.vec(next)?;
        let depth: Vec<u32> = r.vec(next)?;
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
        if n > cfg.capacity || n > next {
            return corrupt("more residents than capacity or ids");
        }
        for i in 0..next {
            let ok = if parent[i] == NO_PARENT {
                root[i] == i as u64 && depth[i] == 0
            } else {
                let p = parent[i] as usize;
                p < i && root[i] == root[p] && depth[p].checked_add(1) == Some(depth[i])
            };
            if !ok {
                return corrupt(format!("inconsistent lineage at id {i}"));
            }
        }
        let mut seen = vec![false; next];
        for &id in &ids {
            if id >= next_id || std::mem::replace(&mut seen[id as usize], true) {
                return corrupt("resident ids out of range or repeated");
            }
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
        if embeddings.iter().any(|x| !x.is_finite()) {
            return corrupt("non-finite embedding");
        }
        let sq_norms: Vec<f32> = if dim > 0 {
            embeddings
                .chunks_exact(dim)
                .map(crate::archive::sq_norm)
                .collect()
        } else {
            Vec::new()
        };
        if metric == Metric::Cosine && sq_norms.contains(&0.0) {
            return corrupt("zero embedding under the cosine metric");
        }

        let mut archive = Archive::new(cfg)?;
        archive.rng = rng;
        archive.next_id = next_id;
        archive.log = (0..next)
            .map(|i| LogRecord {
                parent: parent[i],
                root: root[i],
                depth: depth[i],
                slot: NOT_RESIDENT,
            })
            .collect();
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
        archive.removed = removed;
        archive.sampled = sampled;
        archive.rebuild_indexes();
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
