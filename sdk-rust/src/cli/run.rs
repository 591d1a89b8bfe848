//! `wasmwiz run`: one execution, output streamed as the guest writes it.

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    time::Duration,
};

use clap::Args;
use futures::StreamExt;
use serde_json::json;
use wasmwiz::{
    util::{
        first_difference, format_bytes, format_duration, parse_count, parse_duration, parse_size,
    },
    Client, Event, Finished, Limits, Outcome, Started, Verdict,
};

use super::{files, module, progress, read_input};
use crate::{exit, failure, Cli, CliResult, Failure};

/// `wasmwiz run` flags.
#[derive(Debug, Args)]
#[command(after_long_help = crate::EXIT_CODES_HELP)]
pub struct RunArgs {
    /// A .wasm or .wat file, or the sha256 of a module stored before
    /// (`wasmwiz upload`); then the guest's arguments (argv[1..]). Flags of
    /// wasmwiz come before the module: everything after it is the guest's.
    #[arg(
        value_name = "MODULE ARGS",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub module_and_args: Vec<String>,
    /// The guest's stdin: a file, or `-` for this process's stdin (streamed).
    /// Default: this process's stdin when it is a pipe or a file, none when
    /// it is a terminal.
    #[arg(long, value_name = "FILE|-", conflicts_with = "no_stdin")]
    pub stdin: Option<String>,
    /// Give the guest an empty stdin even when this process's is a pipe.
    #[arg(long)]
    pub no_stdin: bool,
    /// Attach this terminal (or pipe): stdin is streamed as it is typed,
    /// output appears as it is written, Ctrl-D ends stdin and Ctrl-C
    /// cancels. The timeout counts only the guest's running time; a wait for
    /// input longer than --idle-timeout ends the run.
    #[arg(
        short = 'i',
        long,
        conflicts_with_all = ["no_stdin", "stdin", "cache", "json"]
    )]
    pub interactive: bool,
    /// With -i: the longest one wait for input may last (e.g. 30s, 5m);
    /// default: the tier's.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, requires = "interactive")]
    pub idle_timeout: Option<Duration>,
    /// An argument for the guest, placed before those after the module;
    /// repeat for more.
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// An environment variable for the guest; repeat for more. The guest
    /// inherits nothing else.
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Fuel budget (e.g. 1000000 or 1e9); default: the tier's maximum.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub fuel: Option<u64>,
    /// Memory limit (e.g. 16MiB, 512K); default: the tier's maximum.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<u64>,
    /// Wall-clock limit of the guest (e.g. 500ms, 5s); default: the tier's.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Output limit, stdout + stderr (e.g. 1MiB); default: the tier's.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_output: Option<u64>,
    /// Seed of the guest's random numbers.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// The stdout the guest must print; a mismatch exits 107.
    #[arg(long, value_name = "FILE")]
    pub expect_stdout: Option<PathBuf>,
    /// argv[0] of the guest (default main.wasm).
    #[arg(long, value_name = "NAME")]
    pub program_name: Option<String>,
    /// Also store the module on the server (to run it later by sha256).
    #[arg(long)]
    pub keep: bool,
    /// The guest's filesystem and what comes back from it.
    #[command(flatten)]
    pub fs: files::FsArgs,
    /// Let the server answer from its result cache when the same run
    /// (module, stdin, args, env, limits, seed) was done before, and store
    /// this one. Stdin is then read whole before the run starts.
    #[arg(long)]
    pub cache: bool,
    /// Ask for a signed receipt of the run and write it to FILE (check it
    /// offline with `wasmwiz receipt verify`).
    #[arg(long, value_name = "FILE")]
    pub receipt_out: Option<PathBuf>,
    /// Print one JSON object (output, outcome, costs) at the end instead of
    /// streaming the guest's output.
    #[arg(long)]
    pub json: bool,
    /// Print a summary line (outcome, fuel, time, memory) to stderr, and
    /// say when WAT text was compiled.
    #[arg(short, long)]
    pub verbose: bool,
}

impl RunArgs {
    /// The module argument.
    fn module(&self) -> &str {
        &self.module_and_args[0]
    }

