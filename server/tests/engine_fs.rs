//! The guest's in-memory filesystem through the whole engine: real guests
//! (the raw-call probe `fsprobe`, and C and Rust programs using their
//! standard libraries) against a request's tree, errnos, limits, fuel,
//! determinism and the files collected after the run.

use std::{path::PathBuf, time::Duration};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wasmwiz_server::engine::{
    vfs::{CollectedFile, FsInput, FsInputKind, FsSpec},
    Job, Outcome, OutputChunk, Report, Sandbox, SandboxConfig, StdinSource, Stream, ThreadTrace,
};

const HANG_GUARD: Duration = Duration::from_secs(60);

// WASI errnos.
const EBADF: i32 = 8;
const EEXIST: i32 = 20;
const EISDIR: i32 = 31;
const ELOOP: i32 = 32;
const ENOENT: i32 = 44;
const ENOSPC: i32 = 51;
const ENOTDIR: i32 = 54;
const ENOTEMPTY: i32 = 55;
const ENOTSUP: i32 = 58;
const EPERM: i32 = 63;
const EINVAL: i32 = 28;

// WASI file types.
const DIRECTORY: u8 = 3;
const REGULAR_FILE: u8 = 4;
const SYMLINK: u8 = 7;

fn guest(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/guests")
        .join(format!("{name}.wasm"));
    std::fs::read(path).unwrap()
}

fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig {
        workers: 2,
        ..SandboxConfig::default()
    })
    .unwrap()
}

fn file(path: &str, contents: impl Into<Bytes>) -> FsInput {
    FsInput {
        path: path.into(),
        kind: FsInputKind::File(contents.into()),
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

fn fs(entries: Vec<FsInput>) -> FsSpec {
    FsSpec {
        entries,
        collect: vec![],
        max_bytes: 64 << 20,
        max_entries: 10_000,
    }
}

struct Opts {
    args: Vec<String>,
    fs: Option<FsSpec>,
    fuel: u64,
    output: u64,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            args: vec![],
            fs: Some(fs(vec![])),
            fuel: 10_000_000_000,
            output: 1 << 20,
        }
    }
}

struct Run {
    report: Report,
    stdout: String,
    stderr: String,
}

