//! Atomic file replacement: a new temp file beside the target (`.<name>.tmp.<pid>.<random>`,
//! created exclusively, so never an existing file or a symlink, under a name others cannot
//! guess ahead), fsynced, renamed over the target, the folder fsynced. Temp files of writers
//! that died are removed by later saves (on Linux a writer is alive while `/proc/<pid>`
//! exists).

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Names tried before giving up: each is random, so a clash means the folder is hostile.
const TEMP_ATTEMPTS: usize = 64;

fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    format!(".{name}.tmp.")
}

/// 64 bits another process cannot predict: std seeds each `RandomState` from the OS.
fn random_suffix() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

/// A new temp file beside `path`, created exclusively under a random name.
fn create_temp(path: &Path) -> Result<(PathBuf, File)> {
    create_temp_named(path, random_suffix)
}

/// A new temp file beside `path`, created exclusively; `suffix` names each attempt.
fn create_temp_named(path: &Path, mut suffix: impl FnMut() -> u64) -> Result<(PathBuf, File)> {
    for _ in 0..TEMP_ATTEMPTS {
        let name = format!(
            "{}{}.{:016x}",
            temp_prefix(path),
            std::process::id(),
            suffix()
        );
        let tmp = path.with_file_name(name);
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            // Something (a file, a symlink) is at that name: never open it, take another.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Io(format!(
        "no free temp file name beside {} after {TEMP_ATTEMPTS} attempts",
        path.display()
    )))
}

fn sync_parent(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
    }
    let _ = path;
    Ok(())
}

/// Replaces `path` by what `write` writes into a fresh file (which it returns when done).
pub(super) fn write_atomically(
    path: &Path,
    write: impl FnOnce(File) -> Result<File>,
) -> Result<()> {
    let (tmp, file) = create_temp(path)?;
    let result = (|| {
        write(file)?.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_parent(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    remove_stale_temps(path);
    Ok(())
}

/// Deletes temp files of this path left by processes that no longer run.
fn remove_stale_temps(path: &Path) {
    let prefix = temp_prefix(path);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let pid = rest.split('.').next().and_then(|p| p.parse::<u32>().ok());
        let alive = match pid {
            Some(pid) if pid == std::process::id() => true,
            Some(pid) => Path::new(&format!("/proc/{pid}")).exists() || !cfg!(target_os = "linux"),
            None => true,
        };
        if !alive {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn temp_name(target: &Path, suffix: u64) -> String {
        format!(
            "{}{}.{suffix:016x}",
            temp_prefix(target),
            std::process::id()
        )
    }

    #[test]
    fn never_opens_a_planted_symlink_and_takes_another_name() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.snap");
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep me").unwrap();
        // Symlinks at the first names tried: a writer that opened them would truncate `victim`.
        for n in 0..8 {
            std::os::unix::fs::symlink(&victim, dir.path().join(temp_name(&target, n))).unwrap();
        }
        let mut next = 0;
        let (tmp, mut file) = create_temp_named(&target, || {
            next += 1;
            next - 1
        })
        .unwrap();
        std::io::Write::write_all(&mut file, b"new").unwrap();
        assert_eq!(
            tmp.file_name().unwrap().to_str().unwrap(),
            temp_name(&target, 8)
        );
        assert!(!fs::symlink_metadata(&tmp).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&victim).unwrap(), b"keep me");
        // Names that are all taken end in an error, not a loop or a write through a link.
        let err = create_temp_named(&target, || 3).unwrap_err();
        assert!(matches!(err, Error::Io(_)), "{err:?}");
        assert_eq!(fs::read(&victim).unwrap(), b"keep me");
    }

    #[test]
    fn temp_names_are_not_a_sequence() {
        let suffixes: Vec<u64> = (0..64).map(|_| random_suffix()).collect();
        let mut distinct = suffixes.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), suffixes.len());
        // A counter or a clock would make neighbours close; random ones differ in ~32 bits.
        let close = suffixes
            .windows(2)
            .filter(|w| (w[0] ^ w[1]).count_ones() < 8)
            .count();
        assert_eq!(close, 0, "{suffixes:x?}");
    }

    #[test]
    fn replaces_the_target_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.snap");
        fs::write(&target, b"old").unwrap();
        write_atomically(&target, |mut f| {
            std::io::Write::write_all(&mut f, b"new")?;
            Ok(f)
        })
        .unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
