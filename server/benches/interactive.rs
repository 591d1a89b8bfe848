//! Interactive executions at scale, against a `wasmwiz-server` process of
//! its own (this build's binary, a temporary data dir and config), so its
//! memory and threads are measured alone from /proc/PID/status:
//!
//! 1. scale: SESSIONS (default 2000) interactive `Run`s of examples'
//!    calc.wasm (a REPL) are opened and left waiting for input; the
//!    server's RSS and threads before and after give the memory per idle
//!    session. Then for SECONDS (default 30) each session sends one line
//!    every [`LINE_EVERY`] (staggered over the sessions) and times
//!    `WriteStdin` to the matching answer on its stdout.
//! 2. keystroke: one session, line round trips through `Run` + `WriteStdin`
//!    against the same through a plain `Execute` stdin stream (bidi, not
//!    interactive), alternating in rounds.
//!
//!   cargo bench -p wasmwiz-server --profile release --bench interactive [-- SESSIONS SECONDS]
//!
//! (`--profile release` builds faster than the bench profile's fat LTO; a
//! debug server does not keep up with 2 000 sessions' traffic.)
//!
//! One account of a `bench` tier (in the generated config) holds every
//! session: its `max_concurrent` is SESSIONS + 16, since idle sessions
//! count against it. Sessions are spread over connections of
//! [`STREAMS_PER_CONNECTION`] streams, below the server's default
//! `max_concurrent_streams` of 100.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
    Streaming,
};
use wasmwiz_proto::v1::{
    self, execute_event::Event, execute_request::Msg,
    execution_service_client::ExecutionServiceClient,
};
use wasmwiz_server::testing::BearerAuth;

type Client = ExecutionServiceClient<InterceptedService<Channel, BearerAuth>>;

/// How often each session sends a line in the traffic phase.
const LINE_EVERY: Duration = Duration::from_secs(5);
/// Run streams per client connection.
const STREAMS_PER_CONNECTION: usize = 80;
/// Sessions being opened at once (the rest wait their turn).
const OPENING_AT_ONCE: usize = 64;
/// Memory limit each session asks for (calc.wasm starts with 128 KiB).
const SESSION_MEMORY: u64 = 1 << 20;
/// Keystroke benchmark: rounds of each kind, alternating, and round trips per round.
const KEYSTROKE_ROUNDS: usize = 10;
const KEYSTROKES_PER_ROUND: usize = 200;

/// VmRSS (bytes) and Threads of a process.
#[derive(Debug, Clone, Copy)]
struct ProcStatus {
    rss: u64,
    threads: u64,
}

fn proc_status(pid: u32) -> ProcStatus {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    ProcStatus {
        rss: field("VmRSS:") * 1024,
        threads: field("Threads:"),
    }
}

