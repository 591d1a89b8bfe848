//! Every CLI subcommand and exit code against a real server.

mod common;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use common::{cli, cli_bin, cli_command, guest, TestServer};
use tokio::io::{AsyncBufReadExt, BufReader};

fn g(name: &str) -> String {
    guest(name).display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn run_prints_output_and_exits_with_the_guest_code() {
    let server = TestServer::start().await;
    let key = Some(server.admin_key.as_str());
    let out = cli(&server.url, key, &["run", &g("hello.wasm")], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "Hello, WasmWiz!\n");
    assert_eq!(out.stderr, "");

    for code in ["0", "1", "7", "42"] {
        let out = cli(
            &server.url,
            key,
            &["run", "--arg", code, &g("exitcode.wasm")],
            None,
        )
        .await;
        assert_eq!(out.code.to_string(), code, "{out:?}");
        assert_eq!(out.stdout, format!("exiting with {code}\n"));
    }

    // Arguments, environment, `--` and stderr.
    let out = cli(
        &server.url,
        key,
        &[
            "run",
            "--arg",
            "-x",
            "--env",
            "K=V",
            "--env",
            "EMPTY=",
            "--program-name",
            "p",
            &g("argsenv.wasm"),
            "--",
            "tail",
            "--flag",
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    for line in [
        "argv[0]=p",
        "argv[1]=-x",
        "argv[2]=tail",
        "argv[3]=--flag",
        "env:K=V",
        "env:EMPTY=",
    ] {
        assert!(
            out.stdout.lines().any(|l| l == line),
            "{line} missing: {out:?}"
        );
    }
    let out = cli(&server.url, key, &["run", &g("stderr.wasm")], None).await;
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("to stdout\n", "to stderr\n")
    );

    // stdin from `-` (streamed) and from a file.
    let out = cli(
        &server.url,
        key,
        &["run", "--stdin", "-", &g("echo.wasm")],
        Some(b"piped\n"),
    )
    .await;
    assert_eq!(out.stdout, "piped\n", "{out:?}");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "20\n").unwrap();
    let out = cli(
        &server.url,
        key,
        &[
            "run",
            "--stdin",
            input.to_str().unwrap(),
            "--seed",
            "3",
            "-v",
            &g("fib.wasm"),
        ],
        None,
    )
    .await;
    assert_eq!(out.stdout, "6765\n", "{out:?}");
    assert!(out.stderr.contains("exited 0 [fuel "), "{out:?}");

    // --json: one object with output and costs.
    let out = cli(&server.url, key, &["run", "--json", &g("hello.wasm")], None).await;
    assert_eq!(out.code, 0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "OUTCOME_SUCCESS");
    assert_eq!(v["stdout"], "Hello, WasmWiz!\n");
    assert!(v["fuel_consumed"].as_u64().unwrap() > 0);
    assert_eq!(v["module_sha256"].as_str().unwrap().len(), 64);
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_for_each_outcome() {
    let server = TestServer::start().await;
    let key = Some(server.admin_key.as_str());
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["run", "--fuel", "1e6", &g("loop.wasm")],
            101,
            "out of fuel",
        ),
        (
            &["run", "--timeout", "300ms", &g("loop.wasm")],
            102,
            "timed out",
        ),
        (&["run", &g("trap.wasm")], 103, "trapped: unreachable"),
        (
            &["run", "--memory", "16MiB", &g("memhog.wasm"), "64"],
            104,
            "memory limit",
        ),
        (
            &[
                "run",
                "--stdin",
                "-",
                "--max-output",
                "1KiB",
                &g("echo.wasm"),
            ],
            105,
            "output limit",
        ),
    ];
    let big = vec![b'z'; 5000];
    for (args, code, words) in cases {
        let out = cli(&server.url, key, args, Some(&big)).await;
        assert_eq!(out.code, *code, "{args:?}: {out:?}");
        assert!(out.stderr.contains(words), "{args:?}: {out:?}");
        assert!(
            !out.stderr.contains("Status {"),
            "debug output leaked: {out:?}"
        );
    }
    // -q silences the summary but not the code.
    let out = cli(&server.url, key, &["-q", "run", &g("trap.wasm")], None).await;
    assert_eq!((out.code, out.stderr.as_str()), (103, ""));
    // --json still exits with the outcome's code.
    let out = cli(&server.url, key, &["run", "--json", &g("trap.wasm")], None).await;
    assert_eq!(out.code, 103);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["trap_kind"], "unreachable");
}

