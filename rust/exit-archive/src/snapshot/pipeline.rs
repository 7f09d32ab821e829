//! Reading the columns: chunk by chunk, each chunk checksummed right after it is read (on a
//! second thread for large files, so that checksumming overlaps reading), and the embedding
//! rows' squared norms and finiteness noted while they are in cache, for validation to judge
//! and the archive to keep.

use std::io::Read;

use bytemuck::Pod;

use super::columns::ColumnMut;
use crate::error::{corrupt, CorruptKind, Result};
use crate::residents::sq_norm;

/// Read granularity: each chunk is checksummed (and its embedding rows checked) right after
/// it is read, while it is in cache. Larger reads cost fewer syscalls; 1 MiB is the L2 size
/// here and measured no slower than 2-4 MiB.
const CHUNK: usize = 1 << 20;
/// Files at least this long are checksummed on a second thread while the first reads on.
const PIPELINE_MIN_LEN: u64 = 8 << 20;

/// A filled chunk of a section, in file order.
enum Chunk<'a> {
    Bytes(&'a [u8]),
    /// Whole embedding rows.
    Rows(&'a [f32]),
}

/// What is learnt from the bytes while they are in cache: the checksum, and for the
/// embedding rows their squared norms and whether any row is non-finite or zero.
pub(super) struct Verifier {
    pub(super) crc: crc32fast::Hasher,
    dim: usize,
    pub(super) sq_norms: Vec<f32>,
    pub(super) non_finite: bool,
    pub(super) zero: bool,
}

impl Verifier {
    /// Continues `crc` (of the bytes before the columns); `rows` embedding rows of `dim`.
    pub(super) fn new(crc: crc32fast::Hasher, dim: usize, rows: usize) -> Self {
        Verifier {
            crc,
            dim,
            sq_norms: Vec::with_capacity(rows),
            non_finite: false,
            zero: false,
        }
    }

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

pub(super) fn read_exact<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<()> {
    r.read_exact(buf).or_else(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            corrupt(CorruptKind::Truncated)
        } else {
            Err(e.into())
        }
    })
}

/// Reads every column chunk by chunk, handing each filled chunk to `sink`.
fn fill_columns<'a, R: Read>(
    r: &mut R,
    columns: Vec<ColumnMut<'a>>,
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
            ColumnMut::U8(v) => fill(r, v, CHUNK, |c| sink(Chunk::Bytes(c)))?,
            ColumnMut::U32(v) => fill(r, v, CHUNK / 4, |c| {
                sink(Chunk::Bytes(bytemuck::cast_slice(c)))
            })?,
            ColumnMut::U64(v) => fill(r, v, CHUNK / 8, |c| {
                sink(Chunk::Bytes(bytemuck::cast_slice(c)))
            })?,
            ColumnMut::F32(v) => fill(r, v, rows_per_chunk * dim.max(1), |c| sink(Chunk::Rows(c)))?,
        }
    }
    Ok(())
}

/// Reads the columns (sized already, in file order) and verifies them: on a second thread
/// when the file is large and a second core exists, so that checksumming overlaps reading.
pub(super) fn read_columns<R: Read>(
    r: &mut R,
    columns: Vec<ColumnMut<'_>>,
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
            // The verifier only stops when the sender is dropped.
            let _ = tx.send(c);
        });
        drop(tx);
        match worker.join() {
            Ok(verifier) => filled.map(|()| verifier),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
