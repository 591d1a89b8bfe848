//! The tree's semantics against its own API, one behaviour per test.

use bytes::Bytes;
use wasmi_wasi::wasi_common::snapshots::preview_1::types::Errno;

use super::{
    tree::{NodeType, OpenHow, Tree, ROOT},
    validate, FsInput, FsInputKind, FsSpec, TreeError,
};

fn file(path: &str, contents: &str) -> FsInput {
    FsInput {
        path: path.into(),
        kind: FsInputKind::File(Bytes::from(contents.to_string())),
    }
}
fn dir(path: &str) -> FsInput {
    FsInput {
        path: path.into(),
        kind: FsInputKind::Directory,
    }
}
fn link(path: &str, target: &str) -> FsInput {
    FsInput {
        path: path.into(),
        kind: FsInputKind::Symlink(target.into()),
    }
}
fn spec(entries: Vec<FsInput>) -> FsSpec {
    FsSpec {
        entries,
        collect: vec![],
        max_bytes: 1 << 20,
        max_entries: 100,
    }
}
fn tree(entries: Vec<FsInput>) -> Tree {
    Tree::build(&spec(entries)).expect("valid tree")
}
fn small_tree(max_bytes: u64, max_entries: u64) -> Tree {
    Tree::new(max_bytes, max_entries)
}

const CREATE: OpenHow = OpenHow {
    follow: true,
    create: true,
    exclusive: false,
    truncate: false,
    directory: false,
    write: true,
};
const READ: OpenHow = OpenHow {
    follow: true,
    create: false,
    exclusive: false,
    truncate: false,
    directory: false,
    write: false,
};

