//! The in-memory tree: nodes with deterministic inode numbers (creation
//! order), the byte and entry limits, and every operation the guest's
//! preview1 calls map to. Errors are WASI errnos, chosen to match what a
//! real preopened directory answers under wasi-common (escapes are `EPERM`).
//!
//! Work that is not proportional to a call's arguments (path components
//! walked, directory entries skipped, bytes zeroed) is recorded as fuel
//! owed, which the host call pays right after (see `host_calls::settle_fs`).

use std::collections::BTreeMap;

use bytes::Bytes;
use wasmi_wasi::wasi_common::snapshots::preview_1::types::Errno;

use super::{
    limits::{
        MAX_NAME_BYTES, MAX_PATH_BYTES, MAX_SYMLINK_HOPS, MAX_SYMLINK_TARGET_BYTES, STEP_FUEL,
    },
    FsInputKind, FsSpec,
};
use crate::engine::{host_fuel::copy_cost, wasi::VirtualTime};

/// An inode number; the root is 1, then one per node created, in order.
pub type Ino = u64;
pub const ROOT: Ino = 1;

/// A file's bytes: the request's own buffer until first written.
#[derive(Debug)]
pub enum Content {
    Shared(Bytes),
    Owned(Vec<u8>),
}

impl Content {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Content::Shared(bytes) => bytes,
            Content::Owned(vec) => vec,
        }
    }
    pub fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }
    fn is_shared(&self) -> bool {
        matches!(self, Content::Shared(_))
    }
    fn make_mut(&mut self) -> &mut Vec<u8> {
        if let Content::Shared(bytes) = self {
            *self = Content::Owned(bytes.to_vec());
        }
        match self {
            Content::Owned(vec) => vec,
            Content::Shared(_) => unreachable!("made owned above"),
        }
    }
    /// The bytes as a cheaply clonable buffer (collection, after the run).
    pub fn share(&mut self) -> Bytes {
        if let Content::Owned(vec) = self {
            *self = Content::Shared(Bytes::from(std::mem::take(vec)));
        }
        match self {
            Content::Shared(bytes) => bytes.clone(),
            Content::Owned(_) => unreachable!("shared above"),
        }
    }
}

#[derive(Debug)]
pub enum Kind {
    Dir {
        children: BTreeMap<String, Ino>,
        parent: Ino,
    },
    File(Content),
    Symlink(String),
}

#[derive(Debug)]
pub struct Node {
    pub kind: Kind,
    pub nlink: u64,
    /// Open file handles (an unlinked file lives until the last is closed).
    pub open: u64,
    pub atim: u64,
    pub mtim: u64,
    pub ctim: u64,
    /// Contents written or truncated during the run.
    pub changed: bool,
    /// For input files: the path the request gave them.
    pub input_path: Option<Box<str>>,
}

/// File type as WASI reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeType {
    Dir,
    File,
    Symlink,
}

/// What `stat` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub ino: Ino,
    pub kind: NodeType,
    pub nlink: u64,
    pub size: u64,
    pub atim: u64,
    pub mtim: u64,
    pub ctim: u64,
}

/// A time to set: `None` leaves it, `Some(None)` is now.
pub type TimeSet = Option<Option<u64>>;

/// Where a path led.
#[derive(Debug)]
pub struct Found {
    /// The directory holding `name`.
    pub parent: Ino,
    /// The final component; `None` when the path ends in `.` or `..`.
    pub name: Option<String>,
    /// The node the path names, if it exists.
    pub node: Option<Ino>,
    /// The path ended with `/`.
    pub dir_required: bool,
}

/// How `open` should open.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenHow {
    pub follow: bool,
    pub create: bool,
    pub exclusive: bool,
    pub truncate: bool,
    pub directory: bool,
    pub write: bool,
}

/// The whole filesystem of one execution.
#[derive(Debug)]
pub struct Tree {
    nodes: BTreeMap<Ino, Node>,
    next_ino: Ino,
    /// File bytes plus symlink target bytes held.
    bytes: u64,
    /// Names in all directories (the root is not one).
    entries: u64,
    max_bytes: u64,
    max_entries: u64,
    time: VirtualTime,
    /// Fuel owed for work done since the last [`Tree::take_fuel`].
    fuel: u64,
}