    /// argv[1..]: `--arg`s, then everything after the module (a `--` right
    /// after the module only separates).
    fn guest_args(&self) -> impl Iterator<Item = &String> {
        let mut rest = &self.module_and_args[1..];
        if rest.first().is_some_and(|a| a == "--") {
            rest = &rest[1..];
        }
        self.args.iter().chain(rest)
    }
}

/// Where the guest's stdin comes from.
enum StdinSource {
    Empty,
    Process,
    File(PathBuf),
}

impl StdinSource {
    /// `--stdin`, `--no-stdin`, else this process's stdin unless it is a
    /// terminal (a guest must not sit waiting for someone to type).
    fn of(args: &RunArgs) -> Self {
        match args.stdin.as_deref() {
            None if args.interactive => StdinSource::Process,
            Some("-") => StdinSource::Process,
            Some(file) => StdinSource::File(PathBuf::from(file)),
            None if args.no_stdin || std::io::stdin().is_terminal() => StdinSource::Empty,
            None => StdinSource::Process,
        }
    }
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

/// The exit code of a finished run.
pub fn exit_code(finished: &Finished) -> u8 {
    match finished.outcome {
        Outcome::Success if finished.verdict == Verdict::WrongAnswer => exit::WRONG_ANSWER,
        Outcome::Success => 0,
        Outcome::ExitNonzero => u8::try_from(finished.exit_code)
            .ok()
            .filter(|c| *c != 0)
            .unwrap_or(1),
        Outcome::OutOfFuel => exit::OUT_OF_FUEL,
        Outcome::Timeout => exit::TIMEOUT,
        Outcome::Trap => exit::TRAP,
        Outcome::MemoryLimit => exit::MEMORY_LIMIT,
        Outcome::OutputLimit => exit::OUTPUT_LIMIT,
        Outcome::Cancelled => exit::CANCELLED,
        _ => exit::SERVER,
    }
}

/// One line on how the run ended, for stderr.
pub fn describe(finished: &Finished) -> String {
    let what = match finished.outcome {
        Outcome::Success if finished.verdict == Verdict::WrongAnswer => {
            "wrong answer: stdout differs from --expect-stdout".to_string()
        }
        Outcome::Success => "exited 0".to_string(),
        Outcome::ExitNonzero => format!("the guest exited with code {}", finished.exit_code),
        Outcome::Trap => format!("the guest trapped: {}", finished.trap_kind),
        Outcome::OutOfFuel => "the guest ran out of fuel".to_string(),
        Outcome::Timeout => "the guest timed out".to_string(),
        Outcome::MemoryLimit => "the guest hit the memory limit".to_string(),
        Outcome::OutputLimit => "the guest hit the output limit".to_string(),
        Outcome::Cancelled => "the run was cancelled".to_string(),
        other => other.to_string(),
    };
    let detail = if finished.message.is_empty() || finished.outcome == Outcome::Trap {
        String::new()
    } else {
        format!(" ({})", finished.message)
    };
    format!(
        "{what}{detail} [fuel {}, {}, memory {}]",
        finished.fuel_consumed,
        format_duration(finished.duration),
        format_bytes(finished.memory_peak_bytes)
    )
}

/// The run `args` describe, and the stdout it must print (when given).
/// With `whole_stdin`, stdin is read whole before the run starts (a
/// cached or submitted run); otherwise it is streamed.
pub async fn prepare(
    cli: &Cli,
    client: &Client,
    args: &RunArgs,
    whole_stdin: bool,
) -> CliResult<(wasmwiz::Run, Option<Vec<u8>>)> {
    let loaded = module::load(args.module(), args.verbose && !cli.quiet)?;
    module::check_size(cli, client, &loaded).await?;
    let label = loaded.label.clone();
    let expected = match &args.expect_stdout {
        Some(file) => Some(read_input(&file.display().to_string())?),
        None => None,
    };
    let mut limits = Limits::new();
    limits.fuel = args.fuel;
    limits.memory_bytes = args.memory;
    limits.timeout = args.timeout;
    limits.max_output_bytes = args.max_output;
    limits.fs_bytes = args.fs.fs_bytes;
    limits.idle_timeout = args.idle_timeout;
    let filesystem = args.fs.filesystem()?;
    let mut run = client
        .run(loaded.module)
        .args(args.guest_args().cloned())
        .env(args.env.iter().cloned())
        .limits(limits)
        .keep_module(args.keep)
        .cache(cache_policy(args.cache))
        .receipt(args.receipt_out.is_some())
        .interactive(args.interactive)
        .on_upload_progress(progress::reporter(label, cli.quiet));
    if let Some(seed) = args.seed {
        run = run.seed(seed);
    }
    if let Some(name) = &args.program_name {
        run = run.program_name(name);
    }
    if let Some(expected) = &expected {
        run = run.expect_stdout(expected.clone());
    }
    if let Some(filesystem) = filesystem {
        run = run.fs(filesystem);
    }
    match StdinSource::of(args) {
        StdinSource::Empty => {}
        // A cached run's stdin is part of its key: it is sent whole.
        StdinSource::Process if whole_stdin => {
            let mut whole = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut whole)
                .await
                .map_err(|e| Failure::usage(format!("cannot read stdin: {e}")))?;
            run = run.stdin(whole);
        }
        StdinSource::File(path) if whole_stdin => {
            run = run.stdin(read_input(&path.display().to_string())?);
        }
        StdinSource::Process => run = run.stdin_reader(tokio::io::stdin()),
        StdinSource::File(path) => {
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
            run = run.stdin_reader(file);
        }
    }
    Ok((run, expected))
}

