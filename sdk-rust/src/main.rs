//! `wasmwiz`: run WebAssembly on a WasmWiz server from a terminal or a CI
//! pipeline. See `wasmwiz --help` and the crate's README.
//!
//! # Layout
//! - `main.rs`: flags (clap), the client, friendly errors and exit codes.
//! - `cli/run.rs`: `run` (streams the guest's output as it comes).
//! - `cli/batch.rs`: `batch` (cases file, table, JUnit XML).
//! - `cli/detached.rs`: `submit`, `status`, `watch`, `wait`.
//! - `cli/account.rs`: `upload`, `modules`, `whoami`, `usage`, `keys`.
//! - `cli/progress.rs`: the upload progress bar.
//! - `cli/receipt.rs`: `receipt verify` (offline).

mod cli;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use wasmwiz::{
    util::{format_duration, parse_duration},
    Client, Code, Error, RetryPolicy,
};

/// Exit codes of the CLI besides the guest's own (documented in `--help`
/// and the README). All above 100, so ordinary guest codes do not collide.
pub mod exit {
    /// The guest ran out of fuel.
    pub const OUT_OF_FUEL: u8 = 101;
    /// The guest hit its wall-clock timeout.
    pub const TIMEOUT: u8 = 102;
    /// The guest trapped.
    pub const TRAP: u8 = 103;
    /// The guest needed more memory than allowed.
    pub const MEMORY_LIMIT: u8 = 104;
    /// The guest wrote more than the output limit.
    pub const OUTPUT_LIMIT: u8 = 105;
    /// The run was cancelled (server shutting down).
    pub const CANCELLED: u8 = 106;
    /// stdout differed from `--expect-stdout`, or a batch case failed.
    pub const WRONG_ANSWER: u8 = 107;
    /// Missing, unknown, revoked or expired key; admin key required.
    pub const AUTH: u8 = 108;
    /// Rate limit or daily quota reached.
    pub const RATE_LIMITED: u8 = 109;
    /// Bad flags, unreadable files, or a request the server refused as
    /// invalid (INVALID_ARGUMENT, NOT_FOUND, ...).
    pub const USAGE: u8 = 110;
    /// The server could not be reached or is unavailable.
    pub const CONNECTION: u8 = 111;
    /// Any other server or protocol error.
    pub const SERVER: u8 = 112;
}

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0         success: the guest exited 0 (and matched --expect-stdout);
            every batch case passed; the command did what it said
  1-255     run: the guest's own nonzero exit code (codes outside 1-255
            become 1; a guest that exits with 101-112 looks like the codes
            below: check stderr or use --json when that matters)
  101       the guest ran out of fuel
  102       the guest hit its timeout; batch: --batch-timeout stopped it
            (the cases left are reported as not run)
  103       the guest trapped (unreachable, stack overflow, out-of-bounds...)
  104       the guest hit the memory limit
  105       the guest hit the output limit
  106       the run was cancelled (server shutting down)
  107       wrong answer: stdout differs from --expect-stdout; a batch case
            failed; receipt verify: the signature or a digest does not match
  108       authentication: missing, unknown, revoked or expired API key, or
            an admin key is required
  109       rate limited or daily quota exhausted (--retry waits it out)
  110       usage: bad flags or server URL, unreadable file, invalid module
            or request, unknown module sha256, a module over the tier's size
            limit (checked before uploading)
  111       connection: the server is unreachable or unavailable, or TLS on
            one side only
  112       any other server error

