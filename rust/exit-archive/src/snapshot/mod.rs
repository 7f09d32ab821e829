//! One-file snapshots: a versioned header of u64 words, little-endian column sections, a
//! CRC-32 trailer (`format.rs` holds the tables that describe them).
//!
//! Loading is three steps: read (`read.rs`: every declared length is checked against the
//! file size before anything is allocated, and the checksum before any value is trusted),
//! validate (`validate.rs`: every value, in named steps returning typed parts), then
//! `Archive::from_parts`. Saving writes the tables' sections (`write.rs`) to a temp file
//! that replaces the target atomically (`temp_files.rs`).
//!
//! Compatibility: every earlier version (1-4) loads; a version-4 file continues exactly as
//! the archive that wrote it (versions 1-3 predate the stored rank order and are sorted on
//! load). A proportional archive from before version 5 gets its weight reference on load.

mod columns;
mod format;
#[cfg(test)]
mod mutations;
mod pipeline;
mod read;
mod temp_files;
mod validate;
mod write;

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use crate::archive::Archive;
use crate::error::{Error, Result};

impl Archive {
    /// The snapshot as bytes (the same format as [`Archive::save`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        write::write_to(&self.parts(), Vec::new()).expect("writing to memory cannot fail")
    }

    /// Loads a snapshot from bytes (the format of [`Archive::save`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Archive> {
        read_from(bytes, bytes.len() as u64)
    }

    /// Writes a snapshot atomically: temp file in the same folder, fsync, rename, fsync folder.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        temp_files::write_atomically(path.as_ref(), |file| {
            let buffered = BufWriter::with_capacity(1 << 20, file);
            let mut buffered = write::write_to(&self.parts(), buffered)?;
            buffered.flush()?;
            buffered.into_inner().map_err(|e| Error::Io(e.to_string()))
        })
    }

    /// Loads a snapshot file written by [`Archive::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Archive> {
        let file = File::open(path.as_ref())?;
        let len = file.metadata()?.len();
        read_from(file, len)
    }
}

fn read_from<R: Read>(inner: R, file_len: u64) -> Result<Archive> {
    let raw = read::read(inner, file_len)?;
    Ok(validate::validate(raw)?.into_archive())
}
