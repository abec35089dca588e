//! Atomic file replacement: a reader sees the old file or the new one, never
//! a mix, and a writer that dies half way leaves the old file as it was.
//!
//! The recipe is the classic one: write a temporary file in the same
//! directory (so the rename cannot cross file systems), fsync it, give it its
//! final mode, rename it over the target, then fsync the directory so the
//! rename itself survives a power cut.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Temp names end in this, so `.gitignore`s and cleanups can recognise them.
const TEMP_SUFFIX: &str = ".tmp";

/// How many names to try when a stale temp file (from a killed writer whose
/// pid was reused) is in the way.
const NAME_ATTEMPTS: u32 = 64;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `contents`, atomically, with permissions `mode`
/// (exactly, regardless of the umask).
///
/// On failure before the rename the temporary file is removed and `path` is
/// untouched. A failure to fsync the directory after the rename is still
/// reported: the new contents are then in place but may not survive a crash.
/// The parent directory must exist; see [`create_dir_all`].
///
/// `path` itself is replaced, not what it may link to: resolve symlinks
/// first if they should be followed.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_steps(&[(path, contents)], mode, &mut |_| Ok(()))
}

/// [`write_atomic`] for several files at once: each is replaced atomically,
/// in the order given, and each directory involved is fsynced once at the
/// end instead of once per file. All temp files are written and fsynced
/// before the first rename, so a failure before the renames changes nothing.
/// A failure between renames leaves the earlier files replaced and the later
/// ones untouched (and no temp file).
pub fn write_atomic_all(files: &[(&Path, &[u8])], mode: u32) -> io::Result<()> {
    write_atomic_steps(files, mode, &mut |_| Ok(()))
}

