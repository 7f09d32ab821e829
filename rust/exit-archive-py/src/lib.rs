//! Python bindings for `exit-archive` (`exit_verl._archive`): type conversion (convert.rs),
//! error mapping (error.rs) and GIL release around the crate's calls (archive.rs). Every
//! semantic check is the crate's.

mod archive;
mod convert;
mod error;

use pyo3::prelude::*;

#[pymodule]
fn _archive(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<archive::ArchiveCore>()?;
    m.add("LINEAGE_BYTES_PER_ID", exit_archive::LINEAGE_BYTES_PER_ID)?;
    Ok(())
}
