//! Python bindings for `exit-archive` (`exit_verl._archive`): type conversion in (convert.rs)
//! and out (output.rs), error mapping (error.rs), the lock that a panic makes unusable
//! (guard.rs) and GIL release around the crate's calls (archive.rs). Every semantic check is
//! the crate's.

mod archive;
mod convert;
mod error;
mod guard;
mod output;

use pyo3::prelude::*;

#[pymodule]
fn _archive(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<archive::ArchiveCore>()?;
    m.add("LINEAGE_BYTES_PER_ID", exit_archive::LINEAGE_BYTES_PER_ID)?;
    Ok(())
}
