//! A directory handle of the guest (the preopen or one it opened), as
//! wasi-common's `WasiDir`.

use std::{
    any::Any,
    ops::Bound,
    path::PathBuf,
    time::{Duration, UNIX_EPOCH},
};

use wasmi_wasi::wasi_common::{
    dir::{OpenResult, ReaddirCursor, ReaddirEntity},
    file::{FdFlags, FileType, Filestat, OFlags},
    snapshots::preview_1::types::Errno,
    Error, SystemTimeSpec, WasiDir,
};

use super::{
    file::VFile,
    limits::STEP_FUEL,
    tree::{Ino, NodeType, OpenHow, Stat, TimeSet},
    Fs,
};
use crate::engine::host_fuel::copy_cost;

/// The device number every node reports.
pub const DEVICE_ID: u64 = 1;

pub struct VDir {
    fs: Fs,
    ino: Ino,
}

impl VDir {
    pub fn new(fs: Fs, ino: Ino) -> Self {
        Self { fs, ino }
    }
}

pub(super) fn file_type(kind: NodeType) -> FileType {
    match kind {
        NodeType::Dir => FileType::Directory,
        NodeType::File => FileType::RegularFile,
        NodeType::Symlink => FileType::SymbolicLink,
    }
}

pub(super) fn filestat(stat: Stat) -> Filestat {
    let time = |nanos: u64| Some(UNIX_EPOCH + Duration::from_nanos(nanos));
    Filestat {
        device_id: DEVICE_ID,
        inode: stat.ino,
        filetype: file_type(stat.kind),
        nlink: stat.nlink,
        size: stat.size,
        atim: time(stat.atim),
        mtim: time(stat.mtim),
        ctim: time(stat.ctim),
    }
}

pub(super) fn time_set(spec: Option<SystemTimeSpec>) -> TimeSet {
    spec.map(|spec| match spec {
        SystemTimeSpec::SymbolicNow => None,
        SystemTimeSpec::Absolute(at) => Some(
            at.into_std()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        ),
    })
}

fn errno(e: Errno) -> Error {
    e.into()
}

impl VDir {
    /// The other directory of a rename or link, in the same tree.
    fn same_tree<'a>(&self, other: &'a dyn WasiDir) -> Result<&'a VDir, Error> {
        let other = other
            .as_any()
            .downcast_ref::<VDir>()
            .ok_or_else(|| errno(Errno::Badf))?;
        if !self.fs.same(&other.fs) {
            return Err(errno(Errno::Xdev));
        }
        Ok(other)
    }
}

#[wiggle::async_trait]
impl WasiDir for VDir {
    fn as_any(&self) -> &dyn Any {
        self
    }

    async fn open_file(
        &self,
        symlink_follow: bool,
        path: &str,
        oflags: OFlags,
        read: bool,
        write: bool,
        fdflags: FdFlags,
    ) -> Result<OpenResult, Error> {
        let _ = read;
        if fdflags.intersects(FdFlags::DSYNC | FdFlags::SYNC | FdFlags::RSYNC) {
            return Err(errno(Errno::Notsup));
        }
        let how = OpenHow {
            follow: symlink_follow,
            create: oflags.contains(OFlags::CREATE),
            exclusive: oflags.contains(OFlags::EXCLUSIVE),
            truncate: oflags.contains(OFlags::TRUNCATE),
            directory: oflags.contains(OFlags::DIRECTORY),
            write,
        };
        let opened = self.fs.lock().open(self.ino, path, how);
        match opened.map_err(errno)? {
            (ino, NodeType::Dir) => Ok(OpenResult::Dir(Box::new(VDir::new(self.fs.clone(), ino)))),
            (ino, _) => Ok(OpenResult::File(Box::new(VFile::open(
                self.fs.clone(),
                ino,
                write,
                fdflags & (FdFlags::APPEND | FdFlags::NONBLOCK),
            )))),
        }
    }

    async fn create_dir(&self, path: &str) -> Result<(), Error> {
        self.fs.lock().mkdir(self.ino, path).map_err(errno)
    }

    async fn readdir(
        &self,
        cursor: ReaddirCursor,
    ) -> Result<Box<dyn Iterator<Item = Result<ReaddirEntity, Error>> + Send>, Error> {
        // A removed directory still lists `.` and `..`, as on Linux.
        Ok(Box::new(Readdir {
            fs: self.fs.clone(),
            dir: self.ino,
            next: u64::from(cursor),
            last: None,
        }))
    }