#[tokio::test(flavor = "multi_thread")]
async fn expect_stdout_passes_and_fails() {
    let server = TestServer::start().await;
    let key = Some(server.admin_key.as_str());
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.txt");
    let bad = dir.path().join("bad.txt");
    std::fs::write(&good, "55\n").unwrap();
    std::fs::write(&bad, "56\n").unwrap();
    let run = |expect: &std::path::Path| {
        let expect = expect.to_str().unwrap().to_string();
        let url = server.url.clone();
        let key = server.admin_key.clone();
        async move {
            cli(
                &url,
                Some(&key),
                &[
                    "run",
                    "--stdin",
                    "-",
                    "--expect-stdout",
                    &expect,
                    &g("fib.wasm"),
                ],
                Some(b"10\n"),
            )
            .await
        }
    };
    let out = run(&good).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "55\n");
    let out = run(&bad).await;
    assert_eq!(out.code, 107, "{out:?}");
    assert_eq!(out.stdout, "55\n");
    assert!(out.stderr.contains("wrong answer"), "{out:?}");
    assert!(
        out.stderr.contains(
            "line 1 differs: expected \"56\\n\", got \"55\\n\" (expected 3 bytes, got 3)"
        ),
        "{out:?}"
    );
    let _ = key;
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_auth_and_connection_errors() {
    let server = TestServer::start().await;
    let key = Some(server.admin_key.as_str());

    // Usage errors: 110.
    let out = cli(&server.url, key, &["run", "/nonexistent.wasm"], None).await;
    assert_eq!(out.code, 110, "{out:?}");
    assert!(out.stderr.contains("no such file"), "{out:?}");
    let out = cli(
        &server.url,
        key,
        &["run", "--memory", "lots", &g("hello.wasm")],
        None,
    )
    .await;
    assert_eq!(out.code, 110, "{out:?}");
    let out = cli(&server.url, key, &["frobnicate"], None).await;
    assert_eq!(out.code, 110, "{out:?}");
    let out = cli(&server.url, key, &["run", &g("hello.c")], None).await;
    assert_eq!(out.code, 110, "{out:?}");
    assert!(
        out.stderr.contains("is not a WebAssembly module"),
        "{out:?}"
    );
    let out = cli(&server.url, key, &["run", &"cd".repeat(32)], None).await;
    assert_eq!(out.code, 110, "{out:?}");
    assert!(out.stderr.contains("not found"), "{out:?}");
    let out = cli(
        &server.url,
        key,
        &["run", "--fuel", "1e15", &g("hello.wasm")],
        None,
    )
    .await;
    assert_eq!(out.code, 110, "{out:?}");
    assert!(
        out.stderr.contains("limits.fuel") || out.stderr.contains("fuel"),
        "{out:?}"
    );

    // Auth errors: 108, in words.
    let out = cli(&server.url, None, &["whoami"], None).await;
    assert_eq!(out.code, 108, "{out:?}");
    assert!(
        out.stderr.contains("no API key: set WASMWIZ_API_KEY"),
        "{out:?}"
    );
    let out = cli(
        &server.url,
        Some("wwz_bad_key"),
        &["run", &g("hello.wasm")],
        None,
    )
    .await;
    assert_eq!(out.code, 108, "{out:?}");
    assert!(out.stderr.contains("refused the API key"), "{out:?}");
    let user = server.create_key("user@test.local", "free", false).await;
    let out = cli(&server.url, Some(&user), &["keys", "ls"], None).await;
    assert_eq!(out.code, 108, "{out:?}");
    assert!(out.stderr.contains("admin API key"), "{out:?}");

    // Connection refused: 111, friendly.
    let out = cli("http://127.0.0.1:1", key, &["whoami"], None).await;
    assert_eq!(out.code, 111, "{out:?}");
    assert!(
        out.stderr
            .contains("cannot connect to http://127.0.0.1:1: connection refused"),
        "{out:?}"
    );
    assert!(
        !out.stderr.contains("Error {") && !out.stderr.contains("Status {"),
        "{out:?}"
    );

    // Help documents the exit codes.
    let out = cli(&server.url, key, &["--help"], None).await;
    assert_eq!(out.code, 0);
    for words in ["Exit codes", "101", "out of fuel", "112", "WASMWIZ_API_KEY"] {
        assert!(out.stdout.contains(words), "{words}: {}", out.stdout);
    }
    let out = cli(&server.url, key, &["run", "--help"], None).await;
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("--expect-stdout") && out.stdout.contains("107"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_output_before_the_run_finishes() {
    let server = TestServer::start().await;
    let mut child = cli_command(&server.url, Some(&server.admin_key))
        .args(["run", &g("progress.wasm"), "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .unwrap()
        .unwrap();
    let first_at = Instant::now();
    assert_eq!(first.as_deref(), Some("tick 0"));
    // The guest still has seven ticks of work to do: wasmwiz is still running.
    assert!(
        child.try_wait().unwrap().is_none(),
        "wasmwiz exited before streaming"
    );
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        rest.push(line);
    }
    let status = child.wait().await.unwrap();
    let gap = first_at.elapsed();
    assert_eq!(status.code(), Some(0));
    assert_eq!(rest.last().map(String::as_str), Some("done"));
    assert_eq!(rest.len(), 8);
    assert!(
        gap > Duration::from_millis(50),
        "first line only {gap:?} before the end"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_and_modules_subcommands() {
    let server = TestServer::start().await;
    let key = Some(server.admin_key.as_str());
    let out = cli(&server.url, key, &["upload", &g("hello.wasm")], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    let sha = out.stdout.trim().to_string();
    assert_eq!(sha.len(), 64);
    assert!(out.stderr.contains("stored"), "{out:?}");
    let out = cli(&server.url, key, &["upload", &g("hello.wasm")], None).await;
    assert_eq!(out.stdout.trim(), sha);
    assert!(out.stderr.contains("already"), "{out:?}");
    let out = cli(
        &server.url,
        key,
        &["upload", &g("hello.wasm"), "--force", "--json"],
        None,
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["sha256"], sha.as_str());

    let out = cli(&server.url, key, &["run", &sha], None).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Hello, WasmWiz!\n"),
        "{out:?}"
    );

    let out = cli(&server.url, key, &["modules", "ls"], None).await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with("SHA256"), "{out:?}");
    assert!(out.stdout.contains(&sha));
    let out = cli(&server.url, key, &["modules", "ls", "--json"], None).await;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v[0]["sha256"], sha.as_str());
    let out = cli(&server.url, key, &["modules", "info", &sha], None).await;
    assert!(out.stdout.contains("export:   _start (func)"), "{out:?}");
    let out = cli(&server.url, key, &["modules", "rm", &sha], None).await;
    assert_eq!(
        (out.code, out.stdout.trim()),
        (0, format!("removed {sha}").as_str())
    );
    let out = cli(&server.url, key, &["modules", "ls"], None).await;
    assert!(!out.stdout.contains(&sha), "{out:?}");
    let out = cli(&server.url, key, &["modules", "rm", &sha], None).await;
    assert_eq!(out.code, 110, "{out:?}");
}

fn junit_counts(xml: &str) -> (usize, usize, String, String) {
    let doc = roxmltree::Document::parse(xml).expect("JUnit XML parses");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    let cases = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .count();
    let failures = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count();
    (
        cases,
        failures,
        suite.attribute("tests").unwrap().to_string(),
        suite.attribute("failures").unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_prints_a_table_and_writes_junit() {
    let server = TestServer::start().await;
    let key = Some(server.admin_key.as_str());
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guest("fib.wasm"), dir.path().join("fib.wasm")).unwrap();
    std::fs::write(dir.path().join("thirty.out"), "832040\n").unwrap();
    let passing = dir.path().join("cases.json");
    std::fs::write(
        &passing,
        r#"{
          "module": "fib.wasm",
          "cases": [
            {"name": "fib 10", "stdin": "10\n", "expected_stdout": "55\n"},
            {"name": "fib 20", "stdin": "20\n", "expected_stdout": "6765\n"},
            {"name": "fib 30", "stdin": "30\n", "expected_stdout_file": "thirty.out"}
          ]
        }"#,
    )
    .unwrap();
    let report = dir.path().join("report.xml");
    let out = cli(
        &server.url,
        key,
        &[
            "batch",
            passing.to_str().unwrap(),
            "--junit",
            report.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with('#'), "{out:?}");
    assert!(
        out.stdout.contains("fib 30") && out.stdout.contains("ok"),
        "{out:?}"
    );
    assert!(out.stdout.contains("3 of 3 cases passed"), "{out:?}");
    let xml = std::fs::read_to_string(&report).unwrap();
    assert_eq!(junit_counts(&xml), (3, 0, "3".into(), "0".into()));

    // A bare list with --module; one wrong answer and one crash: exit 107.
    let failing = dir.path().join("failing.json");
    std::fs::write(
        &failing,
        r#"[
          {"name": "ok <&>", "stdin": "10\n", "expected_stdout": "55\n"},
          {"name": "wrong", "stdin": "10\n", "expected_stdout": "56\n"},
          {"name": "bad input", "stdin": "x\n"},
          {"stdin": "2\n"}
        ]"#,
    )
    .unwrap();
    let out = cli(
        &server.url,
        key,
        &[
            "batch",
            failing.to_str().unwrap(),
            "--module",
            &g("fib.wasm"),
            "--junit",
            report.to_str().unwrap(),
            "--fuel",
            "1e10",
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 107, "{out:?}");
    assert!(
        out.stdout.contains("2 of 4 cases passed, 2 failed"),
        "{out:?}"
    );
    assert!(out.stdout.contains("FAIL"), "{out:?}");
    let xml = std::fs::read_to_string(&report).unwrap();
    assert_eq!(junit_counts(&xml), (4, 2, "4".into(), "2".into()));
    assert!(xml.contains("name=\"ok &lt;&amp;&gt;\""), "{xml}");
    assert!(xml.contains("name=\"case 3\""), "{xml}");

    // --json
    let out = cli(
        &server.url,
        key,
        &[
            "batch",
            failing.to_str().unwrap(),
            "-m",
            &g("fib.wasm"),
            "--json",
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 107);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (v["passed"].as_u64(), v["failed"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(v["cases"][1]["verdict"], "VERDICT_WRONG_ANSWER");

    // A broken cases file: usage error.
    std::fs::write(
        dir.path().join("broken.json"),
        "{\"cases\": [{\"stdn\": 1}]}",
    )
    .unwrap();
    let out = cli(
        &server.url,
        key,
        &[
            "batch",
            dir.path().join("broken.json").to_str().unwrap(),
            "-m",
            &g("fib.wasm"),
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 110, "{out:?}");
    assert!(out.stderr.contains("stdn"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn whoami_usage_and_keys() {
    let server = TestServer::start().await;
    let key = Some(server.admin_key.as_str());
    let out = cli(&server.url, key, &["whoami"], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("admin@test.local"), "{out:?}");
    assert!(out.stdout.contains("unlimited (admin key)"), "{out:?}");
    let out = cli(&server.url, key, &["whoami", "--json"], None).await;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["tier"], "unlimited");

    cli(&server.url, key, &["run", &g("hello.wasm")], None).await;
    let out = cli(&server.url, key, &["usage", "--days", "2"], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("total: 1 executions"), "{out:?}");
    assert!(out.stdout.contains("OUTCOME_SUCCESS: 1"), "{out:?}");
    let out = cli(&server.url, key, &["usage", "--all", "--json"], None).await;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["executions"], 1);

    // Admin keys: create (secret alone on the last line), use, list, revoke.
    let out = cli(
        &server.url,
        key,
        &[
            "keys",
            "create",
            "--email",
            "ci@test.local",
            "--tier",
            "free",
            "--label",
            "pipeline",
        ],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let new_key = out.stdout.lines().last().unwrap().to_string();
    assert!(new_key.starts_with("wwz_"));
    let out = cli(&server.url, Some(&new_key), &["whoami"], None).await;
    assert!(
        out.stdout.contains("ci@test.local") && out.stdout.contains("free"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("this minute:  10 of 10 left") || out.stdout.contains("of 10 left"),
        "{out:?}"
    );
    let out = cli(
        &server.url,
        key,
        &["keys", "ls", "--email", "ci@test.local", "--json"],
        None,
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let key_id = v[0]["key_id"].as_str().unwrap().to_string();
    assert_eq!(v[0]["label"], "pipeline");
    let out = cli(&server.url, key, &["keys", "ls"], None).await;
    assert!(
        out.stdout.starts_with("KEY ID") && out.stdout.contains(&key_id),
        "{out:?}"
    );
    let out = cli(&server.url, key, &["keys", "revoke", &key_id], None).await;
    assert_eq!(
        (out.code, out.stdout.trim()),
        (0, format!("revoked {key_id}").as_str())
    );
    let out = cli(
        &server.url,
        key,
        &["keys", "ls", "--email", "ci@test.local"],
        None,
    )
    .await;
    assert!(out.stdout.contains("revoked"), "{out:?}");

    // Self-service keys with --mine.
    let user = server.create_key("me@test.local", "free", false).await;
    let out = cli(
        &server.url,
        Some(&user),
        &["keys", "create", "--mine", "--label", "laptop"],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = cli(
        &server.url,
        Some(&user),
        &["keys", "ls", "--mine", "--json"],
        None,
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let mine: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["label"].as_str().unwrap())
        .collect();
    assert!(mine.contains(&"laptop"), "{mine:?}");
    let laptop = v
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["label"] == "laptop")
        .unwrap()["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = cli(
        &server.url,
        Some(&user),
        &["keys", "revoke", "--mine", &laptop],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    // Usage error: create without --email or --mine.
    let out = cli(&server.url, key, &["keys", "create"], None).await;
    assert_eq!(out.code, 110, "{out:?}");
}

/// The Rust example program (`cargo run --example run_module`).
#[tokio::test(flavor = "multi_thread")]
async fn rust_example_runs() {
    let server = TestServer::start().await;
    let example = cli_bin()
        .parent()
        .unwrap()
        .join("examples")
        .join(format!("run_module{}", std::env::consts::EXE_SUFFIX));
    assert!(
        example.exists(),
        "build examples first: {}",
        example.display()
    );
    let run = |args: Vec<String>| {
        let mut cmd = tokio::process::Command::new(&example);
        cmd.env("WASMWIZ_URL", &server.url)
            .env("WASMWIZ_API_KEY", &server.admin_key)
            .args(args)
            .kill_on_drop(true);
        cmd
    };
    let out = run(vec![g("progress.wasm"), "2".into()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "tick 0\ntick 1\ndone\n"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("success: exit code 0"), "{err}");

    let out = run(vec![
        g("fib.wasm"),
        "--case".into(),
        "10\\n=55\\n".into(),
        "--case".into(),
        "3\\n=2\\n".into(),
    ])
    .stdin(Stdio::null())
    .output()
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // The streamed run has no stdin (bad input, exit 1); both cases pass.
    assert!(
        err.contains("[case 0: ok]") && err.contains("[case 1: ok]"),
        "{err}"
    );
}

/// examples/ci/run-tests.sh gates on a module's test cases.
#[tokio::test(flavor = "multi_thread")]
async fn ci_script_gates_on_the_cases() {
    let server = TestServer::start().await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("examples/ci/run-tests.sh");
    let dir = tempfile::tempdir().unwrap();
    let path = format!(
        "{}:{}",
        cli_bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |cases: &std::path::Path, report: &std::path::Path| {
        let mut cmd = tokio::process::Command::new("bash");
        cmd.arg(&script)
            .env("PATH", &path)
            .env("WASMWIZ_URL", &server.url)
            .env("WASMWIZ_API_KEY", &server.admin_key)
            .env("WASMWIZ_MODULE", guest("fib.wasm"))
            .env("WASMWIZ_CASES", cases)
            .env("WASMWIZ_JUNIT", report)
            .current_dir(&root)
            .kill_on_drop(true);
        cmd
    };
    let report = dir.path().join("junit.xml");
    let out = run(&root.join("examples/ci/fib-cases.json"), &report)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let xml = std::fs::read_to_string(&report).unwrap();
    let (cases, failures, _, _) = junit_counts(&xml);
    assert!(cases >= 3);
    assert_eq!(failures, 0);

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"[{"name": "wrong", "stdin": "10\n", "expected_stdout": "1\n"}]"#,
    )
    .unwrap();
    let out = run(&bad, &report).output().await.unwrap();
    assert_eq!(out.status.code(), Some(107), "{out:?}");
    let (cases, failures, _, _) = junit_counts(&std::fs::read_to_string(&report).unwrap());
    assert_eq!((cases, failures), (1, 1));
}

/// A server shutting down cancels a running guest: exit 106.
#[tokio::test(flavor = "multi_thread")]
async fn cancelled_run_exits_106() {
    let mut server = TestServer::start_with(wasmwiz_server::testing::Db::Sqlite, |c| {
        c.shutdown_grace_secs = 1
    })
    .await;
    let mut child = cli_command(&server.url, Some(&server.admin_key))
        .args(["run", &g("progress.wasm"), "100000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.as_deref(), Some("tick 0"));
    server.begin_shutdown();
    while lines.next_line().await.unwrap().is_some() {}
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(106), "{stderr}");
    assert!(stderr.contains("cancelled"), "{stderr}");
}