/// Creates `dir` and its missing parents with mode `mode` (minus the umask),
/// and fsyncs the parent of each directory it created so they survive a
/// crash along with the file written into them.
pub fn create_dir_all(dir: &Path, mode: u32) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    // The directories about to be created, deepest first.
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    DirBuilder::new().recursive(true).mode(mode).create(dir)?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Removes temporary files that [`write_atomic`] left beside `path` when its
/// process was killed (nothing else can remove them). Only call this while
/// holding a lock that keeps other writers of `path` out, or it may delete a
/// live writer's temp file. Returns how many were removed.
pub fn remove_stale_temps(path: &Path) -> io::Result<usize> {
    let (dir, name) = split(path)?;
    let mut removed = 0;
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if is_temp_of(&entry.file_name(), &name) {
            match fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// Whether `candidate` is a temp file name [`write_atomic`] uses for a target
/// named `target`: `.<target>.<pid>.<n>.tmp`.
pub fn is_temp_of(candidate: &std::ffi::OsStr, target: &std::ffi::OsStr) -> bool {
    let (Some(candidate), Some(target)) = (candidate.to_str(), target.to_str()) else {
        return false;
    };
    candidate
        .strip_prefix('.')
        .and_then(|c| c.strip_prefix(target))
        .and_then(|c| c.strip_prefix('.'))
        .and_then(|c| c.strip_suffix(TEMP_SUFFIX))
        .and_then(|c| c.split_once('.'))
        .is_some_and(|(pid, n)| {
            !pid.is_empty()
                && !n.is_empty()
                && pid.bytes().all(|b| b.is_ascii_digit())
                && n.bytes().all(|b| b.is_ascii_digit())
        })
}

/// The points of [`write_atomic`] after which a test can inject a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Created,
    Written,
    Synced,
    ModeSet,
    Renamed,
}

/// [`write_atomic_all`], calling `fault` after each step so tests can prove
/// that a failure at any point leaves the old files and no temp file behind.
fn write_atomic_steps(
    files: &[(&Path, &[u8])],
    mode: u32,
    fault: &mut dyn FnMut(Step) -> io::Result<()>,
) -> io::Result<()> {
    let mut temps: Vec<PathBuf> = Vec::with_capacity(files.len());
    let result = write_and_rename(files, mode, fault, &mut temps);
    if result.is_err() {
        // Those already renamed are gone; the rest must not linger.
        for temp in &temps {
            let _ = fs::remove_file(temp);
        }
        return result;
    }
    let mut dirs: Vec<&Path> = Vec::new();
    for (path, _) in files {
        let (dir, _) = split(path)?;
        if !dirs.contains(&dir) {
            sync_dir(dir)?;
            dirs.push(dir);
        }
    }
    Ok(())
}

fn write_and_rename(
    files: &[(&Path, &[u8])],
    mode: u32,
    fault: &mut dyn FnMut(Step) -> io::Result<()>,
    temps: &mut Vec<PathBuf>,
) -> io::Result<()> {
    for (path, contents) in files {
        let (dir, name) = split(path)?;
        let (temp_path, mut file) = create_temp(dir, &name, mode)?;
        temps.push(temp_path);
        fault(Step::Created)?;
        file.write_all(contents)?;
        fault(Step::Written)?;
        file.sync_all()?;
        fault(Step::Synced)?;
        // The umask applied at creation; the caller asked for this mode.
        file.set_permissions(Permissions::from_mode(mode))?;
        fault(Step::ModeSet)?;
    }
    for (temp_path, (path, _)) in temps.iter().zip(files) {
        fs::rename(temp_path, path)?;
        fault(Step::Renamed)?;
    }
    Ok(())
}

/// The directory and file name of `path`, which must name a file.
fn split(path: &Path) -> io::Result<(&Path, OsString)> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` does not name a file", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((dir, name.to_os_string()))
}

/// Creates a fresh temp file beside the target with `O_CREAT|O_EXCL`, so it
/// never opens (or follows a symlink to) a file that already exists.
fn create_temp(dir: &Path, name: &std::ffi::OsStr, mode: u32) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    let mut last_err = None;
    for _ in 0..NAME_ATTEMPTS {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut temp_name = OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{pid}.{n}{TEMP_SUFFIX}"));
        let temp_path = dir.join(temp_name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp_path)
        {
            Ok(file) => return Ok((temp_path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no free temp file name")))
}

/// Makes the entries of `dir` (a rename, a new file) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn temps(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(TEMP_SUFFIX))
            .collect()
    }

    #[test]
    fn replaces_the_file_with_the_exact_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("deploy-info.yml");
        write_atomic(&p, b"one\n", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one\n");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o7777, 0o600);
        write_atomic(&p, b"two\n", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two\n");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o7777, 0o644);
        assert!(temps(dir.path()).is_empty());
    }

    #[test]
    fn a_failure_at_any_step_keeps_the_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.yml");
        write_atomic(&p, b"old\n", 0o644).unwrap();
        for step in [Step::Created, Step::Written, Step::Synced, Step::ModeSet] {
            let err = write_atomic_steps(&[(&p, b"new\n")], 0o600, &mut |s| {
                if s == step {
                    Err(io::Error::other(format!("injected at {s:?}")))
                } else {
                    Ok(())
                }
            })
            .unwrap_err();
            assert_eq!(err.to_string(), format!("injected at {step:?}"));
            assert_eq!(fs::read(&p).unwrap(), b"old\n", "after a failure at {step:?}");
            assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o7777, 0o644);
            assert!(
                temps(dir.path()).is_empty(),
                "temp left after {step:?}: {:?}",
                temps(dir.path())
            );
        }
        // After the rename the new file is in place; the error is still reported.
        let err = write_atomic_steps(&[(&p, b"new\n")], 0o600, &mut |s| {
            if s == Step::Renamed {
                Err(io::Error::other("injected"))
            } else {
                Ok(())
            }
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"new\n");
        assert!(temps(dir.path()).is_empty());
    }

    #[test]
    fn several_files_change_together_or_not_at_all_until_the_renames() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.yml"), dir.path().join("b.yml"));
        write_atomic_all(&[(&a, b"a1"), (&b, b"b1")], 0o644).unwrap();
        assert_eq!(
            (fs::read(&a).unwrap(), fs::read(&b).unwrap()),
            (b"a1".to_vec(), b"b1".to_vec())
        );
        // A failure while writing the second file: neither is replaced.
        let mut n = 0;
        let err = write_atomic_steps(&[(&a, b"a2"), (&b, b"b2")], 0o644, &mut |s| {
            n += usize::from(s == Step::Written);
            if n == 2 {
                Err(io::Error::other("injected"))
            } else {
                Ok(())
            }
        });
        assert!(err.is_err());
        assert_eq!(
            (fs::read(&a).unwrap(), fs::read(&b).unwrap()),
            (b"a1".to_vec(), b"b1".to_vec())
        );
        assert!(temps(dir.path()).is_empty(), "{:?}", temps(dir.path()));
        // A failure after the first rename: the first is replaced, in order.
        let err = write_atomic_steps(&[(&a, b"a3"), (&b, b"b3")], 0o644, &mut |s| {
            if s == Step::Renamed {
                Err(io::Error::other("injected"))
            } else {
                Ok(())
            }
        });
        assert!(err.is_err());
        assert_eq!(
            (fs::read(&a).unwrap(), fs::read(&b).unwrap()),
            (b"a3".to_vec(), b"b1".to_vec())
        );
        assert!(temps(dir.path()).is_empty(), "{:?}", temps(dir.path()));
    }

    #[test]
    fn a_missing_directory_fails_without_creating_anything() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing/f.yml");
        assert_eq!(
            write_atomic(&p, b"x", 0o644).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(!dir.path().join("missing").exists());
    }

    #[test]
    fn does_not_follow_a_symlink_in_place_of_the_temp_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.yml");
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        // Plant symlinks at the next few temp names this process will try.
        let next = COUNTER.load(Ordering::Relaxed);
        for n in next..next + 4 {
            let planted = dir.path().join(format!(".f.yml.{}.{n}.tmp", std::process::id()));
            std::os::unix::fs::symlink(&victim, planted).unwrap();
        }
        write_atomic(&p, b"new", 0o644).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert_eq!(fs::read(&p).unwrap(), b"new");
    }

    #[test]
    fn creates_parents_and_removes_stale_temps() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("opt/org/app");
        create_dir_all(&app, 0o755).unwrap();
        assert!(app.is_dir());
        create_dir_all(&app, 0o755).unwrap();
        let p = app.join("deploy-info.yml");
        fs::write(app.join(".deploy-info.yml.123.4.tmp"), b"half").unwrap();
        fs::write(app.join(".deploy-history.yml.123.4.tmp"), b"other target").unwrap();
        fs::write(app.join(".deploy-info.yml.x.4.tmp"), b"not ours").unwrap();
        assert_eq!(remove_stale_temps(&p).unwrap(), 1);
        let mut left = temps(&app);
        left.sort();
        assert_eq!(left, [".deploy-history.yml.123.4.tmp", ".deploy-info.yml.x.4.tmp"]);
    }

    #[test]
    fn temp_names_are_recognised_exactly() {
        let t = OsStr::new("deploy-info.yml");
        assert!(is_temp_of(OsStr::new(".deploy-info.yml.42.0.tmp"), t));
        assert!(!is_temp_of(OsStr::new("deploy-info.yml.42.0.tmp"), t));
        assert!(!is_temp_of(OsStr::new(".deploy-info.yml.42.tmp"), t));
        assert!(!is_temp_of(OsStr::new(".deploy-info.yml.42.0.tmp.x"), t));
        assert!(!is_temp_of(OsStr::new(".deploy-info.yml"), t));
    }
}
