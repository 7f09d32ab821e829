use std::fmt;

use crate::id::Id;

/// Errors of archive operations. A call that returns an error has changed nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Malformed input: wrong length or shape, non-finite value, bad option, empty archive, ...
    Invalid(String),
    /// An id that is not resident (or, for lineage, was never inserted).
    UnknownId(Id),
    /// A snapshot that is truncated, corrupted, foreign or from an unsupported version.
    Corrupt(CorruptKind),
    /// An I/O failure while saving or loading.
    Io(String),
}

/// Why a snapshot was refused.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CorruptKind {
    /// Shorter (in bytes) than any snapshot.
    TooShort(u64),
    /// Not an exit-archive snapshot: the magic bytes differ.
    BadMagic,
    /// A version this crate does not read.
    UnsupportedVersion(u32),
    /// A header length that does not match its version.
    HeaderLength,
    /// Declared sizes that do not add up to the file length.
    SizeMismatch,
    /// The file ended early.
    Truncated,
    /// The CRC-32 does not match the contents.
    Checksum,
    /// The trailer's length word does not match the file length.
    TrailerLength,
    /// An unknown code for the named option (metric, prioritization, admission).
    UnknownMode(&'static str),
    /// Options the configuration refuses, with its reason.
    Config(String),
    /// The all-zero RNG state (the generator would only ever return 0).
    RngState,
    /// A next id beyond [`crate::ID_LIMIT`].
    IdLimit,
    /// More residents than the capacity or the ids allow.
    TooManyResidents,
    /// Pinned lineage records out of order, above the floor, or more than the ids below it.
    PinnedRecords,
    /// A lineage record that disagrees with its parent's, at this id.
    Lineage(Id),
    /// Resident ids out of range, repeated or without lineage.
    ResidentIds,
    /// A pinned lineage record of an id that is not resident.
    PinnedNotResident,
    /// A non-finite score, or a negative one in proportional mode.
    Score,
    /// A resident's last step before its added step.
    Steps,
    /// Payload lengths that do not add up, or above the maximum payload size.
    PayloadLengths,
    /// A non-finite embedding, or a zero one under the cosine metric.
    Embedding,
    /// A rank order that is not a permutation of the residents, or out of order.
    RankOrder,
    /// A weight reference that is invalid or far from the highest score.
    WeightReference,
}

impl fmt::Display for CorruptKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CorruptKind::*;
        match self {
            TooShort(len) => write!(f, "{len} bytes is too short for a snapshot"),
            BadMagic => write!(f, "not an exit-archive snapshot (bad magic)"),
            UnsupportedVersion(v) => write!(f, "unsupported snapshot version {v}"),
            HeaderLength => write!(f, "unexpected header length"),
            SizeMismatch => write!(f, "declared sizes do not match the file length"),
            Truncated => write!(f, "file is truncated"),
            Checksum => write!(f, "checksum mismatch"),
            TrailerLength => write!(f, "trailer length mismatch"),
            UnknownMode(what) => write!(f, "unknown {what}"),
            Config(why) => write!(f, "invalid configuration: {why}"),
            RngState => write!(f, "invalid RNG state"),
            IdLimit => write!(f, "next id beyond the id limit 2^63"),
            TooManyResidents => write!(f, "more residents than capacity or ids"),
            PinnedRecords => write!(
                f,
                "pinned lineage records out of order, above the floor or too many"
            ),
            Lineage(id) => write!(f, "inconsistent lineage at id {id}"),
            ResidentIds => write!(f, "resident ids out of range, repeated or without lineage"),
            PinnedNotResident => write!(f, "pinned lineage for an id that is not resident"),
            Score => write!(f, "invalid score"),
            Steps => write!(f, "a resident's last step is before its added step"),
            PayloadLengths => write!(f, "payload lengths do not add up"),
            Embedding => write!(f, "non-finite embedding, or zero under the cosine metric"),
            RankOrder => write!(f, "rank order is not the residents' order"),
            WeightReference => write!(f, "weight reference invalid or far from the highest score"),
        }
    }
}

/// Result of archive operations.
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(msg) => write!(f, "{msg}"),
            Error::UnknownId(id) => write!(f, "unknown id {id}"),
            Error::Corrupt(kind) => write!(f, "invalid snapshot: {kind}"),
            Error::Io(msg) => write!(f, "I/O error: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Invalid(msg.into()))
}

pub(crate) fn corrupt<T>(kind: CorruptKind) -> Result<T> {
    Err(Error::Corrupt(kind))
}

/// An empty vector with room for `n` values, or `Error::Invalid` when that much memory cannot
/// be had (sizes chosen by the caller must not abort the process).
pub(crate) fn try_with_capacity<T>(n: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| Error::Invalid(format!("cannot allocate {what} for {n} values")))?;
    Ok(v)
}
