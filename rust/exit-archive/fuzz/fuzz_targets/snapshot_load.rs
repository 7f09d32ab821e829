//! Arbitrary bytes as a snapshot: loading must never panic or allocate beyond the input size;
//! whatever loads must be internally consistent and re-serialize to the same bytes (a
//! file of an older version is rewritten as the current version, which must then be a fixed
//! point).
#![no_main]

use exit_archive::Archive;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(archive) = Archive::from_bytes(data) {
        archive.check_invariants();
        let bytes = archive.to_bytes();
        if data[8..12] == bytes[8..12] {
            assert_eq!(bytes, data);
        } else {
            let again = Archive::from_bytes(&bytes).expect("our own output loads");
            assert_eq!(again.to_bytes(), bytes);
        }
    }
});
