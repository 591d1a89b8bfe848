//! `wasmwiz run -i`: the local terminal (or a pipe) attached to a running
//! guest, through the real binary against a real server.

mod common;

use std::{process::Stdio, time::Duration};

use common::{cli_command, guest, TestServer};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    process::{Child, ChildStdout},
};

fn g(name: &str) -> String {
    guest(name).display().to_string()
}

/// `wasmwiz ARGS` with stdin and stdout as pipes.
fn spawn(server: &TestServer, args: &[&str]) -> Child {
    let mut cmd = cli_command(&server.url, Some(&server.admin_key));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().expect("spawning wasmwiz")
}

/// Reads stdout until it contains `want`; returns everything read so far.
async fn read_until(stdout: &mut ChildStdout, seen: &mut String, want: &str) {
    let mut buf = [0u8; 4096];
    while !seen.contains(want) {
        let n = tokio::time::timeout(Duration::from_secs(30), stdout.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {want:?} within 30 s; got {seen:?}"))
            .unwrap();
        assert!(n > 0, "stdout ended before {want:?}; got {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

async fn exit_code(child: Child) -> (i32, String) {
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("wasmwiz exited within 30 s")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_pipe_each_answer_comes_before_the_next_line_is_sent() {
    let server = TestServer::start().await;
    let mut child = spawn(&server, &["run", "-i", &g("calc.wasm")]);
    let (mut stdin, mut stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    let mut seen = String::new();
    stdin.write_all(b"1+2*3\n").await.unwrap();
    read_until(&mut stdout, &mut seen, "= 7\n").await;
    stdin.write_all(b"(4+5)*-2\n").await.unwrap();
    read_until(&mut stdout, &mut seen, "= -18\n").await;
    drop(stdin);
    read_until(&mut stdout, &mut seen, "bye\n").await;
    let (code, stderr) = exit_code(child).await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn time_spent_waiting_for_the_person_is_not_the_guests_timeout() {
    let server = TestServer::start().await;
    let mut child = spawn(
        &server,
        &["run", "-i", "--timeout", "300ms", &g("calc.wasm")],
    );
    let (mut stdin, mut stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    let mut seen = String::new();
    for (line, answer) in [("2+2\n", "= 4\n"), ("3*3\n", "= 9\n")] {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stdin.write_all(line.as_bytes()).await.unwrap();
        read_until(&mut stdout, &mut seen, answer).await;
    }
    drop(stdin);
    let (code, stderr) = exit_code(child).await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guests_exit_code_is_mirrored() {
    let server = TestServer::start().await;
    let child = spawn(&server, &["run", "-i", &g("exitcode.wasm"), "7"]);
    let (code, stderr) = exit_code(child).await;
    assert_eq!(code, 7, "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_cancels_the_run() {
    let server = TestServer::start().await;
    let mut child = spawn(&server, &["run", "-i", &g("calc.wasm")]);
    let (stdin, mut stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    let mut seen = String::new();
    read_until(&mut stdout, &mut seen, "> ").await;
    let pid = child.id().unwrap().to_string();
    let signalled = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(signalled.success());
    let (code, stderr) = exit_code(child).await;
    drop(stdin);
    assert_eq!(code, 106, "{stderr}");
    assert!(stderr.contains("cancelled"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_terminal_lines_are_answered_and_ctrl_d_ends_stdin() {
    let server = TestServer::start().await;
    // `script` gives wasmwiz a pseudo-terminal as stdin and stdout.
    let command = format!("{} run -i {}", common::cli_bin().display(), g("calc.wasm"));
    let mut cmd = tokio::process::Command::new("script");
    cmd.args(["-q", "-f", "-e", "-c", &command, "/dev/null"])
        .env("WASMWIZ_URL", &server.url)
        .env("WASMWIZ_API_KEY", &server.admin_key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .expect("the `script` command (util-linux) is installed");
    let (mut stdin, mut stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    let mut seen = String::new();
    read_until(&mut stdout, &mut seen, "> ").await;
    stdin.write_all(b"6*7\n").await.unwrap();
    read_until(&mut stdout, &mut seen, "= 42").await;
    // Ctrl-D at the start of a line: end of file on the terminal.
    stdin.write_all(b"\x04").await.unwrap();
    read_until(&mut stdout, &mut seen, "bye").await;
    let (code, stderr) = exit_code(child).await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guessing_game_is_won_by_bisection_within_seven_guesses() {
    let server = TestServer::start().await;
    let mut child = spawn(&server, &["run", "-i", "--seed", "42", &g("guess.wasm")]);
    let (mut stdin, mut stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    let mut seen = String::new();
    let (mut low, mut high) = (1u32, 100u32);
    for guesses in 1..=7 {
        read_until(&mut stdout, &mut seen, "> ").await;
        seen = seen.split_once("> ").unwrap().1.to_string();
        let mid = (low + high) / 2;
        stdin
            .write_all(format!("{mid}\n").as_bytes())
            .await
            .unwrap();
        read_until(&mut stdout, &mut seen, "\n").await;
        let (answer, after) = seen.split_once('\n').unwrap();
        let answer = answer.to_string();
        seen = after.to_string();
        match answer.as_str() {
            "higher" => low = mid + 1,
            "lower" => high = mid - 1,
            answer => {
                assert_eq!(answer, format!("correct! {guesses} guesses"));
                let (code, stderr) = exit_code(child).await;
                assert_eq!(code, 0, "{stderr}");
                return;
            }
        }
    }
    panic!("not won in 7 guesses (last range {low}..={high})");
}