/// The server process; stopped (SIGTERM, then SIGKILL) when dropped.
struct ServerProcess {
    child: Child,
    url: String,
    key: String,
    _dir: tempfile::TempDir,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // SAFETY: the pid is our own child's, still unreaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The bench tier and a server config around it.
fn write_config(dir: &Path, port: u16, sessions: usize) -> PathBuf {
    let config = format!(
        r#"listen = "127.0.0.1:{port}"
data_dir = "{data}"

[sandbox]
memory_budget_mib = {budget}
tenant_memory_share_percent = 100

[tiers.bench]
unmetered = true
max_concurrent = {concurrent}
max_timeout_ms = 600000
max_session_ms = 3600000
stdin_writes_per_second = {rate}
stdin_write_burst = {burst}
"#,
        data = dir.join("data").display(),
        budget = ((sessions as u64 * SESSION_MEMORY) >> 20) + 1024,
        concurrent = sessions + 16,
        rate = (sessions * 2).max(1000),
        burst = sessions.max(1000),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// Creates the bench account's key, starts the server and waits for it.
async fn start_server(sessions: usize) -> ServerProcess {
    let bin = env!("CARGO_BIN_EXE_wasmwiz-server");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, sessions);
    let created = Command::new(bin)
        .args(["--config".as_ref(), config.as_os_str()])
        .args([
            "admin",
            "create-key",
            "--email",
            "bench@x.io",
            "--tier",
            "bench",
        ])
        .output()
        .expect("running wasmwiz-server admin create-key");
    assert!(created.status.success(), "{created:?}");
    let key = String::from_utf8(created.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let child = Command::new(bin)
        .args(["--config".as_ref(), config.as_os_str(), "serve".as_ref()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting wasmwiz-server");
    let server = ServerProcess {
        child,
        url: format!("http://127.0.0.1:{port}"),
        key,
        _dir: dir,
    };
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("wasmwiz-server did not start listening");
}

async fn client(server: &ServerProcess) -> Client {
    let channel = Endpoint::from_shared(server.url.clone())
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("connecting");
    ExecutionServiceClient::new(InterceptedService::new(
        channel,
        BearerAuth(Some(server.key.clone())),
    ))
}

fn session_limits() -> Option<v1::Limits> {
    Some(v1::Limits {
        memory_bytes: SESSION_MEMORY,
        ..Default::default()
    })
}

/// Stdout of one execution, read up to what is awaited.
struct Output {
    stream: Streaming<v1::ExecuteEvent>,
    pending: Vec<u8>,
}

impl Output {
    /// Reads until `needle` has arrived; drops what came before it.
    async fn until(&mut self, needle: &[u8]) {
        loop {
            if let Some(at) = self.pending.windows(needle.len()).position(|w| w == needle) {
                self.pending.drain(..at + needle.len());
                return;
            }
            let event = tokio::time::timeout(Duration::from_secs(60), self.stream.message())
                .await
                .expect("output within 60 s")
                .expect("the stream goes on")
                .expect("the execution goes on");
            match event.event {
                Some(Event::Stdout(bytes)) => self.pending.extend(bytes),
                Some(Event::Finished(f)) => panic!("ended early: {f:?}"),
                _ => {}
            }
        }
    }

    /// The rest of the stream's `finished`.
    async fn finished(mut self) -> v1::Finished {
        loop {
            let event = tokio::time::timeout(Duration::from_secs(60), self.stream.message())
                .await
                .expect("the end within 60 s")
                .expect("the stream goes on")
                .expect("a finished event");
            if let Some(Event::Finished(f)) = event.event {
                return f;
            }
        }
    }
}

/// An interactive calc session, at its first prompt.
async fn open_session(exec: &mut Client, sha: &str) -> (String, Output) {
    let mut stream = exec
        .run(v1::RunRequest {
            source: Some(v1::run_request::Source::ModuleSha256(sha.to_string())),
            interactive: true,
            limits: session_limits(),
            ..Default::default()
        })
        .await
        .expect("an interactive run")
        .into_inner();
    let id = match stream.message().await.unwrap().unwrap().event {
        Some(Event::Started(s)) => s.execution_id,
        other => panic!("expected started, got {other:?}"),
    };
    let mut output = Output {
        stream,
        pending: Vec::new(),
    };
    output.until(b"> ").await;
    (id, output)
}

async fn write(exec: &mut Client, id: &str, data: &[u8], eof: bool) {
    exec.write_stdin(v1::WriteStdinRequest {
        execution_id: id.to_string(),
        data: data.to_vec(),
        eof,
    })
    .await
    .expect("WriteStdin");
}

/// One line and its answer: `a+b` → `= a+b`.
fn exchange(a: usize, b: usize) -> (Vec<u8>, Vec<u8>) {
    (
        format!("{a}+{b}\n").into_bytes(),
        format!("= {}\n", a + b).into_bytes(),
    )
}

/// Sorted latencies and their percentiles.
struct Latencies(Vec<Duration>);

impl Latencies {
    fn new(mut all: Vec<Duration>) -> Self {
        all.sort();
        Self(all)
    }
    fn pct(&self, p: usize) -> Duration {
        self.0[(self.0.len() * p / 100).min(self.0.len() - 1)]
    }
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1 << 20) as f64)
}

/// Uploads calc.wasm once (kept, so sessions start by sha256) and returns
/// its sha256 and the linear memory one whole session used.
async fn upload_calc(exec: &mut Client) -> (String, u64) {
    let calc = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/guests/calc.wasm"
    ))
    .unwrap();
    let mut stream = exec
        .run(v1::RunRequest {
            source: Some(v1::run_request::Source::Module(calc)),
            keep_module: true,
            stdin: b"1+2\nquit\n".to_vec(),
            limits: session_limits(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (mut sha, mut memory) = (String::new(), 0);
    while let Some(e) = stream.message().await.unwrap() {
        match e.event {
            Some(Event::Started(s)) => sha = s.module_sha256,
            Some(Event::Finished(f)) => {
                assert_eq!(f.exit_code, 0, "{f:?}");
                memory = f.memory_peak_bytes;
            }
            _ => {}
        }
    }
    (sha, memory)
}

/// Phase 1: SESSIONS idle sessions, then a line from each every few seconds.
async fn scale(server: &ServerProcess, sessions: usize, seconds: f64) {
    let pid = server.child.id();
    let mut first = client(server).await;
    let (sha, guest_memory) = upload_calc(&mut first).await;
    // Warm the paths a session takes (compiled module, session registry).
    let (id, output) = open_session(&mut first, &sha).await;
    write(&mut first, &id, b"quit\n", true).await;
    output.finished().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = proc_status(pid);

    let connections = sessions.div_ceil(STREAMS_PER_CONNECTION).max(1);
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(client(server).await);
    }
    let opening = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    let (opened_tx, mut opened_rx) = mpsc::channel::<()>(sessions.max(1));
    let (go_tx, go_rx) = tokio::sync::watch::channel::<Option<Instant>>(None);
    let open_started = Instant::now();
    let handles: Vec<_> = (0..sessions)
        .map(|i| {
            let mut exec = clients[i % connections].clone();
            let (sha, opening, opened_tx, mut go) = (
                sha.clone(),
                opening.clone(),
                opened_tx.clone(),
                go_rx.clone(),
            );
            tokio::spawn(async move {
                let (id, mut output) = {
                    let _turn = opening.acquire().await.unwrap();
                    open_session(&mut exec, &sha).await
                };
                opened_tx.send(()).await.unwrap();
                let start = *go.wait_for(Option::is_some).await.unwrap();
                let start = start.unwrap();
                let end = start + Duration::from_secs_f64(seconds);
                // Staggered: session i first writes i/SESSIONS into the period.
                let mut next = start + LINE_EVERY.mul_f64(i as f64 / sessions as f64);
                let mut latencies = Vec::new();
                let mut k = 0;
                while next < end {
                    tokio::time::sleep_until(next.into()).await;
                    let (line, answer) = exchange(i, k);
                    let t = Instant::now();
                    write(&mut exec, &id, &line, false).await;
                    output.until(&answer).await;
                    latencies.push(t.elapsed());
                    k += 1;
                    next += LINE_EVERY;
                }
                write(&mut exec, &id, b"", true).await;
                let finished = output.finished().await;
                (latencies, finished.exit_code == 0)
            })
        })
        .collect();
    drop(opened_tx);
    for _ in 0..sessions {
        opened_rx.recv().await.expect("every session opens");
    }
    let open_took = open_started.elapsed();
    // Let the last sessions settle into their wait.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = proc_status(pid);

    go_tx.send(Some(Instant::now())).unwrap();
    let mut latencies = Vec::new();
    let mut clean_ends = 0;
    let mut peak_threads = idle.threads;
    let mut pending = handles;
    // Sample threads while the traffic runs.
    while !pending.is_empty() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak_threads = peak_threads.max(proc_status(pid).threads);
        let (done, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|h| h.is_finished());
        pending = rest;
        for h in done {
            let (l, clean) = h.await.unwrap();
            latencies.extend(l);
            clean_ends += usize::from(clean);
        }
    }
    let after = proc_status(pid);
    let latencies = Latencies::new(latencies);
    let per_session = (idle.rss as f64 - before.rss as f64) / sessions as f64;

    println!(
        "interactive scale: {sessions} calc.wasm sessions on one server process, \
         {connections} connections, one line per session every {LINE_EVERY:?} for {seconds} s"
    );
    println!(
        "  opened in {open_took:.2?} ({:.0} sessions/s)",
        sessions as f64 / open_took.as_secs_f64()
    );
    println!(
        "  server RSS: {} before, {} with {sessions} idle sessions, {} after they ended",
        mib(before.rss as f64),
        mib(idle.rss as f64),
        mib(after.rss as f64)
    );
    println!(
        "  memory per idle session: {:.0} KiB, of which the guest's linear memory is {} KiB: \
         {:.0} KiB of server overhead per session ({:.2}x the linear memory in all)",
        per_session / 1024.0,
        guest_memory / 1024,
        (per_session - guest_memory as f64) / 1024.0,
        per_session / guest_memory as f64
    );
    println!(
        "  server threads: {} before, {} with the sessions idle, {} at most under traffic",
        before.threads, idle.threads, peak_threads
    );
    println!(
        "  WriteStdin -> answer on stdout: {} round trips, p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        latencies.0.len(),
        latencies.pct(50),
        latencies.pct(99),
        latencies.0.last().copied().unwrap_or_default()
    );
    println!("  sessions that ended cleanly (exit 0 after eof): {clean_ends} of {sessions}");
}

/// A plain `Execute` of calc with its stdin streamed, at its first prompt.
async fn open_plain(exec: &mut Client, sha: &str) -> (mpsc::Sender<v1::ExecuteRequest>, Output) {
    let (tx, rx) = mpsc::channel(8);
    tx.send(v1::ExecuteRequest {
        msg: Some(Msg::Start(v1::ExecuteStart {
            source: Some(v1::execute_start::Source::ModuleSha256(sha.to_string())),
            stream_stdin: true,
            limits: session_limits(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let stream = exec
        .execute(ReceiverStream::new(rx))
        .await
        .expect("an Execute stream")
        .into_inner();
    let mut output = Output {
        stream,
        pending: Vec::new(),
    };
    output.until(b"> ").await;
    (tx, output)
}

/// Phase 2: one session's line round trips, `WriteStdin` against `Execute`.
async fn keystrokes(server: &ServerProcess) {
    let mut exec = client(server).await;
    let (sha, _) = upload_calc(&mut exec).await;
    let (id, mut interactive) = open_session(&mut exec, &sha).await;
    let (tx, mut plain) = open_plain(&mut exec, &sha).await;
    let (mut via_write, mut via_execute) = (Vec::new(), Vec::new());
    let mut ratios = Vec::new();
    for round in 0..KEYSTROKE_ROUNDS {
        let (mut w, mut e) = (Vec::new(), Vec::new());
        for k in 0..KEYSTROKES_PER_ROUND {
            let (line, answer) = exchange(round, k);
            let t = Instant::now();
            tx.send(v1::ExecuteRequest {
                msg: Some(Msg::StdinChunk(line)),
            })
            .await
            .unwrap();
            plain.until(&answer).await;
            e.push(t.elapsed());
        }
        for k in 0..KEYSTROKES_PER_ROUND {
            let (line, answer) = exchange(round, k);
            let t = Instant::now();
            write(&mut exec, &id, &line, false).await;
            interactive.until(&answer).await;
            w.push(t.elapsed());
        }
        let (w, e) = (Latencies::new(w), Latencies::new(e));
        ratios.push(w.pct(50).as_secs_f64() / e.pct(50).as_secs_f64());
        via_write.extend(w.0);
        via_execute.extend(e.0);
    }
    write(&mut exec, &id, b"", true).await;
    tx.send(v1::ExecuteRequest {
        msg: Some(Msg::StdinEof(true)),
    })
    .await
    .unwrap();
    assert_eq!(interactive.finished().await.exit_code, 0);
    assert_eq!(plain.finished().await.exit_code, 0);
    ratios.sort_by(f64::total_cmp);
    let (w, e) = (Latencies::new(via_write), Latencies::new(via_execute));
    println!(
        "keystroke to output: one calc session each, {KEYSTROKE_ROUNDS} alternating rounds of \
         {KEYSTROKES_PER_ROUND} line round trips"
    );
    println!("  {:<44} {:>10} {:>10}", "", "p50", "p99");
    println!(
        "  {:<44} {:>10.2?} {:>10.2?}",
        "baseline: Execute stdin_chunk (plain stream)",
        e.pct(50),
        e.pct(99)
    );
    println!(
        "  {:<44} {:>10.2?} {:>10.2?}",
        "Run interactive + WriteStdin",
        w.pct(50),
        w.pct(99)
    );
    println!(
        "  ratio to the baseline: p50 {:.2}x, p99 {:.2}x; per-round p50 ratio median {:.2}x ({:.2}..{:.2})",
        w.pct(50).as_secs_f64() / e.pct(50).as_secs_f64(),
        w.pct(99).as_secs_f64() / e.pct(99).as_secs_f64(),
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let sessions: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let seconds: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(30.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let server = start_server(sessions).await;
        scale(&server, sessions, seconds).await;
        keystrokes(&server).await;
    });
}
