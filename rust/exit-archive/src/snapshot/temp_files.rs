//! Atomic file replacement: a new temp file beside the target (`.<name>.tmp.<pid>.<n>`,
//! created exclusively, so never an existing file or a symlink), fsynced, renamed over the
//! target, the folder fsynced. Temp files of writers that died are removed by later saves
//! (on Linux a writer is alive while `/proc/<pid>` exists).

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Result;

fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    format!(".{name}.tmp.")
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new temp file beside `path`, created exclusively.
fn create_temp(path: &Path) -> Result<(PathBuf, File)> {
    loop {
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}{}.{unique}", temp_prefix(path), std::process::id());
        let tmp = path.with_file_name(name);
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            // A name left by an earlier process with our pid: take the next one.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.into()),
        }
    }
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

    #[test]
    fn never_writes_through_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.snap");
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep me").unwrap();
        // Plant symlinks at the next temp names this process would use.
        let next = COUNTER.load(Ordering::Relaxed);
        for n in next..next + 64 {
            let name = format!("{}{}.{n}", temp_prefix(&target), std::process::id());
            std::os::unix::fs::symlink(&victim, dir.path().join(name)).unwrap();
        }
        write_atomically(&target, |mut f| {
            std::io::Write::write_all(&mut f, b"new")?;
            Ok(f)
        })
        .unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep me");
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }
}
