//! What a new operator sees on the first run of the real binary: a taken
//! port is explained, and logs that go to a pipe carry no colour codes.

use std::{
    io::{BufRead, BufReader, Read},
    net::TcpListener,
    process::{Command, Stdio},
};

fn server() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmwiz-server"));
    cmd.env_remove("WASMWIZ_LISTEN")
        .env_remove("WASMWIZ_CONFIG")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("NO_COLOR");
    cmd
}

#[test]
fn taken_port_names_the_address_and_how_to_choose_another() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = server()
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("running the server binary");
    assert!(!out.status.success(), "the server started on a taken port");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot listen on {addr}: the address is already in use"
        )),
        "{stderr}"
    );
    for hint in [
        "--listen",
        "WASMWIZ_LISTEN",
        "cargo run -p wasmwiz-server -- --listen",
    ] {
        assert!(stderr.contains(hint), "no `{hint}` hint in: {stderr}");
    }
}

#[test]
fn logs_written_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = server()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        // debug: the store logs its startup queries, so there are lines to check.
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the server binary");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "server exited before listening"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("DEBUG"), "no startup log lines: {logs:.500}");
    let first_line = logs.lines().next().unwrap_or_default();
    assert!(
        !logs.contains("\x1b["),
        "colour codes in piped logs, e.g. {first_line:?}"
    );
}