/// Virtual nanoseconds since the Unix epoch (the guest's clock).
fn epoch_nanos() -> u64 {
    crate::engine::wasi::VIRTUAL_EPOCH_UNIX_SECS * 1_000_000_000
}

impl Tree {
    /// An empty tree (just the root) with these limits.
    pub fn new(max_bytes: u64, max_entries: u64) -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            ROOT,
            Node {
                kind: Kind::Dir {
                    children: BTreeMap::new(),
                    parent: ROOT,
                },
                nlink: 2,
                open: 0,
                atim: epoch_nanos(),
                mtim: epoch_nanos(),
                ctim: epoch_nanos(),
                changed: false,
                input_path: None,
            },
        );
        Tree {
            nodes,
            next_ino: ROOT + 1,
            bytes: 0,
            entries: 0,
            max_bytes,
            max_entries,
            time: VirtualTime::default(),
            fuel: 0,
        }
    }

    /// Builds the input tree of a validated spec; inode numbers follow the
    /// entries' order (implicit parents just before their first child).
    pub fn build(spec: &FsSpec) -> Result<Self, super::TreeError> {
        super::validate(spec)?;
        let mut tree = Tree::new(spec.max_bytes, spec.max_entries);
        for entry in &spec.entries {
            let mut dir = ROOT;
            let mut segments = entry.path.split('/').peekable();
            while let Some(segment) = segments.next() {
                let last = segments.peek().is_none();
                let existing = tree.children(dir).and_then(|c| c.get(segment)).copied();
                dir = match (existing, last) {
                    (Some(ino), false) => ino,
                    (Some(_), true) => break, // an implicit parent made explicit
                    (None, false) => tree.insert_dir(dir, segment),
                    (None, true) => {
                        let kind = match &entry.kind {
                            FsInputKind::Directory => {
                                tree.insert_dir(dir, segment);
                                break;
                            }
                            FsInputKind::File(bytes) => Kind::File(Content::Shared(bytes.clone())),
                            FsInputKind::Symlink(target) => Kind::Symlink(target.clone()),
                        };
                        let input_path = matches!(kind, Kind::File(_))
                            .then(|| entry.path.clone().into_boxed_str());
                        let ino = tree.insert(dir, segment, kind);
                        if let Some(node) = tree.nodes.get_mut(&ino) {
                            node.input_path = input_path;
                            node.changed = false;
                        }
                        break;
                    }
                };
            }
        }
        tree.fuel = 0;
        Ok(tree)
    }

    /// Gives the tree the guest's clock (timestamps of changes).
    pub fn set_clock(&mut self, time: VirtualTime) {
        self.time = time;
    }

    fn now(&self) -> u64 {
        epoch_nanos().saturating_add(self.time.now_nanos())
    }

    /// Fuel owed for work done since the last call.
    pub fn take_fuel(&mut self) -> u64 {
        std::mem::take(&mut self.fuel)
    }

    pub fn charge(&mut self, fuel: u64) {
        self.fuel = self.fuel.saturating_add(fuel);
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
    pub fn entries(&self) -> u64 {
        self.entries
    }

    pub fn node(&self, ino: Ino) -> Option<&Node> {
        self.nodes.get(&ino)
    }
    pub fn node_mut(&mut self, ino: Ino) -> Option<&mut Node> {
        self.nodes.get_mut(&ino)
    }

    pub fn children(&self, ino: Ino) -> Option<&BTreeMap<String, Ino>> {
        match &self.nodes.get(&ino)?.kind {
            Kind::Dir { children, .. } => Some(children),
            _ => None,
        }
    }

    fn children_mut(&mut self, ino: Ino) -> Option<&mut BTreeMap<String, Ino>> {
        match &mut self.nodes.get_mut(&ino)?.kind {
            Kind::Dir { children, .. } => Some(children),
            _ => None,
        }
    }

    /// The parent of directory `ino` (the root is its own).
    pub fn parent_of(&self, ino: Ino) -> Ino {
        match self.nodes.get(&ino).map(|n| &n.kind) {
            Some(Kind::Dir { parent, .. }) => *parent,
            _ => ROOT,
        }
    }

    fn insert_dir(&mut self, parent: Ino, name: &str) -> Ino {
        let ino = self.insert(
            parent,
            name,
            Kind::Dir {
                children: BTreeMap::new(),
                parent,
            },
        );
        if let Some(node) = self.nodes.get_mut(&parent) {
            node.nlink += 1;
        }
        ino
    }

    /// Adds a new node named `name` in `parent` (limits checked by callers).
    fn insert(&mut self, parent: Ino, name: &str, kind: Kind) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        let now = self.now();
        let (nlink, bytes) = match &kind {
            Kind::Dir { .. } => (2, 0),
            Kind::File(content) => (1, content.len()),
            Kind::Symlink(target) => (1, target.len() as u64),
        };
        self.bytes += bytes;
        self.entries += 1;
        self.nodes.insert(
            ino,
            Node {
                kind,
                nlink,
                open: 0,
                atim: now,
                mtim: now,
                ctim: now,
                changed: true,
                input_path: None,
            },
        );
        if let Some(children) = self.children_mut(parent) {
            children.insert(name.to_string(), ino);
        }
        self.touch_dir(parent, now);
        ino
    }

    fn touch_dir(&mut self, dir: Ino, now: u64) {
        if let Some(node) = self.nodes.get_mut(&dir) {
            node.mtim = now;
            node.ctim = now;
        }
    }

    fn check_new_entry(&self) -> Result<(), Errno> {
        if self.entries >= self.max_entries {
            return Err(Errno::Nospc);
        }
        Ok(())
    }

    fn check_new_bytes(&self, more: u64) -> Result<(), Errno> {
        if self.bytes.saturating_add(more) > self.max_bytes {
            return Err(Errno::Nospc);
        }
        Ok(())
    }

    /// Follows `path` from directory `base` without ever leaving it:
    /// `..` above `base` and absolute symlinks are `EPERM`, more than
    /// [`MAX_SYMLINK_HOPS`] symlinks `ELOOP`.
    pub fn resolve(&mut self, base: Ino, path: &str, follow: bool) -> Result<Found, Errno> {
        if self.children(base).is_none() {
            return Err(Errno::Noent);
        }
        if path.is_empty() {
            return Err(Errno::Noent);
        }
        if path.len() > MAX_PATH_BYTES {
            return Err(Errno::Nametoolong);
        }
        if path.contains('\0') {
            return Err(Errno::Inval);
        }
        if path.starts_with('/') {
            return Err(Errno::Perm);
        }
        let dir_required = path.ends_with('/');
        // Components still to walk, last first.
        let mut todo: Vec<String> = path
            .split('/')
            .rev()
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        let mut stack = vec![base];
        let mut hops = 0;
        while let Some(component) = todo.pop() {
            self.charge(STEP_FUEL);
            let here = *stack.last().expect("never empty");
            match component.as_str() {
                "." => continue,
                ".." => {
                    if stack.len() == 1 {
                        return Err(Errno::Perm);
                    }
                    stack.pop();
                    continue;
                }
                _ => {}
            }
            if component.len() > MAX_NAME_BYTES {
                return Err(Errno::Nametoolong);
            }
            let last = todo.is_empty();
            let child = self
                .children(here)
                .ok_or(Errno::Noent)?
                .get(&component)
                .copied();
            let Some(child) = child else {
                if last {
                    return Ok(Found {
                        parent: here,
                        name: Some(component),
                        node: None,
                        dir_required,
                    });
                }
                return Err(Errno::Noent);
            };
            match &self.nodes[&child].kind {
                Kind::Symlink(target) if !last || follow || dir_required => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(Errno::Loop);
                    }
                    if target.starts_with('/') {
                        return Err(Errno::Perm);
                    }
                    if target.is_empty() {
                        return Err(Errno::Noent);
                    }
                    let target = target.clone();
                    self.charge(copy_cost(target.len() as u64));
                    todo.extend(
                        target
                            .split('/')
                            .rev()
                            .filter(|c| !c.is_empty())
                            .map(str::to_string),
                    );
                }
                Kind::Dir { .. } if !last => stack.push(child),
                _ if last => {
                    return Ok(Found {
                        parent: here,
                        name: Some(component),
                        node: Some(child),
                        dir_required,
                    })
                }
                _ => return Err(Errno::Notdir),
            }
        }
        let here = *stack.last().expect("never empty");
        Ok(Found {
            parent: here,
            name: None,
            node: Some(here),
            dir_required,
        })
    }

    fn kind_of(&self, ino: Ino) -> Option<NodeType> {
        Some(match self.nodes.get(&ino)?.kind {
            Kind::Dir { .. } => NodeType::Dir,
            Kind::File(_) => NodeType::File,
            Kind::Symlink(_) => NodeType::Symlink,
        })
    }

    /// `path_open`: the node opened (a file or a directory).
    pub fn open(&mut self, base: Ino, path: &str, how: OpenHow) -> Result<(Ino, NodeType), Errno> {
        if how.directory && (how.create || how.exclusive || how.truncate) {
            return Err(Errno::Inval);
        }
        let found = self.resolve(base, path, how.follow)?;
        let Some(ino) = found.node else {
            if !how.create {
                return Err(Errno::Noent);
            }
            if found.dir_required {
                return Err(Errno::Isdir);
            }
            self.check_new_entry()?;
            let name = found.name.expect("a missing node has a name");
            let ino = self.insert(found.parent, &name, Kind::File(Content::Owned(Vec::new())));
            return Ok((ino, NodeType::File));
        };
        if how.create && how.exclusive {
            return Err(Errno::Exist);
        }
        match self.kind_of(ino).ok_or(Errno::Noent)? {
            NodeType::Dir => {
                if how.write || how.truncate || how.create {
                    return Err(Errno::Isdir);
                }
                Ok((ino, NodeType::Dir))
            }
            NodeType::Symlink => Err(Errno::Loop),
            NodeType::File => {
                if how.directory || found.dir_required {
                    return Err(Errno::Notdir);
                }
                if how.truncate {
                    self.set_size(ino, 0)?;
                }
                Ok((ino, NodeType::File))
            }
        }
    }

    /// `path_create_directory`.
    pub fn mkdir(&mut self, base: Ino, path: &str) -> Result<(), Errno> {
        let found = self.resolve(base, path, false)?;
        let (None, Some(name)) = (found.node, found.name) else {
            return Err(Errno::Exist);
        };
        self.check_new_entry()?;
        self.insert_dir(found.parent, &name);
        Ok(())
    }

    /// Removes the name `name` from `parent`, dropping its node when no
    /// link or open handle is left.
    fn remove_name(&mut self, parent: Ino, name: &str) {
        let Some(ino) = self.children_mut(parent).and_then(|c| c.remove(name)) else {
            return;
        };
        self.entries -= 1;
        let now = self.now();
        self.touch_dir(parent, now);
        let is_dir = matches!(self.kind_of(ino), Some(NodeType::Dir));
        if is_dir {
            if let Some(node) = self.nodes.get_mut(&parent) {
                node.nlink -= 1;
            }
            self.drop_node(ino);
            return;
        }
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.nlink -= 1;
            node.ctim = now;
        }
        self.release(ino);
    }

    /// Frees `ino` if nothing refers to it any more.
    pub fn release(&mut self, ino: Ino) {
        if self
            .nodes
            .get(&ino)
            .is_some_and(|n| n.nlink == 0 && n.open == 0)
        {
            self.drop_node(ino);
        }
    }

    fn drop_node(&mut self, ino: Ino) {
        if let Some(node) = self.nodes.remove(&ino) {
            self.bytes -= match &node.kind {
                Kind::File(content) => content.len(),
                Kind::Symlink(target) => target.len() as u64,
                Kind::Dir { .. } => 0,
            };
        }
    }

    /// `path_remove_directory`.
    pub fn rmdir(&mut self, base: Ino, path: &str) -> Result<(), Errno> {
        let found = self.resolve(base, path, false)?;
        let ino = found.node.ok_or(Errno::Noent)?;
        let Some(name) = found.name else {
            return Err(Errno::Inval);
        };
        match self.children(ino) {
            None => return Err(Errno::Notdir),
            Some(children) if !children.is_empty() => return Err(Errno::Notempty),
            Some(_) => {}
        }
        self.remove_name(found.parent, &name);
        Ok(())
    }

    /// `path_unlink_file`.
    pub fn unlink(&mut self, base: Ino, path: &str) -> Result<(), Errno> {
        let found = self.resolve(base, path, false)?;
        let ino = found.node.ok_or(Errno::Noent)?;
        let Some(name) = found.name else {
            return Err(Errno::Isdir);
        };
        match self.kind_of(ino) {
            Some(NodeType::Dir) => return Err(Errno::Isdir),
            Some(_) if found.dir_required => return Err(Errno::Notdir),
            _ => {}
        }
        self.remove_name(found.parent, &name);
        Ok(())
    }

    /// Whether `dir` is `ancestor` or inside it (walks up: charged).
    fn is_within(&mut self, mut dir: Ino, ancestor: Ino) -> bool {
        loop {
            self.charge(STEP_FUEL);
            if dir == ancestor {
                return true;
            }
            if dir == ROOT {
                return false;
            }
            dir = self.parent_of(dir);
        }
    }

    /// `path_rename`, within this tree.
    pub fn rename(
        &mut self,
        src_base: Ino,
        src_path: &str,
        dst_base: Ino,
        dst_path: &str,
    ) -> Result<(), Errno> {
        let src = self.resolve(src_base, src_path, false)?;
        let ino = src.node.ok_or(Errno::Noent)?;
        let Some(src_name) = src.name else {
            return Err(Errno::Busy);
        };
        let dst = self.resolve(dst_base, dst_path, false)?;
        let Some(dst_name) = dst.name else {
            return Err(Errno::Busy);
        };
        let src_is_dir = self.kind_of(ino) == Some(NodeType::Dir);
        if !src_is_dir && (src.dir_required || dst.dir_required) {
            return Err(Errno::Notdir);
        }
        if let Some(existing) = dst.node {
            if existing == ino {
                return Ok(());
            }
            match (src_is_dir, self.children(existing)) {
                (true, None) => return Err(Errno::Notdir),
                (true, Some(children)) if !children.is_empty() => return Err(Errno::Notempty),
                (false, Some(_)) => return Err(Errno::Isdir),
                _ => {}
            }
        }
        if src_is_dir && self.is_within(dst.parent, ino) {
            return Err(Errno::Inval);
        }
        if dst.node.is_some() {
            self.remove_name(dst.parent, &dst_name);
        }
        self.children_mut(src.parent)
            .expect("the source's parent is a directory")
            .remove(&src_name);
        self.children_mut(dst.parent)
            .expect("the destination's parent is a directory")
            .insert(dst_name, ino);
        let now = self.now();
        self.touch_dir(src.parent, now);
        self.touch_dir(dst.parent, now);
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.ctim = now;
            if let Kind::Dir { parent, .. } = &mut node.kind {
                *parent = dst.parent;
            }
        }
        if src_is_dir && src.parent != dst.parent {
            if let Some(node) = self.nodes.get_mut(&src.parent) {
                node.nlink -= 1;
            }
            if let Some(node) = self.nodes.get_mut(&dst.parent) {
                node.nlink += 1;
            }
        }
        Ok(())
    }

    /// `path_link` (never follows the source).
    pub fn link(
        &mut self,
        src_base: Ino,
        src_path: &str,
        dst_base: Ino,
        dst_path: &str,
    ) -> Result<(), Errno> {
        let src = self.resolve(src_base, src_path, false)?;
        let ino = src.node.ok_or(Errno::Noent)?;
        if self.kind_of(ino) == Some(NodeType::Dir) {
            return Err(Errno::Perm);
        }
        if src.dir_required {
            return Err(Errno::Notdir);
        }
        let dst = self.resolve(dst_base, dst_path, false)?;
        let (None, Some(name)) = (dst.node, dst.name) else {
            return Err(Errno::Exist);
        };
        self.check_new_entry()?;
        self.entries += 1;
        self.children_mut(dst.parent)
            .expect("the destination's parent is a directory")
            .insert(name, ino);
        let now = self.now();
        self.touch_dir(dst.parent, now);
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.nlink += 1;
            node.ctim = now;
        }
        Ok(())
    }

    /// `path_symlink`: a link at `path` to `target` (not checked: it may
    /// dangle; following an absolute one is `EPERM`).
    pub fn symlink(&mut self, target: &str, base: Ino, path: &str) -> Result<(), Errno> {
        if target.len() > MAX_SYMLINK_TARGET_BYTES {
            return Err(Errno::Nametoolong);
        }
        if target.is_empty() {
            return Err(Errno::Noent);
        }
        if target.contains('\0') {
            return Err(Errno::Inval);
        }
        let found = self.resolve(base, path, false)?;
        let (None, Some(name)) = (found.node, found.name) else {
            return Err(Errno::Exist);
        };
        self.check_new_entry()?;
        self.check_new_bytes(target.len() as u64)?;
        self.insert(found.parent, &name, Kind::Symlink(target.to_string()));
        Ok(())
    }

    /// `path_readlink`.
    pub fn readlink(&mut self, base: Ino, path: &str) -> Result<String, Errno> {
        let found = self.resolve(base, path, false)?;
        let ino = found.node.ok_or(Errno::Noent)?;
        match &self.nodes[&ino].kind {
            Kind::Symlink(target) => Ok(target.clone()),
            _ => Err(Errno::Inval),
        }
    }

    /// `path_filestat_get`.
    pub fn stat_path(&mut self, base: Ino, path: &str, follow: bool) -> Result<Stat, Errno> {
        let found = self.resolve(base, path, follow)?;
        let ino = found.node.ok_or(Errno::Noent)?;
        if found.dir_required && self.kind_of(ino) != Some(NodeType::Dir) {
            return Err(Errno::Notdir);
        }
        self.stat(ino)
    }

    /// `fd_filestat_get`.
    pub fn stat(&self, ino: Ino) -> Result<Stat, Errno> {
        let node = self.nodes.get(&ino).ok_or(Errno::Noent)?;
        let (kind, size) = match &node.kind {
            Kind::Dir { .. } => (NodeType::Dir, 0),
            Kind::File(content) => (NodeType::File, content.len()),
            Kind::Symlink(target) => (NodeType::Symlink, target.len() as u64),
        };
        Ok(Stat {
            ino,
            kind,
            nlink: node.nlink,
            size,
            atim: node.atim,
            mtim: node.mtim,
            ctim: node.ctim,
        })
    }

    /// `path_filestat_set_times`.
    pub fn set_times_path(
        &mut self,
        base: Ino,
        path: &str,
        follow: bool,
        atim: TimeSet,
        mtim: TimeSet,
    ) -> Result<(), Errno> {
        let found = self.resolve(base, path, follow)?;
        let ino = found.node.ok_or(Errno::Noent)?;
        self.set_times(ino, atim, mtim)
    }

    /// `fd_filestat_set_times`.
    pub fn set_times(&mut self, ino: Ino, atim: TimeSet, mtim: TimeSet) -> Result<(), Errno> {
        let now = self.now();
        let node = self.nodes.get_mut(&ino).ok_or(Errno::Noent)?;
        if let Some(at) = atim {
            node.atim = at.unwrap_or(now);
        }
        if let Some(at) = mtim {
            node.mtim = at.unwrap_or(now);
        }
        node.ctim = now;
        Ok(())
    }

    fn file(&self, ino: Ino) -> Result<&Content, Errno> {
        match &self.nodes.get(&ino).ok_or(Errno::Badf)?.kind {
            Kind::File(content) => Ok(content),
            Kind::Dir { .. } => Err(Errno::Isdir),
            Kind::Symlink(_) => Err(Errno::Badf),
        }
    }

    pub fn file_len(&self, ino: Ino) -> Result<u64, Errno> {
        Ok(self.file(ino)?.len())
    }

    /// Reads into `buf` from `offset`; returns the bytes read.
    pub fn read_at(&self, ino: Ino, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
        let data = self.file(ino)?.as_slice();
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        let Some(rest) = data.get(start..) else {
            return Ok(0);
        };
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    /// Writes `bufs` at `offset` (zero-filling a gap); like a full disk, a
    /// write past the byte limit is short, and `ENOSPC` when nothing fits.
    pub fn write_at(&mut self, ino: Ino, bufs: &[&[u8]], offset: u64) -> Result<u64, Errno> {
        let total: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        if total == 0 {
            self.file(ino)?;
            return Ok(0);
        }
        offset
            .checked_add(total)
            .filter(|end| *end <= i64::MAX as u64)
            .ok_or(Errno::Fbig)?;
        let len = self.file(ino)?.len();
        let room = self.max_bytes.saturating_sub(self.bytes);
        let end_limit = len.saturating_add(room);
        if offset >= end_limit {
            return Err(Errno::Nospc);
        }
        let n = total.min(end_limit - offset);
        let end = offset + n;
        let grow = end.saturating_sub(len);
        if offset > len {
            self.charge(copy_cost(offset - len));
        }
        self.charge_unshare(ino);
        let now = self.now();
        let node = self.nodes.get_mut(&ino).ok_or(Errno::Badf)?;
        let Kind::File(content) = &mut node.kind else {
            return Err(Errno::Badf);
        };
        let vec = content.make_mut();
        if (vec.len() as u64) < end {
            vec.resize(end as usize, 0);
        }
        let mut at = offset as usize;
        let mut left = n as usize;
        for buf in bufs {
            if left == 0 {
                break;
            }
            let take = buf.len().min(left);
            vec[at..at + take].copy_from_slice(&buf[..take]);
            at += take;
            left -= take;
        }
        node.mtim = now;
        node.ctim = now;
        node.changed = true;
        self.bytes += grow;
        Ok(n)
    }

    /// The first change to an input file copies the request's buffer.
    fn charge_unshare(&mut self, ino: Ino) {
        let copy = match self.nodes.get(&ino).map(|n| &n.kind) {
            Some(Kind::File(content)) if content.is_shared() => content.len(),
            _ => 0,
        };
        self.charge(copy_cost(copy));
    }

    /// `fd_filestat_set_size`: truncates or zero-extends.
    pub fn set_size(&mut self, ino: Ino, size: u64) -> Result<(), Errno> {
        let len = self.file(ino)?.len();
        if size > len {
            if size > i64::MAX as u64 {
                return Err(Errno::Fbig);
            }
            self.check_new_bytes(size - len)?;
            self.charge(copy_cost(size - len));
        }
        if size != len {
            self.charge_unshare(ino);
        }
        let now = self.now();
        let node = self.nodes.get_mut(&ino).ok_or(Errno::Badf)?;
        let Kind::File(content) = &mut node.kind else {
            return Err(Errno::Badf);
        };
        if size != len {
            let vec = content.make_mut();
            vec.resize(size as usize, 0);
            if size < len {
                vec.shrink_to(size as usize);
            }
        }
        node.mtim = now;
        node.ctim = now;
        node.changed = true;
        self.bytes = self.bytes + size - len;
        Ok(())
    }

    /// Every regular file reachable from the root, with its path, in
    /// path order (a file with two links appears twice). Directories whose
    /// path passes [`MAX_PATH_BYTES`] are not entered: a guest can nest
    /// deeper through directory fds, but building those paths would cost
    /// the square of the depth.
    pub fn files(&mut self) -> Vec<(String, Ino)> {
        let mut out = Vec::new();
        let mut todo = vec![(String::new(), ROOT)];
        while let Some((prefix, dir)) = todo.pop() {
            let Some(children) = self.children(dir) else {
                continue;
            };
            for (name, &ino) in children {
                if prefix.len() + 1 + name.len() > MAX_PATH_BYTES {
                    continue;
                }
                let path = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}/{name}")
                };
                match self.nodes[&ino].kind {
                    Kind::Dir { .. } => todo.push((path, ino)),
                    Kind::File(_) => out.push((path, ino)),
                    Kind::Symlink(_) => {}
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// The bytes of file `ino`, shared (no copy).
    pub fn share(&mut self, ino: Ino) -> Option<Bytes> {
        match &mut self.nodes.get_mut(&ino)?.kind {
            Kind::File(content) => Some(content.share()),
            _ => None,
        }
    }
}
