//! Step 1 of loading: the bytes. Checks magic, version and lengths, allocates only what the
//! file length allows, reads the columns and checks the checksum; trusts no value yet.

use std::io::Read;

use super::columns::Columns;
use super::format::{count, sections};
use super::format::{expected_len, Header, Word, HEADER, MAGIC, PREFIX_LEN, TRAILER_LEN, VERSION};
use super::pipeline::{read_columns, read_exact, Verifier};
use crate::error::{corrupt, CorruptKind, Result};

/// A file's contents, checksummed but not validated.
pub(super) struct Raw {
    pub(super) header: Header,
    pub(super) columns: Columns,
    /// The checksum and what was noted about the embedding rows while reading.
    pub(super) verified: Verifier,
}

pub(super) fn read<R: Read>(mut r: R, file_len: u64) -> Result<Raw> {
    if file_len < (PREFIX_LEN + Header::len_in_file(1) + TRAILER_LEN) as u64 {
        return corrupt(CorruptKind::TooShort(file_len));
    }
    let mut crc = crc32fast::Hasher::new();
    let header = read_header(&mut r, &mut crc)?;
    match expected_len(&header) {
        Some(expected) if expected == file_len => {}
        _ => return corrupt(CorruptKind::SizeMismatch),
    }
    // Every count now fits in the file, so these allocations are bounded by its size.
    let mut columns = Columns::default();
    let version = header.version;
    let mut present = Vec::new();
    for (s, (_, mut column)) in super::format::SECTIONS.iter().zip(columns.all()) {
        if s.since <= version {
            column.allocate(count(&header, s.count).expect("checked by expected_len") as usize);
            present.push(column);
        }
    }
    debug_assert_eq!(present.len(), sections(version).count());
    let dim = header.get(Word::EmbeddingDim) as usize;
    let rows = if dim == 0 {
        0
    } else {
        header.get(Word::Residents) as usize
    };
    let verified = read_columns(&mut r, present, Verifier::new(crc, dim, rows), file_len)?;
    let crc = verified.crc.clone().finalize();
    let mut trailer = [0u8; TRAILER_LEN];
    read_exact(&mut r, &mut trailer)?;
    if u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes")) != crc {
        return corrupt(CorruptKind::Checksum);
    }
    if u64::from_le_bytes(trailer[4..].try_into().expect("8 bytes")) != file_len {
        return corrupt(CorruptKind::TrailerLength);
    }
    Ok(Raw {
        header,
        columns,
        verified,
    })
}

/// The magic, version, header length and header words, added to `crc`.
fn read_header<R: Read>(r: &mut R, crc: &mut crc32fast::Hasher) -> Result<Header> {
    let mut prefix = [0u8; PREFIX_LEN];
    read_exact(r, &mut prefix)?;
    crc.update(&prefix);
    if &prefix[..8] != MAGIC {
        return corrupt(CorruptKind::BadMagic);
    }
    let version = u32::from_le_bytes(prefix[8..12].try_into().expect("4 bytes"));
    if !(1..=VERSION).contains(&version) {
        return corrupt(CorruptKind::UnsupportedVersion(version));
    }
    let header_len = Header::len_in_file(version);
    if u32::from_le_bytes(prefix[12..16].try_into().expect("4 bytes")) != header_len as u32 {
        return corrupt(CorruptKind::HeaderLength);
    }
    let mut present = vec![0u64; header_len / 8];
    read_exact(r, bytemuck::cast_slice_mut(&mut present))?;
    crc.update(bytemuck::cast_slice(&present));
    let mut words = [0u64; HEADER.len()];
    let mut next = present.into_iter();
    for (i, (_, since)) in HEADER.iter().enumerate() {
        if *since <= version {
            words[i] = next.next().expect("header length checked");
        }
    }
    Ok(Header { version, words })
}