Environment:
  WASMWIZ_URL       server URL (default http://127.0.0.1:8080)
  WASMWIZ_API_KEY   API key (wwz_...)
  WASMWIZ_CA_CERT   extra CA certificate (PEM) for https:// servers
  WASMWIZ_RETRY     1 to wait out rate limits (same as --retry)";

/// Run WebAssembly (WASI preview1) on a WasmWiz server, from a terminal or a
/// CI pipeline.
#[derive(Debug, Parser)]
#[command(
    name = "wasmwiz",
    version,
    after_help = "Exit codes: 0 ok, guest's own code, 101 out of fuel, 102 timeout, 103 trap, \
                  104 memory limit, 105 output limit, 106 cancelled, 107 wrong answer, 108 auth, \
                  109 rate limited, 110 usage, 111 connection, 112 server (details: --help).",
    after_long_help = EXIT_CODES_HELP
)]
pub struct Cli {
    /// Server URL.
    #[arg(
        long,
        env = "WASMWIZ_URL",
        default_value = "http://127.0.0.1:8080",
        global = true,
        help_heading = "Server options"
    )]
    pub url: String,
    /// API key (`wwz_...`).
    #[arg(
        long,
        env = "WASMWIZ_API_KEY",
        hide_env_values = true,
        global = true,
        help_heading = "Server options"
    )]
    pub api_key: Option<String>,
    /// Extra CA certificate (PEM) to trust for https:// servers.
    #[arg(
        long,
        env = "WASMWIZ_CA_CERT",
        value_name = "FILE",
        global = true,
        help_heading = "Server options"
    )]
    pub ca_cert: Option<PathBuf>,
    /// Wait out rate limits and busy servers and retry (honours the server's
    /// retry-after, with jitter).
    #[arg(
        long,
        env = "WASMWIZ_RETRY",
        global = true,
        help_heading = "Server options",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub retry: bool,
    /// With --retry: the longest single wait; a longer retry-after (e.g. a
    /// daily quota) fails at once.
    #[arg(
        long,
        value_name = "DUR",
        value_parser = parse_duration,
        default_value = "60s",
        global = true,
        help_heading = "Server options"
    )]
    pub max_wait: Duration,
    /// W3C traceparent sent with every call, so the server's spans join
    /// this trace (CI tools export it as TRACEPARENT).
    #[arg(
        long,
        value_name = "TRACEPARENT",
        env = "TRACEPARENT",
        global = true,
        help_heading = "Server options"
    )]
    pub traceparent: Option<String>,
    /// Print nothing but the guest's output and errors.
    #[arg(short, long, global = true, help_heading = "Server options")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a module, streaming its stdout and stderr; exit with its exit code.
    Run(cli::run::RunArgs),
    /// Queue a run on the server and print its execution id at once; it
    /// runs without this process (same flags as `run`).
    Submit(cli::detached::SubmitArgs),
    /// Show a submitted execution: state, outcome, attempts, webhooks.
    Status(cli::detached::ExecutionArgs),
    /// Stream a submitted execution's output from its start, reconnecting
    /// when the connection drops; exit with the guest's exit code.
    Watch(cli::detached::ExecutionArgs),
    /// Wait for a submitted execution to end, print its output, and exit
    /// with the guest's exit code.
    Wait(cli::detached::ExecutionArgs),
    /// Store a module on the server (skipped when it is already there);
    /// prints its sha256.
    Upload(cli::account::UploadArgs),
    /// Run a module's test cases from a JSON file; print a table, optionally
    /// write JUnit XML.
    Batch(cli::batch::BatchArgs),
    /// List, inspect and remove stored modules.
    #[command(subcommand)]
    Modules(cli::account::ModulesCommand),
    /// Show the key's account, tier, limits and remaining allowance.
    Whoami(cli::account::JsonFlag),
    /// Show executions, fuel and time used per day.
    Usage(cli::account::UsageArgs),
    /// Create, list and revoke API keys (admin; --mine for your own keys).
    #[command(subcommand)]
    Keys(cli::account::KeysCommand),
    /// Verify signed execution receipts offline.
    #[command(subcommand)]
    Receipt(cli::receipt::ReceiptCommand),
}

/// How a command ended: an exit code, and a message for stderr.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }
}

