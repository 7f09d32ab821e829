//! An archive behind a read/write lock, which a panic makes unusable: a panic inside the
//! crate (a bug) may have left the archive half updated, so it becomes a RuntimeError (not
//! pyo3's BaseException-only PanicException) and every later call raises too, instead of
//! using the archive through a poisoned lock.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{OnceLock, RwLock};

use exit_archive::Archive;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

pub(crate) struct Guarded {
    inner: RwLock<Archive>,
    /// Why the archive became unusable.
    failed: OnceLock<String>,
}

/// The error of every call on an archive after a panic.
fn unusable(why: &str) -> PyErr {
    PyRuntimeError::new_err(format!(
        "this archive is unusable: an operation panicked ({why}), so its state may be half \
         updated; load it again from its last snapshot"
    ))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl Guarded {
    pub(crate) fn new(archive: Archive) -> Self {
        Guarded {
            inner: RwLock::new(archive),
            failed: OnceLock::new(),
        }
    }

    /// Ok while no operation has panicked.
    pub(crate) fn usable(&self) -> PyResult<()> {
        match self.failed.get() {
            Some(why) => Err(unusable(why)),
            None => Ok(()),
        }
    }

    /// Runs `f` (which takes the lock and returns None when it finds it poisoned) and turns a
    /// panic into a RuntimeError that marks the archive unusable.
    fn guard<T>(&self, f: impl FnOnce() -> Option<T>) -> PyResult<T> {
        self.usable()?;
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Err(unusable(
                self.failed
                    .get()
                    .map_or("in another thread", |why| why.as_str()),
            )),
            Err(payload) => {
                let why = panic_message(&*payload);
                let _ = self.failed.set(why.clone());
                Err(unusable(&why))
            }
        }
    }

    /// `f` on the archive under the read lock, with the GIL released.
    pub(crate) fn read<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Archive) -> T + Send,
    ) -> PyResult<T> {
        py.detach(|| self.guard(|| self.inner.read().ok().map(|a| f(&a))))
    }

    /// `f` on the archive under the write lock, with the GIL released.
    pub(crate) fn write<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Archive) -> T + Send,
    ) -> PyResult<T> {
        py.detach(|| self.guard(|| self.inner.write().ok().map(|mut a| f(&mut a))))
    }

    /// `f` under the read lock with the GIL held (for results built as Python objects).
    pub(crate) fn read_with_gil<T>(&self, f: impl FnOnce(&Archive) -> T) -> PyResult<T> {
        self.guard(|| self.inner.read().ok().map(|a| f(&a)))
    }
}