/// Runs the module; exits with the guest's code or an outcome's code.
pub async fn run(cli: &Cli, client: &Client, args: &RunArgs) -> CliResult {
    let (run, expected) = prepare(cli, client, args, args.cache).await?;
    if args.json {
        let output = run.output().await.map_err(|e| failure(cli, &e))?;
        if let Some(out_dir) = &args.fs.out_dir {
            files::write_all(out_dir, &output.files)?;
        }
        let files: Vec<_> = output
            .files
            .iter()
            .map(|f| json!({"path": f.path, "bytes": f.contents.len()}))
            .collect();
        super::print_json(&json!({
            "outcome": output.outcome.as_str(),
            "exit_code": output.exit_code,
            "trap_kind": output.trap_kind,
            "message": output.message,
            "verdict": output.verdict.as_str(),
            "stdout": output.stdout_lossy(),
            "stderr": output.stderr_lossy(),
            "fuel_consumed": output.fuel_consumed,
            "duration_us": output.duration.as_micros() as u64,
            "memory_peak_bytes": output.memory_peak_bytes,
            "output_truncated": output.output_truncated,
            "module_sha256": output.started.module_sha256,
            "execution_id": output.started.execution_id,
            "cache_hit": output.started.cache_hit,
            "limits": limits_json(&output.started),
            "files": files,
        }));
        write_receipt(args, &output.finished)?;
        return Ok(exit_code(&output.finished));
    }

    let mut events = run.stream().await.map_err(|e| failure(cli, &e))?;
    let mut captured = expected.as_ref().map(|_| Vec::new());
    let mut finished = None;
    let mut writer = args.fs.out_dir.as_deref().map(files::FileWriter::new);
    // Ctrl-C during an interactive run cancels it: dropping the call stops
    // the guest on the server.
    let interrupted = async {
        if args.interactive {
            let _ = tokio::signal::ctrl_c().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(interrupted);
    loop {
        let event = tokio::select! {
            event = events.next() => match event {
                Some(event) => event,
                None => break,
            },
            () = &mut interrupted => {
                drop(events);
                return Err(Failure {
                    code: exit::CANCELLED,
                    message: if cli.quiet { String::new() } else { "cancelled (Ctrl-C)".into() },
                });
            }
        };
        match event.map_err(|e| failure(cli, &e))? {
            Event::Started(_) => {}
            Event::File(piece) => {
                if let Some(writer) = &mut writer {
                    writer.piece(&piece)?;
                }
            }
            Event::Stdout(chunk) => {
                // Straight through, as it comes (a closed pipe is not our error).
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&chunk).and_then(|()| out.flush());
                if let Some(captured) = &mut captured {
                    captured.extend_from_slice(&chunk);
                }
            }
            Event::Stderr(chunk) => {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(&chunk).and_then(|()| err.flush());
            }
            Event::Finished(f) => finished = Some(f),
        }
    }
    let finished = finished.ok_or_else(|| Failure {
        code: exit::SERVER,
        message: "the run ended without a result".into(),
    })?;
    write_receipt(args, &finished)?;
    let code = exit_code(&finished);
    let unusual = !matches!(finished.outcome, Outcome::Success | Outcome::ExitNonzero);
    if !cli.quiet && args.verbose {
        if let Some(writer) = &writer {
            for (path, bytes) in &writer.written {
                eprintln!("wasmwiz: collected {path} ({})", format_bytes(*bytes));
            }
        }
    }
    if !cli.quiet && (args.verbose || unusual || code == exit::WRONG_ANSWER) {
        eprintln!("wasmwiz: {}", describe(&finished));
        if code == exit::WRONG_ANSWER {
            if let (Some(expected), Some(got)) = (&expected, &captured) {
                if let Some(mismatch) = first_difference(expected, got) {
                    eprintln!("wasmwiz: {mismatch}");
                }
            }
        }
    }
    Ok(code)
}

fn limits_json(started: &Started) -> serde_json::Value {
    let l = &started.limits;
    json!({
        "fuel": l.fuel,
        "memory_bytes": l.memory_bytes,
        "timeout_ms": l.timeout.map(|t| t.as_millis() as u64),
        "max_output_bytes": l.max_output_bytes,
        "fs_bytes": l.fs_bytes,
    })
}

/// Writes the run's receipt to `--receipt-out` (a serialized `Receipt`).
fn write_receipt(args: &RunArgs, finished: &Finished) -> CliResult<()> {
    let Some(path) = &args.receipt_out else {
        return Ok(());
    };
    let receipt = finished.receipt.as_ref().ok_or_else(|| Failure {
        code: exit::SERVER,
        message: "the server sent no receipt".into(),
    })?;
    std::fs::write(path, prost::Message::encode_to_vec(receipt))
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))
}