pub type CliResult<T = u8> = Result<T, Failure>;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wasmwiz: cannot start: {e}");
            return ExitCode::from(exit::SERVER);
        }
    };
    let code = runtime.block_on(dispatch(&cli));
    // A blocked read of the terminal (streamed stdin) must not keep us alive.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match code {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            if !failure.message.is_empty() {
                eprintln!("wasmwiz: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}

async fn dispatch(cli: &Cli) -> CliResult {
    // Offline: no server, no key.
    if let Command::Receipt(cmd) = &cli.command {
        return cli::receipt::receipt(cmd, cli.quiet);
    }
    let client = connect(cli).await?;
    match &cli.command {
        Command::Run(args) => cli::run::run(cli, &client, args).await,
        Command::Submit(args) => cli::detached::submit(cli, &client, args).await,
        Command::Status(args) => cli::detached::status(cli, &client, args).await,
        Command::Watch(args) => cli::detached::watch(cli, &client, args).await,
        Command::Wait(args) => cli::detached::wait(cli, &client, args).await,
        Command::Upload(args) => cli::account::upload(cli, &client, args).await,
        Command::Batch(args) => cli::batch::batch(cli, &client, args).await,
        Command::Modules(cmd) => cli::account::modules(cli, &client, cmd).await,
        Command::Whoami(args) => cli::account::whoami(cli, &client, args).await,
        Command::Usage(args) => cli::account::usage(cli, &client, args).await,
        Command::Keys(cmd) => cli::account::keys(cli, &client, cmd).await,
        Command::Receipt(cmd) => cli::receipt::receipt(cmd, cli.quiet),
    }
}

/// Refuses a URL that cannot name a server before trying to connect, so a
/// typo is a usage error and not "cannot connect".
fn check_url(url: &str) -> CliResult<()> {
    let bad = |why: &str| {
        Failure::usage(format!(
            "`{url}` is not a server URL ({why}): use http://HOST:PORT or https://HOST[:PORT] \
             in --url or WASMWIZ_URL"
        ))
    };
    let uri: tonic::codegen::http::Uri = url.trim().parse().map_err(|_| bad("malformed"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(bad(&format!("unsupported scheme `{other}`"))),
        None => return Err(bad("no http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("a server URL has no path"));
    }
    Ok(())
}

/// `url` with its scheme swapped, for hints.
fn other_scheme(url: &str) -> String {
    match url.split_once("://") {
        Some(("https", rest)) => format!("http://{rest}"),
        Some((_, rest)) => format!("https://{rest}"),
        None => url.to_string(),
    }
}

async fn connect(cli: &Cli) -> CliResult<Client> {
    check_url(&cli.url)?;
    let mut builder = Client::builder(&cli.url)
        .api_key(cli.api_key.clone().unwrap_or_default())
        .user_agent(format!("wasmwiz-cli/{}", env!("CARGO_PKG_VERSION")));
    // TRACEPARENT may come from an environment this program does not own:
    // a malformed one is reported and left out, not a reason to fail.
    match &cli.traceparent {
        Some(value) if wasmwiz::util::is_traceparent(value) => {
            builder = builder.traceparent(value.clone());
        }
        Some(value) if !cli.quiet => {
            eprintln!("wasmwiz: ignoring traceparent `{value}`: not a W3C traceparent")
        }
        _ => {}
    }
    if let Some(path) = &cli.ca_cert {
        let pem = std::fs::read(path).map_err(|e| {
            Failure::usage(format!(
                "cannot read CA certificate {}: {e}",
                path.display()
            ))
        })?;
        builder = builder.ca_certificate_pem(pem);
    }
    if cli.retry {
        let quiet = cli.quiet;
        builder = builder.retry(
            RetryPolicy::default()
                .max_retries(10)
                .max_delay(cli.max_wait)
                .on_retry(move |error, wait, attempt| {
                    if !quiet {
                        eprintln!(
                            "wasmwiz: {}; retrying in {} (attempt {attempt})",
                            short_reason(error),
                            format_duration(wait)
                        );
                    }
                }),
        );
    }
    builder.build().await.map_err(|e| failure(cli, &e))
}

/// A few words on why a call is being retried.
fn short_reason(error: &Error) -> String {
    match error.code() {
        Code::ResourceExhausted => match error.api().and_then(|e| e.quota_violations().first()) {
            Some(v) => format!("rate limited ({})", v.subject),
            None => "rate limited".into(),
        },
        _ if error.is_connection_error() => "cannot reach the server".into(),
        _ => "server busy".into(),
    }
}

/// The friendly message and exit code of an SDK error: no debug output.
pub fn failure(cli: &Cli, error: &Error) -> Failure {
    let (code, message) = match error {
        Error::Connect { url, reason, .. }
            if url.starts_with("https://") && speaks_no_tls(reason) =>
        {
            (
                exit::CONNECTION,
                format!(
                    "cannot connect to {url}: the server does not speak TLS\nhint: use {}",
                    other_scheme(url)
                ),
            )
        }
        Error::Api(e) if cli.url.starts_with("http://") && expects_tls(e) => (
            exit::CONNECTION,
            format!(
                "cannot talk to {}: the server does not answer in plaintext HTTP/2; \
                 it probably expects TLS\nhint: use {}",
                cli.url,
                other_scheme(&cli.url)
            ),
        ),
        Error::Connect { url, reason, .. } => {
            let reason = tidy(reason);
            let hint = if reason.contains("certificate") {
                "\nhint: trust the server's CA with --ca-cert or WASMWIZ_CA_CERT."
            } else if reason.contains("refused")
                || reason.contains("dns")
                || reason.contains("timed out")
            {
                "\nhint: is the server running? Set WASMWIZ_URL or --url."
            } else {
                ""
            };
            (
                exit::CONNECTION,
                format!("cannot connect to {url}: {reason}{hint}"),
            )
        }
        Error::Config(m) => (exit::USAGE, m.clone()),
        Error::Io { .. } => (exit::USAGE, error.to_string()),
        Error::Protocol(m) => (
            exit::SERVER,
            format!("unexpected answer from the server: {m}"),
        ),
        Error::Api(e) => match e.code() {
            Code::Unauthenticated => (
                exit::AUTH,
                if cli.api_key.as_deref().unwrap_or_default().trim().is_empty() {
                    "no API key: set WASMWIZ_API_KEY or pass --api-key".to_string()
                } else {
                    "the server refused the API key (unknown, revoked or expired): check WASMWIZ_API_KEY"
                        .to_string()
                },
            ),
            Code::PermissionDenied => (
                exit::AUTH,
                if e.message().is_empty() {
                    "permission denied: this command needs an admin API key".to_string()
                } else {
                    format!("permission denied: {}", e.message())
                },
            ),
            // Storage and key quotas: no wait frees them, so no retry hint.
            Code::ResourceExhausted if e.retry_after().is_none() => (
                exit::RATE_LIMITED,
                format!("quota exceeded: {}", e.message()),
            ),
            Code::ResourceExhausted => {
                let mut m = String::from("rate limited");
                let subjects: Vec<&str> = e
                    .quota_violations()
                    .iter()
                    .map(|v| v.subject.as_str())
                    .collect();
                if !subjects.is_empty() {
                    m.push_str(&format!(" ({})", subjects.join(", ")));
                }
                match e.retry_after() {
                    Some(wait) if cli.retry && wait > cli.max_wait => m.push_str(&format!(
                        "; the server asks to wait {}, more than --max-wait {}",
                        format_duration(wait),
                        format_duration(cli.max_wait)
                    )),
                    Some(wait) if cli.retry => m.push_str(&format!(
                        "; the server asks to wait {}",
                        format_duration(wait)
                    )),
                    Some(wait) => m.push_str(&format!(
                        "; try again in {} (or pass --retry to wait automatically)",
                        format_duration(wait)
                    )),
                    None => {}
                }
                (exit::RATE_LIMITED, m)
            }
            Code::Unavailable | Code::DeadlineExceeded if e.is_transport() => (
                exit::CONNECTION,
                format!(
                    "cannot reach {}: {}",
                    cli.url,
                    tidy(
                        &e.transport_reason()
                            .unwrap_or_else(|| e.message().to_string())
                    )
                ),
            ),
            // The server gave up on an upload that stalled: the link or this
            // machine paused, not the server being down.
            Code::DeadlineExceeded if e.reason() == Some("UPLOAD_IDLE") => (
                exit::CONNECTION,
                format!(
                    "upload abandoned by the server: {}\nhint: the upload paused too long \
                     between chunks; check the network and try again",
                    e.message()
                ),
            ),
            Code::Unavailable | Code::DeadlineExceeded => {
                let mut m = format!("server unavailable: {}", e.message());
                if let Some(wait) = e.retry_after() {
                    m.push_str(&format!(
                        "; try again in {} (or pass --retry)",
                        format_duration(wait)
                    ));
                }
                (exit::CONNECTION, m)
            }
            // A tier limit: the flag the user set, in human units.
            Code::InvalidArgument if e.limit_exceeded().is_some() => {
                let limit = e.limit_exceeded().expect("checked by the guard");
                (
                    exit::USAGE,
                    format!("request refused: {}", cli::limit_words::describe(&limit)),
                )
            }
            Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::OutOfRange => {
                let mut m = format!("request refused: {}", e.message());
                for v in e.field_violations() {
                    if !e.message().contains(&v.field) && !e.message().contains(&v.description) {
                        m.push_str(&format!("\n  {}: {}", v.field, v.description));
                    }
                }
                if matches!(e.resource(), Some(("module", _))) {
                    m.push_str(
                        "\nhint: store it first with `wasmwiz upload FILE`, or pass the .wasm file",
                    );
                }
                (exit::USAGE, m)
            }
            _ => (exit::SERVER, format!("server error: {e}")),
        },
        _ => (exit::SERVER, error.to_string()),
    };
    Failure { code, message }
}

/// A TLS handshake answered by something that is not TLS (rustls's words).
fn speaks_no_tls(reason: &str) -> bool {
    reason.contains("InvalidContentType") || reason.contains("corrupt message")
}

/// A TLS server answers a plaintext HTTP/2 preface with a TLS alert and
/// closes: the client sees an h2 protocol error, or, when the close wins the
/// race, its request cancelled before any response ("operation was
/// canceled"). The server itself never answers CANCELLED to these calls.
fn expects_tls(error: &wasmwiz::ApiError) -> bool {
    let protocol_error = matches!(
        error.code(),
        Code::Internal | Code::Unavailable | Code::Unknown
    ) && error.message().contains("h2 protocol error");
    let closed_before_answering =
        error.code() == Code::Cancelled && error.message().contains("operation was canceled");
    protocol_error || closed_before_answering
}

/// "Connection refused (os error 111)" → "connection refused".
fn tidy(reason: &str) -> String {
    let trimmed = match reason.find(" (os error") {
        Some(at) => &reason[..at],
        None => reason,
    };
    let mut chars = trimmed.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
