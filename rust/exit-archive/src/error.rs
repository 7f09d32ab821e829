use std::fmt;

/// Errors of archive operations. A call that returns an error has changed nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Malformed input: wrong length or shape, non-finite value, bad option, empty archive, ...
    Invalid(String),
    /// An id that is not resident (or, for lineage, was never inserted).
    UnknownId(u64),
    /// A snapshot that is truncated, corrupted, foreign or from an unsupported version.
    Corrupt(String),
    /// An I/O failure while saving or loading.
    Io(String),
}

/// Result of archive operations.
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(msg) => write!(f, "{msg}"),
            Error::UnknownId(id) => write!(f, "unknown id {id}"),
            Error::Corrupt(msg) => write!(f, "invalid snapshot: {msg}"),
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

/// An empty vector with room for `n` values, or `Error::Invalid` when that much memory cannot
/// be had (sizes chosen by the caller must not abort the process).
pub(crate) fn try_with_capacity<T>(n: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| Error::Invalid(format!("cannot allocate {what} for {n} values")))?;
    Ok(v)
}
