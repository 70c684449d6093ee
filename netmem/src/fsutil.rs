//! Files netmem writes (`record -o`, `report -o`, the kernel-facts cache),
//! written so that no symbolic link can aim them elsewhere. netmem runs as
//! root: a link planted where it writes (a world-writable directory, a
//! guessable temp name) would otherwise let another user overwrite any
//! file, or create one anywhere.
//!
//! - Nothing is opened through a link: new files are created with
//!   `O_CREAT|O_EXCL` (which never follows one, dangling or not), and an
//!   existing destination is looked at with `lstat`.
//! - A file written whole is written to a temp file with a random name
//!   beside it (the `tempfile` crate) and renamed onto the destination;
//!   `rename` replaces a link itself, never its target.
//! - Replacing needs `force`; without it anything at the destination,
//!   even a dangling link, is refused.
//! - A device or FIFO named as the destination (`-o /dev/null`) is written
//!   in place, with or without `force`, never replaced or removed.

use std::fs::{File, FileType, OpenOptions, Permissions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context as _, Result};

/// Mode of the files a user asked for (a report, a recording): the umask
/// decides, as for any file a program creates.
const SHARED: u32 = 0o666;

/// Refuses, before any work is done, an output that exists (a file, a
/// link, even a dangling one) unless `force`: `report -o` checks this
/// before reading its recordings, with the same words as the write itself.
pub fn refuse_existing(path: &Path, force: bool) -> Result<()> {
    match existing(path)? {
        Some(t) if (!force || t.is_dir()) && !is_special(t) => Err(exists_error(path, Some(t))),
        _ => Ok(()),
    }
}

/// Writes `bytes` as the whole content of `path` (the report): to a temp
/// file beside it, then renamed onto it. Anything already at `path` is
/// replaced only with `force`; a link is replaced, never followed.
pub fn write_whole(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    match existing(path)? {
        // A device or FIFO (`-o /dev/stdout`) is a place to write, not a
        // file to replace: written in place, with or without force.
        Some(t) if is_special(t) => {
            return write_in_place(path)
                .and_then(|mut f| f.write_all(bytes))
                .with_context(|| format!("cannot write {}", path.display()));
        }
        Some(t) if !force || t.is_dir() => return Err(exists_error(path, Some(t))),
        _ => {}
    }
    replace(path, bytes, SHARED, force).map_err(|e| {
        if e.kind() == ErrorKind::AlreadyExists {
            // Created between the look and the rename.
            exists_error(path, existing(path).ok().flatten())
        } else {
            anyhow::Error::new(e).context(format!("cannot write {}", path.display()))
        }
    })
}

/// Creates `path` for a stream written over a long time (a recording): it
/// is readable while written and survives a crash, so it is created in
/// place, with `O_CREAT|O_EXCL|O_NOFOLLOW`. With `force`, a file or link
/// already there is removed first (a link itself, never its target).
pub fn create_new(path: &Path, force: bool) -> Result<File> {
    let cannot = |e: std::io::Error| {
        anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
    };
    // Someone may plant a link again between the removal and the creation:
    // O_EXCL refuses it, and a few tries settle a race with anything but a
    // determined attacker, who then gets an error, not our file.
    for _ in 0..3 {
        if let Some(t) = existing(path)? {
            if is_special(t) {
                return write_in_place(path).map_err(cannot);
            }
        }
        if force {
            match existing(path)? {
                Some(t) if t.is_dir() => {
                    return Err(cannot(std::io::Error::from(ErrorKind::IsADirectory)))
                }
                Some(t) if is_special(t) => return write_in_place(path).map_err(cannot),
                Some(_) => match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(cannot(e)),
                },
                None => {}
            }
        }
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(SHARED)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
        {
            Ok(f) => return Ok(f),
            Err(e) if e.kind() == ErrorKind::AlreadyExists && force => continue,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(exists_error(path, existing(path).ok().flatten()))
            }
            Err(e) => return Err(cannot(e)),
        }
    }
    Err(anyhow::anyhow!(
        "cannot create {}: something keeps appearing there as it is replaced",
        path.display()
    ))
}

/// Creates `path` new, mode 0600, for a file only root should read (a
/// flight recorder's incident): `O_CREAT|O_EXCL|O_NOFOLLOW`, so nothing
/// already there, a link least of all, is opened or replaced.
pub fn create_private(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// Gives the file at `from` the name `to` in the same directory without
/// replacing anything at `to` (a link there is refused, never followed):
/// a hard link, then the old name removed. Readers see no file or the
/// whole one.
pub fn publish(from: &Path, to: &Path) -> Result<()> {
    std::fs::hard_link(from, to).with_context(|| format!("cannot name {}", to.display()))?;
    std::fs::remove_file(from).with_context(|| format!("cannot remove {}", from.display()))
}

/// A directory only netmem's user uses (the flight recorder's): created
/// 0700 if missing; refused if it is a link, not a directory, not that
/// user's, or writable by anyone else (another user could plant files
/// netmem would then list, serve or name).
pub fn private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => {
            // SAFETY: geteuid has no preconditions.
            let me = unsafe { libc::geteuid() };
            if m.uid() != me || m.mode() & 0o022 != 0 {
                anyhow::bail!(
                    "{} is not a directory of netmem's own (owner uid {}, mode {:o}): give one that only its user can write, or a new path (created 0700)",
                    path.display(),
                    m.uid(),
                    m.mode() & 0o7777
                );
            }
            Ok(())
        }
        Ok(m) if m.file_type().is_symlink() => Err(anyhow::anyhow!(
            "{} is a symbolic link: give the directory itself",
            path.display()
        )),
        Ok(_) => Err(anyhow::anyhow!("{} is not a directory", path.display())),
        Err(e) if e.kind() == ErrorKind::NotFound => std::fs::DirBuilder::new()
            .mode(0o700)
            .create(path)
            .with_context(|| format!("cannot create {}", path.display())),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot look at {}", path.display()))),
    }
}

