//! `wasmwiz run` and `wasmwiz batch` with files, against a real server.

mod common;

use std::path::Path;

use common::{cli, guest, TestServer};

fn g(name: &str) -> String {
    guest(name).display().to_string()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A folder with `a.txt` and `b.txt` for fsreport.
fn texts() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "solo\n").unwrap();
    std::fs::write(dir.path().join("b.txt"), "one two\nthree\n").unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn run_mounts_a_directory_and_writes_collected_files_to_the_out_dir() {
    let server = TestServer::start().await;
    let (input, out) = (texts(), tempfile::tempdir().unwrap());
    let mount = format!("input={}", input.path().display());
    let out_dir = out.path().display().to_string();
    let args = [
        "run",
        "--mount",
        &mount,
        "--collect",
        "out/*",
        "--out-dir",
        &out_dir,
        &g("fsreport.wasm"),
    ];
    let result = cli(&server.url, Some(&server.admin_key), &args, None).await;
    assert_eq!(result.code, 0, "{result:?}");
    assert_eq!(
        read(&out.path().join("out/report.txt")),
        "a.txt 1 1\nb.txt 2 3\ntotal 3 4\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_flag_puts_the_file_at_its_base_name() {
    let server = TestServer::start().await;
    let (local, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let data = local.path().join("data.txt");
    std::fs::write(&data, "payload").unwrap();
    let (file, out_dir) = (data.display().to_string(), out.path().display().to_string());
    let args = [
        "run",
        "--file",
        &file,
        "--collect",
        "*.copy",
        "--out-dir",
        &out_dir,
        &g("fscopy.wasm"),
        "data.txt",
        "data.copy",
    ];
    let result = cli(&server.url, Some(&server.admin_key), &args, None).await;
    assert_eq!(result.code, 0, "{result:?}");
    assert_eq!(read(&out.path().join("data.copy")), "payload");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_flag_with_a_guest_path_puts_it_there() {
    let server = TestServer::start().await;
    let local = tempfile::tempdir().unwrap();
    let data = local.path().join("data.txt");
    std::fs::write(&data, "payload").unwrap();
    let file = format!("deep/in.txt={}", data.display());
    let args = [
        "run",
        "--file",
        &file,
        &g("fscopy.wasm"),
        "deep/in.txt",
        "x",
    ];
    let result = cli(&server.url, Some(&server.admin_key), &args, None).await;
    assert_eq!(
        (result.code, result.stdout.as_str()),
        (0, "copied 7 bytes\n"),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dir_flag_puts_the_directory_at_its_base_name() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let fixtures = root.path().join("fixtures");
    std::fs::create_dir(&fixtures).unwrap();
    std::fs::write(fixtures.join("in.txt"), "abc").unwrap();
    let dir = format!("{}/", fixtures.display());
    let args = [
        "run",
        "--dir",
        &dir,
        &g("fscopy.wasm"),
        "fixtures/in.txt",
        "x",
    ];
    let result = cli(&server.url, Some(&server.admin_key), &args, None).await;
    assert_eq!(
        (result.code, result.stdout.as_str()),
        (0, "copied 3 bytes\n"),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn collect_without_an_out_dir_is_a_usage_error() {
    let server = TestServer::start().await;
    let args = ["run", "--collect", "out/*", &g("fsreport.wasm")];
    let result = cli(&server.url, Some(&server.admin_key), &args, None).await;
    assert_eq!(result.code, 110, "{result:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_cases_take_their_own_dir_and_write_files_under_their_name() {
    let server = TestServer::start().await;
    let suite = tempfile::tempdir().unwrap();
    let case_dir = suite.path().join("case1/input");
    std::fs::create_dir_all(&case_dir).unwrap();
    std::fs::write(case_dir.join("a.txt"), "x y\n").unwrap();
    let cases = format!(
        r#"{{"module": "{}", "cases": [{{"name": "one", "dir": "case1", "collect": ["out/*"]}}]}}"#,
        g("fsreport.wasm")
    );
    let cases_file = suite.path().join("cases.json");
    std::fs::write(&cases_file, cases).unwrap();
    let out = tempfile::tempdir().unwrap();
    let (cases_arg, out_dir) = (
        cases_file.display().to_string(),
        out.path().display().to_string(),
    );
    let args = ["batch", &cases_arg, "--out-dir", &out_dir];
    let result = cli(&server.url, Some(&server.admin_key), &args, None).await;
    assert_eq!(result.code, 0, "{result:?}");
    assert_eq!(
        read(&out.path().join("one/out/report.txt")),
        "a.txt 1 2\ntotal 1 2\n"
    );
}