async fn run_on(sb: &Sandbox, name: &str, o: Opts, trace: Option<ThreadTrace>) -> Run {
    let module = sb.compile(&guest(name)).expect("module compiles");
    let job = Job {
        module,
        program_name: format!("{name}.wasm"),
        args: o.args,
        env: vec![],
        random_seed: 0,
        stdin: StdinSource::Bytes(Bytes::new()),
        fuel: o.fuel,
        memory_bytes: 256 << 20,
        timeout: Duration::from_secs(30),
        max_output_bytes: o.output,
        fs: o.fs,
    };
    let (tx, mut rx) = mpsc::channel::<OutputChunk>(16);
    let collector = tokio::spawn(async move {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        while let Some(chunk) = rx.recv().await {
            match chunk.stream {
                Stream::Stdout => out.extend_from_slice(&chunk.data),
                Stream::Stderr => err.extend_from_slice(&chunk.data),
            }
        }
        (out, err)
    });
    let execution = sb.execute_traced(job, tx, CancellationToken::new(), trace);
    let report = tokio::time::timeout(HANG_GUARD, execution)
        .await
        .expect("execution ends");
    let (out, err) = collector.await.unwrap();
    Run {
        report,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

async fn run(name: &str, o: Opts) -> Run {
    run_on(&sandbox(), name, o, None).await
}

/// Runs the probe with `script` (words) over `tree`; returns its lines.
async fn probe(tree: Vec<FsInput>, script: &str) -> Vec<String> {
    probe_in(fs(tree), script).await
}

async fn probe_in(spec: FsSpec, script: &str) -> Vec<String> {
    let r = run(
        "fsprobe",
        Opts {
            args: script.split_whitespace().map(str::to_string).collect(),
            fs: Some(spec),
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(
        r.report.outcome,
        Outcome::Success,
        "{:?} {}",
        r.report,
        r.stderr
    );
    r.stdout.lines().map(str::to_string).collect()
}

fn errno(op: &str, n: i32) -> String {
    format!("{op}: errno={n}")
}

// --- the preopen ------------------------------------------------------------

#[tokio::test]
async fn without_a_filesystem_fd_3_is_not_a_preopen() {
    let r = run(
        "fsprobe",
        Opts {
            args: vec!["prestat".into(), "3".into(), "mkdir".into(), "x".into()],
            fs: None,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(
        r.stdout,
        format!("{}\n{}\n", errno("prestat", EBADF), errno("mkdir", EBADF))
    );
}

#[tokio::test]
async fn with_a_filesystem_fd_3_is_the_preopen_named_slash() {
    assert_eq!(
        probe(vec![], "prestat 3 prestat 4").await,
        ["prestat: name=/".to_string(), errno("prestat", EBADF)]
    );
}

#[tokio::test]
async fn the_preopen_can_be_closed_and_renumbered() {
    let lines = probe(
        vec![file("f", "x")],
        "open . 2 0 1 1  renumber 4 3  stat f 1  close 3  stat f 1  prestat 3",
    )
    .await;
    assert_eq!(lines[1], "renumber: ok");
    assert!(lines[2].starts_with("stat: type=4"), "{lines:?}");
    assert_eq!(lines[3], "close: ok");
    assert_eq!(lines[4], errno("stat", EBADF));
    assert_eq!(lines[5], errno("prestat", EBADF));
}

// --- files ------------------------------------------------------------------

#[tokio::test]
async fn a_file_reads_back_what_was_written() {
    let lines = probe(
        vec![],
        "open new.txt 1 0 3 0  write 4 hello  seek 4 0 0  read 4 100  pread 4 3 1  tell 4",
    )
    .await;
    assert_eq!(
        lines,
        [
            "open: fd=4",
            "write: n=5",
            "seek: pos=0",
            "read: data=hello",
            "pread: data=ell",
            "tell: pos=5"
        ]
    );
}

#[tokio::test]
async fn input_files_hold_the_requests_bytes() {
    let lines = probe(
        vec![file("in/a.txt", "from the request")],
        "open in/a.txt 0 0 1 0  read 4 100",
    )
    .await;
    assert_eq!(lines[1], "read: data=from the request");
}

#[tokio::test]
async fn append_writes_at_the_end() {
    let lines = probe(
        vec![file("log", "one ")],
        "open log 0 1 3 0  write 4 two  pread 4 100 0",
    )
    .await;
    assert_eq!(lines[2], "pread: data=one two");
}

#[tokio::test]
async fn pwrite_on_an_append_fd_appends_as_on_linux() {
    let lines = probe(
        vec![file("f", "hello")],
        "open f 0 1 3 0  pwrite 4 0 X  pread 4 10 0",
    )
    .await;
    assert_eq!(lines[2], "pread: data=helloX");
}

#[tokio::test]
async fn set_size_on_a_file_not_opened_for_writing_is_einval() {
    let lines = probe(
        vec![file("f", "abc")],
        "open f 0 0 1 0  truncate 4 1  fstat 4",
    )
    .await;
    assert_eq!(lines[1], errno("truncate", EINVAL));
    assert!(lines[2].starts_with("fstat: type=4 size=3 "), "{lines:?}");
}

#[tokio::test]
async fn truncate_on_open_empties_the_file() {
    let lines = probe(vec![file("f", "old contents")], "open f 8 0 3 0  fstat 4").await;
    assert!(lines[1].starts_with("fstat: type=4 size=0 "), "{lines:?}");
}

#[tokio::test]
async fn set_size_extends_with_zeros_and_truncates() {
    let lines = probe(
        vec![file("f", "abc")],
        "open f 0 0 3 0  truncate 4 5  fstat 4  truncate 4 1  read 4 10",
    )
    .await;
    assert!(lines[2].starts_with("fstat: type=4 size=5 "), "{lines:?}");
    assert_eq!(lines[4], "read: data=a");
}

#[tokio::test]
async fn pwrite_past_the_end_leaves_a_zero_filled_gap() {
    let lines = probe(vec![], "open f 1 0 3 0  pwrite 4 4 x  fstat 4  pread 4 1 4").await;
    assert!(lines[2].starts_with("fstat: type=4 size=5 "), "{lines:?}");
    assert_eq!(lines[3], "pread: data=x");
}

#[tokio::test]
async fn reading_a_write_only_file_and_writing_a_read_only_one_are_ebadf() {
    let lines = probe(
        vec![file("f", "x")],
        "open f 0 0 2 0  read 4 1  open f 0 0 1 0  write 5 y",
    )
    .await;
    assert_eq!(lines[1], errno("read", EBADF));
    assert_eq!(lines[3], errno("write", EBADF));
}

#[tokio::test]
async fn advise_and_sync_succeed_and_allocate_is_not_supported() {
    let lines = probe(
        vec![file("f", "x")],
        "open f 0 0 3 0  advise 4  sync 4  allocate 4 10",
    )
    .await;
    assert_eq!(
        &lines[1..],
        ["advise: ok", "sync: ok", &errno("allocate", ENOTSUP)]
    );
}

#[tokio::test]
async fn fd_flags_report_append_after_setting_it() {
    let lines = probe(
        vec![file("f", "x")],
        "open f 0 0 3 0  fdstat 4  setflags 4 1  fdstat 4",
    )
    .await;
    assert_eq!(
        &lines[1..],
        [
            "fdstat: type=4 flags=0",
            "setflags: ok",
            "fdstat: type=4 flags=1"
        ]
    );
}

// --- errors -----------------------------------------------------------------

#[tokio::test]
async fn path_calls_answer_the_errnos_of_a_real_directory() {
    let tree = vec![
        file("f", "x"),
        file("full/x", ""),
        dir("empty"),
        link("loop1", "loop2"),
        link("loop2", "loop1"),
        link("abs", "/etc/passwd"),
        link("up", "../f"),
    ];
    let cases: &[(&str, &str, i32)] = &[
        ("open missing 0 0 1 1", "open", ENOENT),
        ("open f 5 0 3 1", "open", EEXIST),
        ("open f 2 0 1 1", "open", ENOTDIR),
        ("open empty 0 0 2 1", "open", EISDIR),
        ("open loop1 0 0 1 1", "open", ELOOP),
        ("open loop1 0 0 1 0", "open", ELOOP),
        ("open ../f 0 0 1 1", "open", EPERM),
        ("open empty/../../f 0 0 1 1", "open", EPERM),
        ("open abs 0 0 1 1", "open", EPERM),
        ("open up 0 0 1 1", "open", EPERM),
        ("open f/ 0 0 1 1", "open", ENOTDIR),
        ("mkdir f", "mkdir", EEXIST),
        ("mkdir no/such", "mkdir", ENOENT),
        ("rmdir full", "rmdir", ENOTEMPTY),
        ("rmdir f", "rmdir", ENOTDIR),
        ("unlink empty", "unlink", EISDIR),
        ("unlink missing", "unlink", ENOENT),
        ("rename f empty", "rename", EISDIR),
        ("rename empty full", "rename", ENOTEMPTY),
        ("rename empty empty/sub", "rename", EINVAL),
        ("link empty e2", "link", EPERM),
        ("link f full/x", "link", EEXIST),
        ("symlink x f", "symlink", EEXIST),
        ("readlink f", "readlink", EINVAL),
        ("stat ../x 1", "stat", EPERM),
        ("close 9", "close", EBADF),
    ];
    let script: Vec<&str> = cases.iter().map(|(s, _, _)| *s).collect();
    let lines = probe(tree, &script.join("  ")).await;
    for ((script, op, want), got) in cases.iter().zip(&lines) {
        assert_eq!(got, &errno(op, *want), "{script}");
    }
    assert_eq!(lines.len(), cases.len());
}

// --- directories, links -----------------------------------------------------

#[tokio::test]
async fn readdir_lists_dot_dotdot_then_names_in_order_with_cookies() {
    let lines = probe(
        vec![file("b", "12"), dir("a"), link("c", "b")],
        "open . 2 0 1 1  readdir 4 4096 0  readdir 4 4096 3",
    )
    .await;
    assert_eq!(
        lines[1],
        format!(
            "readdir: .@1:{DIRECTORY} ..@2:{DIRECTORY} a@3:{DIRECTORY} b@4:{REGULAR_FILE} c@5:{SYMLINK} used=126"
        )
    );
    assert_eq!(
        lines[2],
        format!("readdir: b@4:{REGULAR_FILE} c@5:{SYMLINK} used=50")
    );
}

#[tokio::test]
async fn readdir_fills_a_small_buffer_exactly() {
    let lines = probe(vec![file("name", "")], "open . 2 0 1 1  readdir 4 30 0").await;
    assert!(lines[1].ends_with("used=30"), "{lines:?}");
}

#[tokio::test]
async fn a_removed_directory_lists_only_dot_and_dotdot() {
    let lines = probe(
        vec![file("d/x", "")],
        "open d 2 0 1 1  unlink d/x  rmdir d  readdir 4 4096 0",
    )
    .await;
    assert_eq!(
        lines[3],
        format!("readdir: .@1:{DIRECTORY} ..@2:{DIRECTORY} used=51")
    );
}

#[tokio::test]
async fn mkdir_rename_and_rmdir_change_the_tree() {
    let lines = probe(
        vec![file("d/f", "x")],
        "mkdir e  rename d/f e/g  stat e/g 0  rmdir d  stat d 0",
    )
    .await;
    assert_eq!(lines[1], "rename: ok");
    assert!(lines[2].starts_with("stat: type=4 size=1"), "{lines:?}");
    assert_eq!(lines[3], "rmdir: ok");
    assert_eq!(lines[4], errno("stat", ENOENT));
}

#[tokio::test]
async fn a_hard_link_shares_the_file() {
    let lines = probe(
        vec![file("f", "shared")],
        "link f g  unlink f  stat g 0  open g 0 0 1 0  read 4 10",
    )
    .await;
    assert!(
        lines[2].starts_with("stat: type=4 size=6 nlink=1"),
        "{lines:?}"
    );
    assert_eq!(lines[4], "read: data=shared");
}

#[tokio::test]
async fn symlinks_are_created_read_and_followed() {
    let lines = probe(
        vec![file("d/real", "abc")],
        "symlink d/real l  readlink l  stat l 1  stat l 0",
    )
    .await;
    assert_eq!(lines[1], "readlink: target=d/real");
    assert!(lines[2].starts_with("stat: type=4 size=3"), "{lines:?}");
    assert!(lines[3].starts_with("stat: type=7 size=6"), "{lines:?}");
}

#[tokio::test]
async fn paths_resolve_relative_to_an_opened_directory_and_cannot_climb_out_of_it() {
    let lines = probe(
        vec![file("d/x", "in d"), file("top", "")],
        "open d 2 0 1 1  open 4:x 0 0 1 0  read 5 10  stat 4:../top 1",
    )
    .await;
    assert_eq!(lines[2], "read: data=in d");
    assert_eq!(lines[3], errno("stat", EPERM));
}

#[tokio::test]
async fn an_unlinked_open_file_stays_readable() {
    let lines = probe(
        vec![file("f", "still here")],
        "open f 0 0 1 0  unlink f  read 4 20  stat f 0",
    )
    .await;
    assert_eq!(lines[2], "read: data=still here");
    assert_eq!(lines[3], errno("stat", ENOENT));
}

// --- times and inodes -------------------------------------------------------

#[tokio::test]
async fn input_files_carry_the_virtual_epoch_and_creation_order_inodes() {
    let lines = probe(vec![file("a", ""), file("b", "")], "stat a 0  stat b 0").await;
    let epoch = 1_704_067_200u64 * 1_000_000_000;
    assert_eq!(
        lines[0],
        format!("stat: type=4 size=0 nlink=1 ino=2 mtim={epoch}")
    );
    assert_eq!(
        lines[1],
        format!("stat: type=4 size=0 nlink=1 ino=3 mtim={epoch}")
    );
}

#[tokio::test]
async fn set_times_stores_the_given_times() {
    let lines = probe(vec![file("f", "")], "settimes f 7 12345  stat f 0").await;
    assert!(lines[1].ends_with("mtim=12345"), "{lines:?}");
}

// --- limits -----------------------------------------------------------------

#[tokio::test]
async fn writes_past_the_byte_limit_are_short_then_enospc() {
    let mut spec = fs(vec![file("in", "1234")]);
    spec.max_bytes = 10;
    let lines = probe_in(
        spec,
        "open f 1 0 3 0  write 4 abcd  write 4 xyz  write 4 z  truncate 4 9",
    )
    .await;
    assert_eq!(
        &lines[1..],
        [
            "write: n=4",
            "write: n=2",
            &errno("write", ENOSPC),
            &errno("truncate", ENOSPC)
        ]
    );
}

#[tokio::test]
async fn creating_past_the_entry_limit_is_enospc() {
    let mut spec = fs(vec![file("a/b", "")]);
    spec.max_entries = 3;
    let lines = probe_in(
        spec,
        "mkdir c  mkdir d  open e 1 0 3 0  unlink a/b  mkdir d",
    )
    .await;
    assert_eq!(
        lines,
        [
            "mkdir: ok".to_string(),
            errno("mkdir", ENOSPC),
            errno("open", ENOSPC),
            "unlink: ok".to_string(),
            "mkdir: ok".to_string()
        ]
    );
}

#[tokio::test]
async fn an_invalid_tree_ends_the_run_before_the_guest_starts() {
    let r = run(
        "fsprobe",
        Opts {
            args: vec!["mkdir".into(), "x".into()],
            fs: Some(fs(vec![file("a", ""), file("a/b", "")])),
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(r.report.outcome, Outcome::Trap);
    assert!(
        r.report.message.contains("fs.entries[1]"),
        "{}",
        r.report.message
    );
    assert_eq!(r.stdout, "");
}

// --- collection -------------------------------------------------------------

fn names(files: &[CollectedFile]) -> Vec<&str> {
    files.iter().map(|f| f.path.as_str()).collect()
}

#[tokio::test]
async fn files_matching_collect_that_the_run_wrote_come_back_in_path_order() {
    let mut spec = fs(vec![file("in/a.txt", "unchanged"), dir("out")]);
    spec.collect = vec!["**".into()];
    let r = run(
        "fsprobe",
        Opts {
            args:
                "open out/z 1 0 3 0 write 4 zz open out/b 1 0 3 0 write 5 bb open in/a.txt 0 0 1 0"
                    .split(' ')
                    .map(str::to_string)
                    .collect(),
            fs: Some(spec),
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(names(&r.report.files), ["out/b", "out/z"]);
    assert_eq!(r.report.files[1].contents, Bytes::from("zz"));
}

#[tokio::test]
async fn collect_patterns_keep_star_within_a_directory() {
    let mut spec = fs(vec![dir("out/sub")]);
    spec.collect = vec!["out/*.png".into()];
    let r = run(
        "fsprobe",
        Opts {
            args: "open out/a.png 1 0 3 0 open out/sub/b.png 1 0 3 0 open out/c.txt 1 0 3 0"
                .split(' ')
                .map(str::to_string)
                .collect(),
            fs: Some(spec),
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(names(&r.report.files), ["out/a.png"]);
}

#[tokio::test]
async fn files_are_collected_after_a_nonzero_exit_too() {
    let mut spec = fs(vec![]);
    spec.collect = vec!["*".into()];
    let r = run(
        "fsprobe",
        Opts {
            args: "open f 1 0 3 0 write 4 x bogus"
                .split(' ')
                .map(str::to_string)
                .collect(),
            fs: Some(spec),
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(r.report.outcome, Outcome::ExitNonzero);
    assert_eq!(names(&r.report.files), ["f"]);
}

#[tokio::test]
async fn collected_files_past_the_output_limit_are_cut_and_the_outcome_is_output_limit() {
    let mut spec = fs(vec![file("in", "0123456789abcdefghij")]);
    spec.collect = vec!["out".into()];
    let r = run(
        "fscopy",
        Opts {
            args: vec!["in".into(), "out".into()],
            fs: Some(spec),
            output: 26,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(r.stdout, "copied 20 bytes\n");
    assert_eq!(r.report.outcome, Outcome::OutputLimit, "{:?}", r.report);
    assert!(r.report.output_truncated);
    assert_eq!(r.report.files[0].contents, Bytes::from("0123456789"));
}

/// Runs the probe on `script` with a tree collecting everything, stopped by
/// a `timeout` or a cancel after `cancel_after`.
async fn stopped_run(script: &str, timeout: Duration, cancel_after: Option<Duration>) -> Report {
    let sb = sandbox();
    let mut spec = fs(vec![]);
    spec.collect = vec!["**".into()];
    let job = Job {
        module: sb.compile(&guest("fsprobe")).unwrap(),
        program_name: "fsprobe.wasm".into(),
        args: script.split_whitespace().map(str::to_string).collect(),
        env: vec![],
        random_seed: 0,
        stdin: StdinSource::Bytes(Bytes::new()),
        fuel: u64::MAX / 2,
        memory_bytes: 64 << 20,
        timeout,
        max_output_bytes: 1 << 20,
        fs: Some(spec),
    };
    let (tx, mut rx) = mpsc::channel::<OutputChunk>(16);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let cancel = CancellationToken::new();
    if let Some(after) = cancel_after {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            cancel.cancel();
        });
    }
    tokio::time::timeout(HANG_GUARD, sb.execute(job, tx, cancel))
        .await
        .expect("execution ends")
}

const SPIN_FOREVER: &str = "open made 1 0 3 0  write 4 x  spin 100000000000 made";

#[tokio::test]
async fn files_are_collected_after_a_timeout() {
    let report = stopped_run(SPIN_FOREVER, Duration::from_millis(300), None).await;
    assert_eq!(report.outcome, Outcome::Timeout);
    assert_eq!(names(&report.files), ["made"]);
}

#[tokio::test]
async fn nothing_is_collected_from_a_cancelled_run() {
    let report = stopped_run(
        SPIN_FOREVER,
        Duration::from_secs(30),
        Some(Duration::from_millis(300)),
    )
    .await;
    assert_eq!(report.outcome, Outcome::Cancelled);
    assert!(report.files.is_empty(), "{:?}", report.files);
}

// --- real programs ----------------------------------------------------------

#[tokio::test]
async fn fsreport_counts_the_input_text_files() {
    let mut spec = fs(vec![
        file("input/b.txt", "one two\nthree\n"),
        file("input/a.txt", "solo\n"),
        file("input/skip.bin", "not text"),
    ]);
    spec.collect = vec!["out/*".into()];
    let r = run(
        "fsreport",
        Opts {
            fs: Some(spec),
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(r.stdout, "wrote out/report.txt (2 files)\n", "{}", r.stderr);
    assert_eq!(names(&r.report.files), ["out/report.txt"]);
    assert_eq!(
        r.report.files[0].contents,
        Bytes::from("a.txt 1 1\nb.txt 2 3\ntotal 3 4\n")
    );
}

#[tokio::test]
async fn fstree_walks_copies_and_renames_with_std_fs() {
    let mut spec = fs(vec![
        file("input/x.txt", "xx"),
        file("input/sub/y.txt", "yyy"),
        link("input/l", "x.txt"),
    ]);
    spec.collect = vec!["out/**".into()];
    let r = run(
        "rust_fstree",
        Opts {
            fs: Some(spec),
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(
        r.stdout, "listed 4 entries, copied 2 files\n",
        "{}",
        r.stderr
    );
    assert_eq!(
        names(&r.report.files),
        ["out/copies/sub_y.txt", "out/copies/x.txt", "out/tree.txt"]
    );
    assert_eq!(
        r.report.files[2].contents,
        Bytes::from("/input/l -> x.txt\n/input/sub/\n/input/sub/y.txt 3\n/input/x.txt 2\n")
    );
}

#[tokio::test]
async fn fscopy_copies_a_large_file_exactly() {
    let data: Vec<u8> = (0..(3 << 20) + 7)
        .map(|i: u32| (i * 7 % 251) as u8)
        .collect();
    let mut spec = fs(vec![file("in.bin", data.clone())]);
    spec.collect = vec!["out.bin".into()];
    let r = run(
        "fscopy",
        Opts {
            args: vec!["in.bin".into(), "out.bin".into()],
            fs: Some(spec),
            output: 8 << 20,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(r.report.outcome, Outcome::Success, "{}", r.stderr);
    assert_eq!(r.report.files[0].contents, Bytes::from(data));
}

// --- determinism and fuel ---------------------------------------------------

#[tokio::test]
async fn three_runs_give_identical_files_output_and_fuel() {
    let sb = sandbox();
    let mut runs = Vec::new();
    for _ in 0..3 {
        let mut spec = fs(vec![
            file("input/a.txt", "a b c\n"),
            file("input/b.txt", "d\n"),
        ]);
        spec.collect = vec!["**".into()];
        let r = run_on(
            &sb,
            "fsreport",
            Opts {
                fs: Some(spec),
                ..Opts::default()
            },
            None,
        )
        .await;
        let stat = run_on(
            &sb,
            "fsprobe",
            Opts {
                args: "open n 1 0 3 0 write 4 x fstat 4 readdir 3 4096 0"
                    .split(' ')
                    .map(str::to_string)
                    .collect(),
                ..Opts::default()
            },
            None,
        )
        .await;
        runs.push((
            r.report.files,
            r.report.fuel_consumed,
            stat.stdout,
            stat.report.fuel_consumed,
        ));
    }
    assert!(runs[0].1 > 0);
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[1], runs[2]);
}

#[tokio::test]
async fn path_walks_cost_fuel_per_component() {
    let deep = vec!["d"; 100].join("/");
    let tree = || fs(vec![file(&format!("{deep}/f"), "")]);
    let fuel = |path: String| {
        let spec = tree();
        async move {
            run(
                "fsprobe",
                Opts {
                    args: vec!["spin".into(), "100".into(), path],
                    fs: Some(spec),
                    ..Opts::default()
                },
            )
            .await
            .report
            .fuel_consumed
        }
    };
    let shallow = fuel("d".into()).await;
    let deep = fuel(format!("{deep}/f")).await;
    // 100 more components on each of 100 calls, plus the longer path copied.
    assert!(deep > shallow + 100 * 100 * 20, "{shallow} {deep}");
}

#[tokio::test]
async fn a_host_call_heavy_fs_guest_runs_out_of_fuel_quickly() {
    let deep = vec!["d"; 128].join("/");
    let started = std::time::Instant::now();
    let r = run(
        "fsprobe",
        Opts {
            args: vec!["spin".into(), "100000000".into(), deep.clone()],
            fs: Some(fs(vec![dir(&deep)])),
            fuel: 5_000_000,
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(r.report.outcome, Outcome::OutOfFuel);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_filesystem_is_built_and_collected_off_the_runtime_threads() {
    let mut spec = fs(vec![file("a", "x")]);
    spec.collect = vec!["**".into()];
    let trace = ThreadTrace::default();
    let sb = sandbox();
    let r = run_on(
        &sb,
        "fsprobe",
        Opts {
            args: vec!["mkdir".into(), "b".into()],
            fs: Some(spec),
            ..Opts::default()
        },
        Some(trace.clone()),
    )
    .await;
    assert_eq!(r.report.outcome, Outcome::Success);
    let built = trace.threads_of("fs_build");
    let collected = trace.threads_of("fs_collect");
    assert_eq!(
        (built.len(), collected.len()),
        (1, 1),
        "{:?}",
        trace.events()
    );
    assert!(built[0].starts_with("wasmwiz-worker-"), "{built:?}");
    assert!(collected[0].starts_with("wasmwiz-worker-"), "{collected:?}");
}
