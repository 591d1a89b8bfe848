//! An open regular file of the guest, as wasi-common's `WasiFile`: a
//! position and flags over a node of the tree (which stays alive while
//! open, even unlinked).

use std::{
    any::Any,
    io::{IoSlice, IoSliceMut, SeekFrom},
    sync::atomic::{AtomicU64, Ordering},
};

use wasmi_wasi::wasi_common::{
    file::{Advice, FdFlags, FileType, Filestat},
    snapshots::preview_1::types::Errno,
    Error, SystemTimeSpec, WasiFile,
};

use super::{
    dir::{filestat, time_set},
    tree::Ino,
    Fs,
};

pub struct VFile {
    fs: Fs,
    ino: Ino,
    position: AtomicU64,
    writable: bool,
    flags: FdFlags,
}

impl VFile {
    /// Opens node `ino` (a regular file) of `fs`.
    pub fn open(fs: Fs, ino: Ino, writable: bool, flags: FdFlags) -> Self {
        if let Some(node) = fs.lock().node_mut(ino) {
            node.open += 1;
        }
        Self {
            fs,
            ino,
            position: AtomicU64::new(0),
            writable,
            flags,
        }
    }
}

impl Drop for VFile {
    fn drop(&mut self) {
        let mut tree = self.fs.lock();
        if let Some(node) = tree.node_mut(self.ino) {
            node.open -= 1;
        }
        tree.release(self.ino);
    }
}

fn errno(e: Errno) -> Error {
    e.into()
}

impl VFile {
    fn read_into(&self, bufs: &mut [IoSliceMut<'_>], offset: u64) -> Result<u64, Error> {
        let tree = self.fs.lock();
        let mut total = 0u64;
        for buf in bufs.iter_mut() {
            let n = tree.read_at(self.ino, buf, offset + total).map_err(errno)?;
            total += n as u64;
            if n < buf.len() {
                break;
            }
        }
        Ok(total)
    }

    fn write_from(&self, bufs: &[IoSlice<'_>], offset: u64) -> Result<u64, Error> {
        let mut tree = self.fs.lock();
        let slices: Vec<&[u8]> = bufs.iter().map(|b| &**b).collect();
        tree.write_at(self.ino, &slices, offset).map_err(errno)
    }
}

#[wiggle::async_trait]
impl WasiFile for VFile {
    fn as_any(&self) -> &dyn Any {
        self
    }

    async fn get_filetype(&self) -> Result<FileType, Error> {
        Ok(FileType::RegularFile)
    }

    async fn get_fdflags(&self) -> Result<FdFlags, Error> {
        Ok(self.flags)
    }

    async fn set_fdflags(&mut self, flags: FdFlags) -> Result<(), Error> {
        if flags.intersects(FdFlags::DSYNC | FdFlags::SYNC | FdFlags::RSYNC) {
            return Err(errno(Errno::Inval));
        }
        self.flags = flags;
        Ok(())
    }

    async fn get_filestat(&self) -> Result<Filestat, Error> {
        let stat = self.fs.lock().stat(self.ino).map_err(errno)?;
        Ok(filestat(stat))
    }

    async fn set_filestat_size(&self, size: u64) -> Result<(), Error> {
        if !self.writable {
            // What wasmtime answers for a file not opened for writing.
            return Err(errno(Errno::Inval));
        }
        self.fs.lock().set_size(self.ino, size).map_err(errno)
    }

    async fn advise(&self, _offset: u64, _len: u64, _advice: Advice) -> Result<(), Error> {
        Ok(())
    }

    async fn set_times(
        &self,
        atime: Option<SystemTimeSpec>,
        mtime: Option<SystemTimeSpec>,
    ) -> Result<(), Error> {
        self.fs
            .lock()
            .set_times(self.ino, time_set(atime), time_set(mtime))
            .map_err(errno)
    }

    async fn read_vectored<'a>(&self, bufs: &mut [IoSliceMut<'a>]) -> Result<u64, Error> {
        let at = self.position.load(Ordering::Relaxed);
        let n = self.read_into(bufs, at)?;
        self.position.store(at + n, Ordering::Relaxed);
        Ok(n)
    }

    async fn read_vectored_at<'a>(
        &self,
        bufs: &mut [IoSliceMut<'a>],
        offset: u64,
    ) -> Result<u64, Error> {
        self.read_into(bufs, offset)
    }

    async fn write_vectored<'a>(&self, bufs: &[IoSlice<'a>]) -> Result<u64, Error> {
        let at = if self.flags.contains(FdFlags::APPEND) {
            self.fs.lock().file_len(self.ino).map_err(errno)?
        } else {
            self.position.load(Ordering::Relaxed)
        };
        let n = self.write_from(bufs, at)?;
        self.position.store(at + n, Ordering::Relaxed);
        Ok(n)
    }

    async fn write_vectored_at<'a>(&self, bufs: &[IoSlice<'a>], offset: u64) -> Result<u64, Error> {
        // As on Linux (and so wasmtime): with APPEND, pwrite appends.
        let at = if self.flags.contains(FdFlags::APPEND) {
            self.fs.lock().file_len(self.ino).map_err(errno)?
        } else {
            offset
        };
        self.write_from(bufs, at)
    }

    async fn seek(&self, pos: SeekFrom) -> Result<u64, Error> {
        let current = self.position.load(Ordering::Relaxed);
        let new = match pos {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::Current(delta) => current.checked_add_signed(delta),
            SeekFrom::End(delta) => {
                let len = self.fs.lock().file_len(self.ino).map_err(errno)?;
                len.checked_add_signed(delta)
            }
        };
        let new = new
            .filter(|at| *at <= i64::MAX as u64)
            .ok_or_else(|| errno(Errno::Inval))?;
        self.position.store(new, Ordering::Relaxed);
        Ok(new)
    }

    fn num_ready_bytes(&self) -> Result<u64, Error> {
        let len = self.fs.lock().file_len(self.ino).map_err(errno)?;
        Ok(len.saturating_sub(self.position.load(Ordering::Relaxed)))
    }

    async fn readable(&self) -> Result<(), Error> {
        Ok(())
    }

    async fn writable(&self) -> Result<(), Error> {
        Ok(())
    }
}