    async fn symlink(&self, old_path: &str, new_path: &str) -> Result<(), Error> {
        self.fs
            .lock()
            .symlink(old_path, self.ino, new_path)
            .map_err(errno)
    }

    async fn remove_dir(&self, path: &str) -> Result<(), Error> {
        self.fs.lock().rmdir(self.ino, path).map_err(errno)
    }

    async fn unlink_file(&self, path: &str) -> Result<(), Error> {
        self.fs.lock().unlink(self.ino, path).map_err(errno)
    }

    async fn read_link(&self, path: &str) -> Result<PathBuf, Error> {
        let target = self.fs.lock().readlink(self.ino, path).map_err(errno)?;
        Ok(PathBuf::from(target))
    }

    async fn get_filestat(&self) -> Result<Filestat, Error> {
        let stat = self.fs.lock().stat(self.ino).map_err(errno)?;
        Ok(filestat(stat))
    }

    async fn get_path_filestat(
        &self,
        path: &str,
        follow_symlinks: bool,
    ) -> Result<Filestat, Error> {
        let stat = self
            .fs
            .lock()
            .stat_path(self.ino, path, follow_symlinks)
            .map_err(errno)?;
        Ok(filestat(stat))
    }

    async fn rename(
        &self,
        path: &str,
        dest_dir: &dyn WasiDir,
        dest_path: &str,
    ) -> Result<(), Error> {
        let dest = self.same_tree(dest_dir)?;
        self.fs
            .lock()
            .rename(self.ino, path, dest.ino, dest_path)
            .map_err(errno)
    }

    async fn hard_link(
        &self,
        path: &str,
        target_dir: &dyn WasiDir,
        target_path: &str,
    ) -> Result<(), Error> {
        let target = self.same_tree(target_dir)?;
        self.fs
            .lock()
            .link(self.ino, path, target.ino, target_path)
            .map_err(errno)
    }

    async fn set_times(
        &self,
        path: &str,
        atime: Option<SystemTimeSpec>,
        mtime: Option<SystemTimeSpec>,
        follow_symlinks: bool,
    ) -> Result<(), Error> {
        self.fs
            .lock()
            .set_times_path(
                self.ino,
                path,
                follow_symlinks,
                time_set(atime),
                time_set(mtime),
            )
            .map_err(errno)
    }
}

/// `fd_readdir`'s entries from a cookie: `.` (0), `..` (1), then the names
/// in bytewise order; cookie `n` resumes after the `n`th entry. Read
/// lazily, one lookup per entry, so a call costs what it produces (plus
/// the skip to its cookie, charged per entry skipped).
struct Readdir {
    fs: Fs,
    dir: Ino,
    next: u64,
    /// The last name produced, to continue from without skipping again.
    last: Option<String>,
}

impl Iterator for Readdir {
    type Item = Result<ReaddirEntity, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut tree = self.fs.lock();
        let index = self.next;
        let (name, inode, kind) = match index {
            0 => (".".to_string(), self.dir, NodeType::Dir),
            1 => ("..".to_string(), tree.parent_of(self.dir), NodeType::Dir),
            _ => {
                let children = tree.children(self.dir)?;
                let (entry, skipped) = match &self.last {
                    Some(last) => (
                        children
                            .range::<str, _>((Bound::Excluded(last.as_str()), Bound::Unbounded))
                            .next(),
                        0,
                    ),
                    None => {
                        let skip = usize::try_from(index - 2).unwrap_or(usize::MAX);
                        (children.iter().nth(skip), skip.min(children.len()) as u64)
                    }
                };
                let found = entry.map(|(name, &ino)| (name.clone(), ino));
                tree.charge(skipped.saturating_mul(STEP_FUEL));
                let (name, ino) = found?;
                let kind = tree.stat(ino).ok()?.kind;
                (name, ino, kind)
            }
        };
        tree.charge(STEP_FUEL + copy_cost(name.len() as u64));
        self.next = index + 1;
        if index >= 2 {
            self.last = Some(name.clone());
        }
        Some(Ok(ReaddirEntity {
            next: ReaddirCursor::from(index + 1),
            inode,
            name,
            filetype: file_type(kind),
        }))
    }
}