/// `--cache` as the request's policy.
pub fn cache_policy(cache: bool) -> wasmwiz::proto::CachePolicy {
    if cache {
        wasmwiz::proto::CachePolicy::Use
    } else {
        wasmwiz::proto::CachePolicy::Unspecified
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(outcome: Outcome, exit_code: i32, verdict: Verdict) -> Finished {
        Finished {
            outcome,
            exit_code,
            trap_kind: String::new(),
            message: String::new(),
            fuel_consumed: 0,
            duration: Duration::ZERO,
            memory_peak_bytes: 0,
            stdout_bytes: 0,
            stderr_bytes: 0,
            output_truncated: false,
            verdict,
            receipt: None,
        }
    }

    #[test]
    fn exit_codes() {
        let code = |o, c, v| exit_code(&finished(o, c, v));
        assert_eq!(code(Outcome::Success, 0, Verdict::None), 0);
        assert_eq!(code(Outcome::Success, 0, Verdict::Accepted), 0);
        assert_eq!(code(Outcome::Success, 0, Verdict::WrongAnswer), 107);
        assert_eq!(code(Outcome::ExitNonzero, 42, Verdict::None), 42);
        assert_eq!(code(Outcome::ExitNonzero, 255, Verdict::None), 255);
        assert_eq!(code(Outcome::ExitNonzero, 256, Verdict::None), 1);
        assert_eq!(code(Outcome::ExitNonzero, -5, Verdict::None), 1);
        assert_eq!(code(Outcome::OutOfFuel, -1, Verdict::None), 101);
        assert_eq!(code(Outcome::Timeout, -1, Verdict::None), 102);
        assert_eq!(code(Outcome::Trap, -1, Verdict::None), 103);
        assert_eq!(code(Outcome::MemoryLimit, -1, Verdict::None), 104);
        assert_eq!(code(Outcome::OutputLimit, -1, Verdict::None), 105);
        assert_eq!(code(Outcome::Cancelled, -1, Verdict::None), 106);
    }
}
