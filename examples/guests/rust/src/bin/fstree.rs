//! fstree — walks the guest's filesystem with `std::fs`, copies files and
//! renames a directory, and writes what it found.
//!
//! What it does: lists everything under `/input` (names in order at each
//! level; directories end in `/`, symlinks show `-> target`, files their
//! size), copies every regular file into `/out/staging/` (the path's `/`
//! replaced by `_`), renames `/out/staging` to `/out/copies`, and writes
//! the listing to `/out/tree.txt`, one entry a line.
//! Args: none. Stdin: unused.
//! Output: stdout `listed N entries, copied M files\n`, exit code 0; on an
//! error `fstree: <what>: <error>\n` on stderr, exit code 1.

use std::{fs, io, path::Path, process::ExitCode};

fn walk(dir: &Path, listing: &mut Vec<String>, files: &mut Vec<String>) -> io::Result<()> {
    let mut entries = fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let meta = fs::symlink_metadata(&path)?;
        let shown = path.display().to_string();
        if meta.is_dir() {
            listing.push(format!("{shown}/"));
            walk(&path, listing, files)?;
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&path)?;
            listing.push(format!("{shown} -> {}", target.display()));
        } else {
            listing.push(format!("{shown} {}", meta.len()));
            files.push(shown);
        }
    }
    Ok(())
}

fn run() -> Result<(usize, usize), (String, io::Error)> {
    let (mut listing, mut files) = (Vec::new(), Vec::new());
    walk(Path::new("/input"), &mut listing, &mut files).map_err(|e| ("/input".into(), e))?;
    fs::create_dir_all("/out/staging").map_err(|e| ("/out/staging".into(), e))?;
    for file in &files {
        let flat = file.trim_start_matches("/input/").replace('/', "_");
        fs::copy(file, format!("/out/staging/{flat}")).map_err(|e| (file.clone(), e))?;
    }
    fs::rename("/out/staging", "/out/copies").map_err(|e| ("/out/copies".into(), e))?;
    let mut text = listing.join("\n");
    text.push('\n');
    fs::write("/out/tree.txt", text).map_err(|e| ("/out/tree.txt".into(), e))?;
    Ok((listing.len(), files.len()))
}

fn main() -> ExitCode {
    match run() {
        Ok((entries, copied)) => {
            println!("listed {entries} entries, copied {copied} files");
            ExitCode::SUCCESS
        }
        Err((what, error)) => {
            eprintln!("fstree: {what}: {error}");
            ExitCode::from(1)
        }
    }
}
