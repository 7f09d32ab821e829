//! Arbitrary bytes as a snapshot: loading must never panic or allocate beyond the input size;
//! whatever loads must be internally consistent and re-serialize to the same bytes.
#![no_main]

use exit_archive::Archive;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(archive) = Archive::from_bytes(data) {
        archive.check_invariants();
        assert_eq!(archive.to_bytes(), data);
    }
});
