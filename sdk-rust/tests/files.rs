//! The SDK's filesystem against a real server: files in (streamed as
//! `fs_chunk`s in pieces), files back (reassembled), and batches with a
//! shared tree plus per-case entries.

mod common;

use common::{client, guest, TestServer};
use wasmwiz::{Case, Filesystem, Module, Outcome};

#[tokio::test(flavor = "multi_thread")]
async fn a_file_larger_than_one_piece_goes_in_and_comes_back_whole() {
    let server = TestServer::start().await;
    let c = client(&server, &server.admin_key).await;
    let data: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i % 253) as u8).collect();
    let output = c
        .run(Module::file(guest("fscopy.wasm")))
        .args(["in/big.bin", "out/copy.bin"])
        .fs(Filesystem::new()
            .file("in/big.bin", data.clone())
            .directory("out")
            .collect("out/*"))
        .output()
        .await
        .unwrap();
    assert_eq!(
        output.outcome,
        Outcome::Success,
        "{}",
        output.stderr_lossy()
    );
    assert_eq!(output.files.len(), 1);
    assert_eq!(output.files[0].path, "out/copy.bin");
    assert_eq!(output.files[0].contents, data);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_filesystem_the_guest_cannot_open_files() {
    let server = TestServer::start().await;
    let c = client(&server, &server.admin_key).await;
    let output = c
        .run(Module::file(guest("fscopy.wasm")))
        .args(["a", "b"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.exit_code, 1, "{}", output.stderr_lossy());
    assert!(output.files.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_directory_is_what_the_guest_reads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "solo\n").unwrap();
    std::fs::write(dir.path().join("b.txt"), "one two\nthree\n").unwrap();
    let server = TestServer::start().await;
    let c = client(&server, &server.admin_key).await;
    let output = c
        .run(Module::file(guest("fsreport.wasm")))
        .fs(Filesystem::new()
            .local_dir("input", dir.path())
            .unwrap()
            .collect("out/*"))
        .output()
        .await
        .unwrap();
    assert_eq!(
        output.outcome,
        Outcome::Success,
        "{}",
        output.stderr_lossy()
    );
    assert_eq!(
        output.files[0].contents,
        "a.txt 1 1\nb.txt 2 3\ntotal 3 4\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_cases_get_the_shared_tree_with_their_own_entries_over_it() {
    let server = TestServer::start().await;
    let c = client(&server, &server.admin_key).await;
    let results = c
        .batch(Module::file(guest("fsreport.wasm")))
        .fs(Filesystem::new()
            .file("input/a.txt", "solo\n")
            .collect("out/*"))
        .case(Case::new("shared"))
        .case(Case::new("own").fs(Filesystem::new().file("input/a.txt", "x y\n")))
        .output()
        .await
        .unwrap();
    let reports: Vec<_> = results
        .cases
        .iter()
        .map(|case| (case.name.as_str(), case.files[0].contents.clone()))
        .collect();
    assert_eq!(
        reports,
        [
            ("shared", "a.txt 1 1\ntotal 1 1\n".into()),
            ("own", "a.txt 1 2\ntotal 1 2\n".into())
        ]
    );
}