/// Writes `bytes` to a new temp file with a random name in `path`'s
/// directory (created `O_EXCL` with `mode`, less the umask) and renames it
/// onto `path`: replacing whatever is there with `overwrite`, else failing
/// with `AlreadyExists` if anything is. Readers see the old file or the
/// new one, never half of one.
pub fn replace(path: &Path, bytes: &[u8], mode: u32, overwrite: bool) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or(ErrorKind::InvalidInput)?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .permissions(Permissions::from_mode(mode))
        .tempfile_in(dir)
        // Its error names the temp file, which the user never chose: the
        // caller names the output.
        .map_err(|e| std::io::Error::from(e.kind()))?;
    tmp.write_all(bytes)?;
    // Dropping an unpersisted NamedTempFile removes it: no litter on error.
    let done = if overwrite {
        tmp.persist(path)
    } else {
        tmp.persist_noclobber(path)
    };
    done.map(drop).map_err(|e| e.error)
}

/// What is at `path`, without following a link; None if nothing.
fn existing(path: &Path) -> Result<Option<FileType>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m.file_type())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot look at {}", path.display()))),
    }
}

/// A device, FIFO or socket: written into, never replaced.
fn is_special(t: FileType) -> bool {
    t.is_char_device() || t.is_block_device() || t.is_fifo() || t.is_socket()
}

/// Opens a device or FIFO for writing where it is. Not through a link
/// (`O_NOFOLLOW`), never creating, and never a regular file: had one been
/// swapped in since it was looked at, it is left alone (nothing truncated).
fn write_in_place(path: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)?;
    if !is_special(f.metadata()?.file_type()) {
        return Err(std::io::Error::other("it changed while being opened"));
    }
    Ok(f)
}

/// The refusal of an existing output without `--force`, the same for
/// every `-o`.
fn exists_error(path: &Path, t: Option<FileType>) -> anyhow::Error {
    if t.is_some_and(|t| t.is_dir()) {
        // --force would not help: a directory is never replaced.
        anyhow::anyhow!(
            "{} is a directory: give -o a file name (e.g. {}/report.html)",
            path.display(),
            path.display()
        )
    } else if t.is_some_and(|t| t.is_symlink()) {
        anyhow::anyhow!(
            "{} exists (a symbolic link): choose another -o, or pass --force to replace the link (what it points to is never written)",
            path.display()
        )
    } else {
        anyhow::anyhow!(
            "{} exists: choose another -o, or pass --force to replace it",
            path.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    /// A link, dangling or not, is refused without force and replaced (not
    /// followed) with it, both for whole files and streams.
    #[test]
    fn links_are_replaced_never_followed() {
        let d = dir();
        let target = d.path().join("target");
        std::fs::write(&target, "kept").unwrap();
        let absent = d.path().join("absent");
        for (i, to) in [&target, &absent].into_iter().enumerate() {
            let whole = d.path().join(format!("whole{i}"));
            let stream = d.path().join(format!("stream{i}"));
            symlink(to, &whole).unwrap();
            symlink(to, &stream).unwrap();
            let e = write_whole(&whole, b"new", false).unwrap_err().to_string();
            assert!(e.contains("exists (a symbolic link)"), "{e}");
            let e = create_new(&stream, false).unwrap_err().to_string();
            assert!(e.contains("exists (a symbolic link)"), "{e}");
            write_whole(&whole, b"new", true).unwrap();
            create_new(&stream, true)
                .unwrap()
                .write_all(b"new")
                .unwrap();
            for p in [&whole, &stream] {
                assert!(std::fs::symlink_metadata(p).unwrap().is_file());
                assert_eq!(std::fs::read(p).unwrap(), b"new");
            }
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"kept");
        assert!(!absent.exists());
        // Nothing but what was asked for is left behind: no temp files.
        let mut names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["stream0", "stream1", "target", "whole0", "whole1"]);
    }

    /// A FIFO named as the output is written into, and still a FIFO.
    #[test]
    fn a_fifo_is_written_in_place() {
        let d = dir();
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo has no other input.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        write_whole(&fifo, b"through", true).unwrap();
        assert_eq!(reader.join().unwrap(), b"through");
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
        // A place to write, not a file to replace: no --force needed.
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        write_whole(&fifo, b"again", false).unwrap();
        assert_eq!(reader.join().unwrap(), b"again");
    }

    /// A directory is an error that names it, never removed.
    #[test]
    fn a_directory_is_refused() {
        let d = dir();
        let e = format!("{:#}", create_new(d.path(), true).unwrap_err());
        assert!(
            e.contains("cannot create") && e.contains("directory"),
            "{e}"
        );
        // With or without --force: a directory is never replaced, and the
        // error does not suggest --force.
        for force in [false, true] {
            let e = format!("{:#}", write_whole(d.path(), b"x", force).unwrap_err());
            assert!(e.contains("is a directory: give -o a file name"), "{e}");
            assert!(!e.contains("--force"), "{e}");
            let e = format!("{:#}", refuse_existing(d.path(), force).unwrap_err());
            assert!(e.contains("is a directory"), "{e}");
        }
        assert!(d.path().is_dir());
        // A directory that does not exist: the error names the output, not
        // a temp file.
        let missing = d.path().join("nowhere/x.html");
        let e = format!("{:#}", write_whole(&missing, b"x", false).unwrap_err());
        assert!(
            e.contains("nowhere/x.html") && !e.contains(".x.html."),
            "{e}"
        );
    }
}
