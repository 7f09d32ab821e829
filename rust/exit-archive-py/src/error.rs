//! The one place where crate errors become Python exceptions.

use exit_archive::Error;
use pyo3::exceptions::{PyKeyError, PyOSError, PyValueError};
use pyo3::PyErr;

pub(crate) fn to_py(err: Error) -> PyErr {
    match err {
        Error::Invalid(_) | Error::Corrupt(_) => PyValueError::new_err(err.to_string()),
        Error::UnknownId(id) => PyKeyError::new_err(id.get()),
        Error::Io(_) => PyOSError::new_err(err.to_string()),
    }
}

/// Malformed input that could not even be converted: the contract says ValueError.
pub(crate) fn invalid(what: &str, err: PyErr) -> PyErr {
    PyValueError::new_err(format!("{what}: {err}"))
}
