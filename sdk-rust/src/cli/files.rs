//! The guest's filesystem on the command line: `--file`, `--dir`,
//! `--mount`, `--collect`, `--fs-bytes` build the tree; `--out-dir`
//! receives the collected files, refusing any path that would land outside
//! it (the server validates paths too; the CLI does not rely on it).

use std::{
    io::Write,
    path::{Component, Path, PathBuf},
};

use clap::Args;
use wasmwiz::{util::parse_size, File, Filesystem};

use crate::{exit, CliResult, Failure};

/// Filesystem flags of `wasmwiz run`.
#[derive(Debug, Clone, Default, Args)]
pub struct FsArgs {
    /// A local file for the guest, at its base name, or at GUEST given as
    /// GUEST=LOCAL; repeat for more. Any filesystem flag gives the guest a
    /// filesystem (one preopened directory, fd 3, named "/").
    #[arg(long = "file", value_name = "[GUEST=]LOCAL")]
    pub files: Vec<String>,
    /// A local directory, recursively, at its base name (`--dir fixtures/`
    /// puts its contents under fixtures/); repeat for more.
    #[arg(long = "dir", value_name = "LOCAL")]
    pub dirs: Vec<PathBuf>,
    /// A local directory, recursively, at the guest path GUEST
    /// (`--mount src=./project`); repeat for more.
    #[arg(long = "mount", value_name = "GUEST=LOCAL")]
    pub mounts: Vec<String>,
    /// Files to send back after the run, by glob (`out/**`, `*.png`);
    /// repeat for more. Needs --out-dir.
    #[arg(long = "collect", value_name = "GLOB", requires = "out_dir")]
    pub collect: Vec<String>,
    /// Where collected files are written, their paths kept.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Limit of the guest's filesystem (file contents, input included;
    /// e.g. 64MiB); default: the tier's.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub fs_bytes: Option<u64>,
}

impl FsArgs {
    /// The tree the flags describe, `None` when no filesystem flag is set.
    pub fn filesystem(&self) -> CliResult<Option<Filesystem>> {
        let any = !self.files.is_empty()
            || !self.dirs.is_empty()
            || !self.mounts.is_empty()
            || !self.collect.is_empty()
            || self.fs_bytes.is_some();
        if !any {
            return Ok(None);
        }
        let mut fs = Filesystem::new();
        for file in &self.files {
            let (guest, local) = match file.split_once('=') {
                Some((guest, local)) => (guest.to_string(), PathBuf::from(local)),
                None => {
                    let local = PathBuf::from(file);
                    (base_name(&local, "--file")?, local)
                }
            };
            fs = fs
                .local_file(&guest, &local)
                .map_err(|e| unreadable(&local, e))?;
        }
        for dir in &self.dirs {
            let guest = base_name(dir, "--dir")?;
            fs = fs.local_dir(&guest, dir).map_err(|e| unreadable(dir, e))?;
        }
        for mount in &self.mounts {
            let (guest, local) = mount
                .split_once('=')
                .ok_or_else(|| Failure::usage(format!("--mount {mount}: expected GUEST=LOCAL")))?;
            fs = fs
                .local_dir(guest, local)
                .map_err(|e| unreadable(Path::new(local), e))?;
        }
        for pattern in &self.collect {
            fs = fs.collect(pattern);
        }
        Ok(Some(fs))
    }
}

fn unreadable(path: &Path, error: std::io::Error) -> Failure {
    Failure::usage(format!("cannot read {}: {error}", path.display()))
}

/// The last component of a local path, as the guest's name for it.
fn base_name(path: &Path, flag: &str) -> CliResult<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| {
            Failure::usage(format!(
                "{flag} {}: has no usable base name; use GUEST=LOCAL",
                path.display()
            ))
        })
}

/// Where a collected file's `path` goes under `out_dir`, or an error when
/// it is not a plain relative path (absolute, `..`, `.`, empty segments).
pub fn destination(out_dir: &Path, path: &str) -> CliResult<PathBuf> {
    let relative = Path::new(path);
    let plain = !path.is_empty()
        && !path.contains('\\')
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(Failure {
            code: exit::SERVER,
            message: format!(
                "the server sent a collected file named {path:?}, which would land outside \
                 --out-dir; it was not written"
            ),
        });
    }
    Ok(out_dir.join(relative))
}

/// Writes collected files under an out dir as their pieces arrive: a piece
/// with the path of the one before appends to it.
pub struct FileWriter {
    out_dir: PathBuf,
    open: Option<(String, std::fs::File)>,
    /// Paths written, in order.
    pub written: Vec<(String, u64)>,
}

impl FileWriter {
    pub fn new(out_dir: &Path) -> Self {
        Self {
            out_dir: out_dir.to_path_buf(),
            open: None,
            written: Vec::new(),
        }
    }

    /// Writes one piece.
    pub fn piece(&mut self, piece: &File) -> CliResult<()> {
        let cannot = |path: &Path, e: std::io::Error| Failure {
            code: exit::USAGE,
            message: format!("cannot write {}: {e}", path.display()),
        };
        let same = matches!(&self.open, Some((open, _)) if *open == piece.path);
        if !same {
            let target = destination(&self.out_dir, &piece.path)?;
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| cannot(parent, e))?;
            }
            let file = std::fs::File::create(&target).map_err(|e| cannot(&target, e))?;
            self.open = Some((piece.path.clone(), file));
            self.written.push((piece.path.clone(), 0));
        }
        if let Some((path, file)) = &mut self.open {
            let target = self.out_dir.join(path.as_str());
            file.write_all(&piece.contents)
                .map_err(|e| cannot(&target, e))?;
        }
        if let Some(last) = self.written.last_mut() {
            last.1 += piece.contents.len() as u64;
        }
        Ok(())
    }
}

/// Writes whole files under `out_dir`.
pub fn write_all(out_dir: &Path, files: &[File]) -> CliResult<()> {
    let mut writer = FileWriter::new(out_dir);
    for file in files {
        writer.piece(file)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_relative_paths_land_under_the_out_dir() {
        assert_eq!(
            destination(Path::new("out"), "a/b.txt").unwrap(),
            Path::new("out/a/b.txt")
        );
    }

    #[test]
    fn paths_that_would_escape_the_out_dir_are_refused() {
        for path in ["../x", "a/../../x", "/etc/passwd", "", "a//b", "./a"] {
            assert!(destination(Path::new("out"), path).is_err(), "{path}");
        }
    }

    #[test]
    fn a_file_flag_without_a_guest_path_uses_the_base_name() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("data.txt");
        std::fs::write(&local, "x").unwrap();
        let args = FsArgs {
            files: vec![local.display().to_string()],
            ..FsArgs::default()
        };
        let fs = args.filesystem().unwrap().unwrap();
        assert_eq!(fs.entries[0].path, "data.txt");
    }

    #[test]
    fn no_filesystem_flag_gives_no_filesystem() {
        assert!(FsArgs::default().filesystem().unwrap().is_none());
    }
}