fn read_all(t: &Tree, path_ino: u64) -> String {
    let mut buf = vec![0; 4096];
    let n = t.read_at(path_ino, &mut buf, 0).unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

fn bad_entry(err: Result<(), TreeError>) -> (usize, String) {
    match err {
        Err(TreeError::BadEntry { index, reason, .. }) => (index, reason),
        other => panic!("expected BadEntry, got {other:?}"),
    }
}

// --- validation -------------------------------------------------------------

#[test]
fn validate_accepts_a_tree_with_files_dirs_and_symlinks() {
    let s = spec(vec![file("a/b.txt", "x"), dir("a"), link("c", "a/b.txt")]);
    assert_eq!(validate(&s), Ok(()));
}

#[test]
fn validate_refuses_bad_paths_naming_the_entry() {
    let cases = [
        ("/abs", "relative"),
        ("", "empty"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("a/./b", "\".\" segment"),
        ("a/../b", "\"..\" segment"),
        ("a\0b", "NUL"),
    ];
    for (path, reason) in cases {
        let (index, got) = bad_entry(validate(&spec(vec![file("ok", ""), file(path, "")])));
        assert_eq!(index, 1, "{path:?}");
        assert!(got.contains(reason), "{path:?}: {got}");
    }
}

#[test]
fn validate_refuses_paths_that_are_too_long_or_too_deep() {
    let long = "x".repeat(super::limits::MAX_PATH_BYTES + 1);
    assert!(bad_entry(validate(&spec(vec![file(&long, "")])))
        .1
        .contains("bytes"));
    let name = "y".repeat(super::limits::MAX_NAME_BYTES + 1);
    assert!(bad_entry(validate(&spec(vec![file(&name, "")])))
        .1
        .contains("segment is"));
    let deep = vec!["d"; super::limits::MAX_INPUT_DEPTH + 1].join("/");
    assert!(bad_entry(validate(&spec(vec![file(&deep, "")])))
        .1
        .contains("deep"));
}

#[test]
fn validate_refuses_duplicates() {
    let (index, reason) = bad_entry(validate(&spec(vec![file("a", "1"), file("a", "2")])));
    assert_eq!(
        (index, reason.as_str()),
        (1, "the same path as fs.entries[0]")
    );
}

#[test]
fn validate_refuses_a_file_inside_a_file_in_either_order() {
    let (index, reason) = bad_entry(validate(&spec(vec![file("a", ""), file("a/b", "")])));
    assert_eq!(index, 1);
    assert!(reason.contains("fs.entries[0]"), "{reason}");
    let (index, reason) = bad_entry(validate(&spec(vec![file("a/b", ""), file("a", "")])));
    assert_eq!(index, 1);
    assert!(reason.contains("fs.entries[0] is inside it"), "{reason}");
}

#[test]
fn validate_refuses_an_entry_under_a_symlink() {
    let (index, _) = bad_entry(validate(&spec(vec![link("l", "d"), file("l/x", "")])));
    assert_eq!(index, 1);
}

#[test]
fn validate_refuses_bad_symlink_targets() {
    let (_, reason) = bad_entry(validate(&spec(vec![link("l", "")])));
    assert!(reason.contains("empty"));
    let long = "t".repeat(super::limits::MAX_SYMLINK_TARGET_BYTES + 1);
    let (_, reason) = bad_entry(validate(&spec(vec![link("l", &long)])));
    assert!(reason.contains("bytes"));
}

#[test]
fn validate_refuses_invalid_globs() {
    let mut s = spec(vec![]);
    s.collect = vec!["out/*.png".into(), "a[".into()];
    assert!(matches!(
        validate(&s),
        Err(TreeError::BadPattern { index: 1, .. })
    ));
}

#[test]
fn validate_refuses_too_many_patterns() {
    let mut s = spec(vec![]);
    s.collect = vec!["*".into(); super::limits::MAX_COLLECT_PATTERNS + 1];
    assert!(matches!(validate(&s), Err(TreeError::BadPattern { .. })));
}

#[test]
fn validate_refuses_too_many_bytes() {
    let mut s = spec(vec![file("a", "12345"), file("b", "678")]);
    s.max_bytes = 7;
    assert_eq!(
        validate(&s),
        Err(TreeError::TooManyBytes {
            requested: 8,
            maximum: 7
        })
    );
}

#[test]
fn validate_counts_implicit_parents_as_entries() {
    let mut s = spec(vec![file("a/b/c", "")]);
    s.max_entries = 2;
    assert_eq!(
        validate(&s),
        Err(TreeError::TooManyEntries {
            requested: 3,
            maximum: 2
        })
    );
    s.max_entries = 3;
    assert_eq!(validate(&s), Ok(()));
}

// --- building ---------------------------------------------------------------

#[test]
fn inodes_follow_creation_order_with_implicit_parents_first() {
    let mut t = tree(vec![file("b/x", ""), file("a", "")]);
    let b = t.resolve(ROOT, "b", false).unwrap().node.unwrap();
    let x = t.resolve(ROOT, "b/x", false).unwrap().node.unwrap();
    let a = t.resolve(ROOT, "a", false).unwrap().node.unwrap();
    assert_eq!((b, x, a), (2, 3, 4));
}

// --- resolution -------------------------------------------------------------

#[test]
fn resolution_errors() {
    let mut t = tree(vec![
        file("f", "x"),
        dir("d"),
        link("abs", "/etc/passwd"),
        link("up", "../x"),
        link("loop1", "loop2"),
        link("loop2", "loop1"),
        link("d/up", "../../x"),
    ]);
    let cases: &[(&str, Errno)] = &[
        ("..", Errno::Perm),
        ("d/../..", Errno::Perm),
        ("/f", Errno::Perm),
        ("abs", Errno::Perm),
        ("up", Errno::Perm),
        ("d/up", Errno::Perm),
        ("loop1", Errno::Loop),
        ("f/x", Errno::Notdir),
        ("missing/x", Errno::Noent),
        ("", Errno::Noent),
        ("a\0b", Errno::Inval),
    ];
    for (path, want) in cases {
        assert_eq!(
            t.stat_path(ROOT, path, true).map(|_| ()),
            Err(*want),
            "{path:?}"
        );
    }
}

#[test]
fn a_trailing_slash_on_a_file_is_not_a_directory() {
    let mut t = tree(vec![file("f", "x"), dir("d")]);
    assert_eq!(
        t.stat_path(ROOT, "f/", true).map(|_| ()),
        Err(Errno::Notdir)
    );
    assert_eq!(t.stat_path(ROOT, "d/", true).unwrap().kind, NodeType::Dir);
}

#[test]
fn long_names_and_paths_are_too_long() {
    let mut t = tree(vec![]);
    let name = "n".repeat(256);
    assert_eq!(t.mkdir(ROOT, &name), Err(Errno::Nametoolong));
    let path = "a/".repeat(2049);
    assert_eq!(t.mkdir(ROOT, &path), Err(Errno::Nametoolong));
}

#[test]
fn forty_symlink_hops_resolve_and_forty_one_loop() {
    let mut entries = vec![file("target", "ok")];
    for i in 0..41 {
        let to = if i == 0 {
            "target".to_string()
        } else {
            format!("l{}", i - 1)
        };
        entries.push(link(&format!("l{i}"), &to));
    }
    let mut t = tree(entries);
    assert!(t.stat_path(ROOT, "l39", true).is_ok());
    assert_eq!(t.stat_path(ROOT, "l40", true).map(|_| ()), Err(Errno::Loop));
}

#[test]
fn dotdot_inside_the_tree_is_fine() {
    let mut t = tree(vec![file("d/e/f", "x")]);
    let found = t.stat_path(ROOT, "d/e/../e/./f", true).unwrap();
    assert_eq!(found.kind, NodeType::File);
}

#[test]
fn relative_symlinks_resolve_from_their_directory() {
    let mut t = tree(vec![
        file("d/real", "x"),
        link("d/l", "real"),
        link("top", "d/l"),
    ]);
    assert_eq!(t.stat_path(ROOT, "top", true).unwrap().size, 1);
    assert_eq!(
        t.stat_path(ROOT, "top", false).unwrap().kind,
        NodeType::Symlink
    );
}

#[test]
fn dotdot_above_an_opened_subdirectory_is_an_escape() {
    let mut t = tree(vec![file("d/f", ""), file("g", "")]);
    let (d, _) = t.open(ROOT, "d", READ).unwrap();
    assert_eq!(t.stat_path(d, "../g", true).map(|_| ()), Err(Errno::Perm));
}

// --- open -------------------------------------------------------------------

#[test]
fn open_errors() {
    let mut t = tree(vec![file("f", "x"), dir("d"), link("l", "f")]);
    let with = |f: fn(&mut OpenHow)| {
        let mut how = READ;
        f(&mut how);
        how
    };
    let cases: Vec<(&str, OpenHow, Errno)> = vec![
        ("missing", READ, Errno::Noent),
        (
            "f",
            with(|h| {
                h.create = true;
                h.exclusive = true;
            }),
            Errno::Exist,
        ),
        ("f", with(|h| h.directory = true), Errno::Notdir),
        ("d", with(|h| h.write = true), Errno::Isdir),
        ("d", with(|h| h.truncate = true), Errno::Isdir),
        ("l", with(|h| h.follow = false), Errno::Loop),
        ("new/", CREATE, Errno::Isdir),
        (
            "d",
            with(|h| {
                h.directory = true;
                h.create = true;
            }),
            Errno::Inval,
        ),
        ("f/", READ, Errno::Notdir),
    ];
    for (path, how, want) in cases {
        assert_eq!(
            t.open(ROOT, path, how).map(|_| ()),
            Err(want),
            "{path:?} {how:?}"
        );
    }
}

#[test]
fn open_creates_and_truncates() {
    let mut t = tree(vec![file("f", "hello")]);
    let (new, kind) = t.open(ROOT, "new", CREATE).unwrap();
    assert_eq!((kind, t.file_len(new)), (NodeType::File, Ok(0)));
    let (f, _) = t
        .open(
            ROOT,
            "f",
            OpenHow {
                truncate: true,
                ..CREATE
            },
        )
        .unwrap();
    assert_eq!(t.file_len(f), Ok(0));
    assert_eq!(t.bytes(), 0);
}

#[test]
fn open_follows_a_symlink_to_a_file() {
    let mut t = tree(vec![file("f", "hello"), link("l", "f")]);
    let (ino, _) = t.open(ROOT, "l", READ).unwrap();
    assert_eq!(read_all(&t, ino), "hello");
}

// --- directories ------------------------------------------------------------

#[test]
fn directory_errors() {
    let mut t = tree(vec![file("f", ""), file("full/x", ""), dir("empty")]);
    assert_eq!(t.mkdir(ROOT, "f"), Err(Errno::Exist));
    assert_eq!(t.mkdir(ROOT, "."), Err(Errno::Exist));
    assert_eq!(t.mkdir(ROOT, "no/sub"), Err(Errno::Noent));
    assert_eq!(t.rmdir(ROOT, "full"), Err(Errno::Notempty));
    assert_eq!(t.rmdir(ROOT, "f"), Err(Errno::Notdir));
    assert_eq!(t.rmdir(ROOT, "missing"), Err(Errno::Noent));
    assert_eq!(t.unlink(ROOT, "empty"), Err(Errno::Isdir));
    assert_eq!(t.unlink(ROOT, "missing"), Err(Errno::Noent));
    assert_eq!(t.unlink(ROOT, "f/"), Err(Errno::Notdir));
}

#[test]
fn mkdir_then_rmdir_restores_the_entry_count() {
    let mut t = tree(vec![]);
    t.mkdir(ROOT, "d").unwrap();
    assert_eq!(t.entries(), 1);
    assert_eq!(t.stat(ROOT).unwrap().nlink, 3);
    t.rmdir(ROOT, "d").unwrap();
    assert_eq!((t.entries(), t.stat(ROOT).unwrap().nlink), (0, 2));
}

#[test]
fn an_unlinked_open_file_keeps_its_bytes_until_released() {
    let mut t = tree(vec![file("f", "hello")]);
    let ino = t.resolve(ROOT, "f", false).unwrap().node.unwrap();
    t.node_mut(ino).unwrap().open += 1;
    t.unlink(ROOT, "f").unwrap();
    assert_eq!((read_all(&t, ino), t.bytes()), ("hello".into(), 5));
    t.node_mut(ino).unwrap().open -= 1;
    t.release(ino);
    assert_eq!(t.bytes(), 0);
}

// --- rename and link --------------------------------------------------------

#[test]
fn rename_errors() {
    let mut t = tree(vec![file("f", ""), file("full/x", ""), dir("d"), dir("e")]);
    let cases: &[(&str, &str, Errno)] = &[
        ("missing", "x", Errno::Noent),
        ("f", "d", Errno::Isdir),
        ("d", "f", Errno::Notdir),
        ("e", "full", Errno::Notempty),
        ("d", "d/sub", Errno::Inval),
        ("f/", "g", Errno::Notdir),
        ("f", "..", Errno::Perm),
    ];
    for (from, to, want) in cases {
        assert_eq!(t.rename(ROOT, from, ROOT, to), Err(*want), "{from} -> {to}");
    }
}

#[test]
fn rename_replaces_a_file_and_frees_its_bytes() {
    let mut t = tree(vec![file("a", "new"), file("b", "older")]);
    t.rename(ROOT, "a", ROOT, "b").unwrap();
    let (b, _) = t.open(ROOT, "b", READ).unwrap();
    assert_eq!(
        (read_all(&t, b), t.bytes(), t.entries()),
        ("new".into(), 3, 1)
    );
    assert_eq!(t.stat_path(ROOT, "a", false).map(|_| ()), Err(Errno::Noent));
}

#[test]
fn rename_moves_a_directory_with_its_contents() {
    let mut t = tree(vec![file("d/x", "1"), dir("e")]);
    t.rename(ROOT, "d", ROOT, "e/d2").unwrap();
    assert!(t.stat_path(ROOT, "e/d2/x", true).is_ok());
    let e = t.resolve(ROOT, "e", false).unwrap().node.unwrap();
    let d2 = t.resolve(ROOT, "e/d2", false).unwrap().node.unwrap();
    assert_eq!(t.parent_of(d2), e);
}

#[test]
fn link_errors() {
    let mut t = tree(vec![file("f", ""), dir("d")]);
    assert_eq!(t.link(ROOT, "d", ROOT, "d2"), Err(Errno::Perm));
    assert_eq!(t.link(ROOT, "f", ROOT, "d"), Err(Errno::Exist));
    assert_eq!(t.link(ROOT, "missing", ROOT, "x"), Err(Errno::Noent));
}

#[test]
fn a_hard_link_shares_contents_and_counts_links() {
    let mut t = tree(vec![file("f", "same")]);
    t.link(ROOT, "f", ROOT, "g").unwrap();
    assert_eq!(t.stat_path(ROOT, "g", false).unwrap().nlink, 2);
    t.unlink(ROOT, "f").unwrap();
    let (g, _) = t.open(ROOT, "g", READ).unwrap();
    assert_eq!((read_all(&t, g), t.bytes()), ("same".into(), 4));
}

#[test]
fn symlink_and_readlink() {
    let mut t = tree(vec![file("f", "")]);
    t.symlink("f", ROOT, "l").unwrap();
    assert_eq!(t.readlink(ROOT, "l"), Ok("f".into()));
    assert_eq!(t.readlink(ROOT, "f"), Err(Errno::Inval));
    assert_eq!(t.symlink("x", ROOT, "f"), Err(Errno::Exist));
    assert_eq!(t.symlink("", ROOT, "e"), Err(Errno::Noent));
}

// --- limits -----------------------------------------------------------------

#[test]
fn a_write_past_the_byte_limit_is_short_then_enospc() {
    let mut t = small_tree(10, 10);
    let (f, _) = t.open(ROOT, "f", CREATE).unwrap();
    assert_eq!(t.write_at(f, &[b"12345678"], 0), Ok(8));
    assert_eq!(t.write_at(f, &[b"abcd"], 8), Ok(2));
    assert_eq!(t.write_at(f, &[b"z"], 10), Err(Errno::Nospc));
    assert_eq!(t.bytes(), 10);
}

#[test]
fn overwriting_inside_a_full_file_still_works() {
    let mut t = small_tree(4, 10);
    let (f, _) = t.open(ROOT, "f", CREATE).unwrap();
    t.write_at(f, &[b"full"], 0).unwrap();
    assert_eq!(t.write_at(f, &[b"FU"], 1), Ok(2));
    assert_eq!(read_all(&t, f), "fFUl");
}

#[test]
fn extending_past_the_byte_limit_is_enospc() {
    let mut t = small_tree(10, 10);
    let (f, _) = t.open(ROOT, "f", CREATE).unwrap();
    assert_eq!(t.set_size(f, 11), Err(Errno::Nospc));
    assert_eq!(t.set_size(f, 10), Ok(()));
    assert_eq!(t.write_at(f, &[b"x"], 100), Err(Errno::Nospc));
}

#[test]
fn a_sparse_write_zero_fills() {
    let mut t = small_tree(100, 10);
    let (f, _) = t.open(ROOT, "f", CREATE).unwrap();
    t.write_at(f, &[b"x"], 3).unwrap();
    let mut buf = [9u8; 4];
    assert_eq!(t.read_at(f, &mut buf, 0), Ok(4));
    assert_eq!(&buf, b"\0\0\0x");
}

#[test]
fn creating_past_the_entry_limit_is_enospc() {
    let mut t = small_tree(100, 2);
    t.mkdir(ROOT, "a").unwrap();
    t.open(ROOT, "b", CREATE).unwrap();
    assert_eq!(t.mkdir(ROOT, "c"), Err(Errno::Nospc));
    assert_eq!(t.open(ROOT, "c", CREATE).map(|_| ()), Err(Errno::Nospc));
    assert_eq!(t.symlink("a", ROOT, "c"), Err(Errno::Nospc));
    assert_eq!(t.link(ROOT, "b", ROOT, "c"), Err(Errno::Nospc));
}

#[test]
fn symlink_targets_count_as_bytes() {
    let mut t = small_tree(3, 10);
    assert_eq!(t.symlink("abcd", ROOT, "l"), Err(Errno::Nospc));
    t.symlink("abc", ROOT, "l").unwrap();
    assert_eq!(t.bytes(), 3);
}

// --- fuel owed --------------------------------------------------------------

#[test]
fn walking_a_path_owes_fuel_per_component() {
    let mut t = tree(vec![file("a/b/c/d", "")]);
    t.take_fuel();
    t.stat_path(ROOT, "a/b/c/d", true).unwrap();
    let four = t.take_fuel();
    t.stat_path(ROOT, "a", true).unwrap();
    let one = t.take_fuel();
    assert_eq!(four, 4 * one);
}

#[test]
fn zero_filling_owes_fuel_per_byte() {
    let mut t = small_tree(1 << 20, 10);
    let (f, _) = t.open(ROOT, "f", CREATE).unwrap();
    t.take_fuel();
    t.set_size(f, 1 << 20).unwrap();
    assert_eq!(t.take_fuel(), crate::engine::host_fuel::copy_cost(1 << 20));
}

#[test]
fn the_first_change_to_an_input_file_owes_its_copy() {
    let mut t = tree(vec![file("f", &"x".repeat(4096))]);
    let (f, _) = t.open(ROOT, "f", READ).unwrap();
    t.take_fuel();
    t.write_at(f, &[b"y"], 0).unwrap();
    let first = t.take_fuel();
    t.write_at(f, &[b"z"], 0).unwrap();
    let second = t.take_fuel();
    assert_eq!(first - second, crate::engine::host_fuel::copy_cost(4096));
}

// --- time ---------------------------------------------------------------

#[test]
fn changes_are_stamped_with_the_virtual_clock() {
    let mut t = tree(vec![file("f", "")]);
    let time = crate::engine::wasi::VirtualTime::default();
    t.set_clock(time.clone());
    let before = t.stat_path(ROOT, "f", true).unwrap().mtim;
    assert_eq!(
        before,
        crate::engine::wasi::VIRTUAL_EPOCH_UNIX_SECS * 1_000_000_000
    );
    time.advance_for_test(5_000);
    let (f, _) = t.open(ROOT, "f", CREATE).unwrap();
    t.write_at(f, &[b"x"], 0).unwrap();
    assert_eq!(t.stat(f).unwrap().mtim, before + 5_000);
}

// --- collection -------------------------------------------------------------

fn collected(t: &mut Tree, patterns: &[&str]) -> Vec<String> {
    let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
    super::collect::collect(t, &patterns)
        .into_iter()
        .map(|f| f.path)
        .collect()
}

#[test]
fn collection_takes_new_and_changed_files_in_path_order() {
    let mut t = tree(vec![file("in/a.txt", "a"), file("in/b.txt", "b")]);
    let (b, _) = t.open(ROOT, "in/b.txt", CREATE).unwrap();
    t.write_at(b, &[b"B"], 0).unwrap();
    t.mkdir(ROOT, "out").unwrap();
    t.open(ROOT, "out/z.txt", CREATE).unwrap();
    t.open(ROOT, "a.txt", CREATE).unwrap();
    assert_eq!(
        collected(&mut t, &["**"]),
        ["a.txt", "in/b.txt", "out/z.txt"]
    );
}

#[test]
fn a_star_does_not_cross_directories() {
    let mut t = tree(vec![]);
    t.mkdir(ROOT, "out").unwrap();
    t.mkdir(ROOT, "out/sub").unwrap();
    t.open(ROOT, "out/a.png", CREATE).unwrap();
    t.open(ROOT, "out/sub/b.png", CREATE).unwrap();
    assert_eq!(collected(&mut t, &["out/*.png"]), ["out/a.png"]);
    assert_eq!(
        collected(&mut t, &["out/**/*.png"]),
        ["out/a.png", "out/sub/b.png"]
    );
}

#[test]
fn files_deeper_than_the_longest_path_are_not_collected() {
    let mut t = tree(vec![]);
    let name = "n".repeat(200);
    let mut dir = ROOT;
    for _ in 0..30 {
        t.mkdir(dir, &name).unwrap();
        dir = t.open(dir, &name, READ).unwrap().0;
    }
    t.open(dir, "deep", CREATE).unwrap();
    t.open(ROOT, "shallow", CREATE).unwrap();
    assert_eq!(collected(&mut t, &["**"]), ["shallow"]);
}

#[test]
fn a_moved_input_file_is_collected_at_its_new_path() {
    let mut t = tree(vec![file("in/a", "a"), dir("out")]);
    t.rename(ROOT, "in/a", ROOT, "out/a").unwrap();
    assert_eq!(collected(&mut t, &["**"]), ["out/a"]);
}

#[test]
fn collected_files_are_cut_at_exactly_the_room_left() {
    let mut files: Vec<_> = ["aaaa", "bbbb", "cccc"]
        .iter()
        .enumerate()
        .map(|(i, c)| super::CollectedFile {
            path: format!("{i}"),
            contents: Bytes::from(c.to_string()),
        })
        .collect();
    assert!(super::cut_files(&mut files, 6));
    let kept: Vec<_> = files.iter().map(|f| f.contents.clone()).collect();
    assert_eq!(kept, [Bytes::from("aaaa"), Bytes::from("bb")]);
}

#[test]
fn files_that_fit_are_not_cut() {
    let mut files = vec![super::CollectedFile {
        path: "a".into(),
        contents: Bytes::from("abc"),
    }];
    assert!(!super::cut_files(&mut files, 3));
    assert_eq!(files[0].contents, Bytes::from("abc"));
}
