//! Detached executions: `wasmwiz submit` queues a run and prints its id;
//! `status ID`, `watch ID` (streams its output, reconnecting when the
//! connection drops) and `wait ID` (exit code mirrors the guest) follow it
//! later, from any machine with the key.

use std::{io::Write, time::Duration};

use clap::Args;
use futures::StreamExt;
use serde_json::json;
use wasmwiz::{Client, Code, Error, Event, Execution, ExecutionState, Finished};

use super::run::{describe, exit_code, prepare, RunArgs};
use crate::{exit, failure, Cli, CliResult, Failure};

/// `wasmwiz submit` flags: those of `run`, and a webhook.
#[derive(Debug, Args)]
#[command(after_long_help = crate::EXIT_CODES_HELP)]
pub struct SubmitArgs {
    /// POST the result here (signed with the account's webhook secret)
    /// when the execution ends.
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// `wasmwiz status|watch|wait ID` flags.
#[derive(Debug, Args)]
pub struct ExecutionArgs {
    /// The execution id `wasmwiz submit` printed.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Queues the run; prints its execution id.
pub async fn submit(cli: &Cli, client: &Client, args: &SubmitArgs) -> CliResult {
    let run = &args.run;
    let refused = [
        (run.interactive, "-i (a submitted run has no terminal)"),
        (run.receipt_out.is_some(), "--receipt-out"),
        (run.fs.out_dir.is_some(), "--out-dir"),
    ];
    if let Some((_, flag)) = refused.iter().find(|(given, _)| *given) {
        return Err(Failure::usage(format!(
            "{flag} cannot be used with submit: collect the result with `wasmwiz wait ID`"
        )));
    }
    let (prepared, _) = prepare(cli, client, run, true).await?;
    let id = prepared
        .submit_with_webhook(args.webhook.clone().unwrap_or_default())
        .await
        .map_err(|e| failure(cli, &e))?;
    if run.json {
        super::print_json(&json!({ "execution_id": id }));
    } else {
        println!("{id}");
    }
    Ok(0)
}

/// The state's name as printed.
fn state_name(state: ExecutionState) -> &'static str {
    match state {
        ExecutionState::Queued => "queued",
        ExecutionState::Running => "running",
        ExecutionState::Finished => "finished",
        ExecutionState::Cancelled => "cancelled",
        ExecutionState::Unspecified => "unknown",
    }
}

fn execution_json(execution: &Execution, with_output: bool) -> serde_json::Value {
    let finished = execution.finished.as_ref().map(|f| {
        json!({
            "outcome": f.outcome.as_str(),
            "exit_code": f.exit_code,
            "message": f.message,
            "fuel_consumed": f.fuel_consumed,
            "duration_us": f.duration.as_micros() as u64,
            "output_truncated": f.output_truncated,
        })
    });
    let hooks: Vec<_> = execution
        .webhook_attempts
        .iter()
        .map(|a| json!({"at_ms": a.at_ms, "http_status": a.http_status, "error": a.error}))
        .collect();
    let mut value = json!({
        "execution_id": execution.id,
        "state": state_name(execution.state),
        "module_sha256": execution.module_sha256,
        "attempts": execution.attempts,
        "finished": finished,
        "error": execution.error,
        "webhook_attempts": hooks,
    });
    if with_output {
        value["stdout"] = String::from_utf8_lossy(&execution.stdout).into();
        value["stderr"] = String::from_utf8_lossy(&execution.stderr).into();
    }
    value
}

/// Prints where the execution is and how it ended.
pub async fn status(cli: &Cli, client: &Client, args: &ExecutionArgs) -> CliResult {
    let execution = client
        .get_execution(&args.id)
        .await
        .map_err(|e| failure(cli, &e))?;
    if args.json {
        super::print_json(&execution_json(&execution, false));
        return Ok(0);
    }
    println!("execution  {}", execution.id);
    println!("state      {}", state_name(execution.state));
    println!("module     {}", execution.module_sha256);
    println!("attempts   {}", execution.attempts);
    if let Some(finished) = &execution.finished {
        println!("outcome    {}", describe(finished));
    }
    if !execution.error.is_empty() {
        println!("error      {}", execution.error);
    }
    for (n, hook) in execution.webhook_attempts.iter().enumerate() {
        let answer = match (hook.http_status, hook.error.as_str()) {
            (0, error) => error.to_string(),
            (status, "") => format!("HTTP {status}"),
            (status, error) => format!("HTTP {status}: {error}"),
        };
        println!("webhook    #{} at {}: {answer}", n + 1, at_ms(hook.at_ms));
    }
    Ok(0)
}

/// Unix milliseconds as RFC 3339.
fn at_ms(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    super::rfc3339(Some(at))
}

/// The exit code of an execution that ended, with a message when it has
/// no guest result.
fn ended_code(execution: &Execution) -> CliResult {
    if let Some(finished) = &execution.finished {
        return Ok(exit_code(finished));
    }
    if execution.state == ExecutionState::Cancelled {
        return Ok(exit::CANCELLED);
    }
    // Refused when a replica began it: the request's fault, or the server's.
    let refused = ["InvalidArgument", "NotFound", "FailedPrecondition"]
        .iter()
        .any(|code| execution.error.starts_with(code));
    Err(Failure {
        code: if refused { exit::USAGE } else { exit::SERVER },
        message: format!("the execution ended without a result: {}", execution.error),
    })
}

/// How long `wait` sleeps between looks, growing up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(200);
const MAX_POLL: Duration = Duration::from_secs(2);

/// Blocks until the execution has ended; prints its output; exits as
/// `wasmwiz run` would have.
pub async fn wait(cli: &Cli, client: &Client, args: &ExecutionArgs) -> CliResult {
    let mut poll = FIRST_POLL;
    let execution = loop {
        let execution = client
            .get_execution(&args.id)
            .await
            .map_err(|e| failure(cli, &e))?;
        if execution.is_ended() {
            break execution;
        }
        tokio::time::sleep(poll).await;
        poll = (poll * 2).min(MAX_POLL);
    };
    if args.json {
        super::print_json(&execution_json(&execution, true));
        return ended_code(&execution);
    }
    let _ = std::io::stdout().lock().write_all(&execution.stdout);
    let _ = std::io::stderr().lock().write_all(&execution.stderr);
    report_unusual(cli, execution.finished.as_ref());
    ended_code(&execution)
}

/// One line on stderr when the guest did not simply exit.
fn report_unusual(cli: &Cli, finished: Option<&Finished>) {
    if let Some(finished) = finished {
        let usual = matches!(
            finished.outcome,
            wasmwiz::Outcome::Success | wasmwiz::Outcome::ExitNonzero
        );
        if !cli.quiet && !usual {
            eprintln!("wasmwiz: {}", describe(finished));
        }
    }
}

/// A connection that broke (or a server going away) rather than an answer.
fn is_dropped(error: &Error) -> bool {
    error.is_connection_error()
        || matches!(
            error.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled
        )
}

/// Reconnects in a row without an event in between, at most.
const MAX_RECONNECTS: u32 = 10;

/// How much of one output stream was printed, so a replay (each watch
/// starts from the beginning) prints only what is new.
#[derive(Default)]
struct Resume {
    printed: u64,
    /// Bytes of this stream seen on the current connection.
    seen: u64,
}

impl Resume {
    /// The part of `chunk` not printed before.
    fn fresh<'a>(&mut self, chunk: &'a [u8]) -> &'a [u8] {
        let start = self.seen;
        self.seen += chunk.len() as u64;
        if self.seen <= self.printed {
            return &[];
        }
        let skip = self.printed.saturating_sub(start) as usize;
        self.printed = self.seen;
        &chunk[skip..]
    }
}

/// Streams the execution's output as it comes, from the start;
/// reconnects when the connection drops, printing nothing twice.
pub async fn watch(cli: &Cli, client: &Client, args: &ExecutionArgs) -> CliResult {
    let (mut stdout, mut stderr) = (Resume::default(), Resume::default());
    let mut reconnects = 0;
    let finished = 'connections: loop {
        stdout.seen = 0;
        stderr.seen = 0;
        let dropped = match client.watch_execution(&args.id).await {
            Ok(mut events) => loop {
                match events.next().await {
                    Some(Ok(event)) => {
                        reconnects = 0;
                        match event {
                            Event::Stdout(chunk) => {
                                let mut out = std::io::stdout().lock();
                                let _ = out
                                    .write_all(stdout.fresh(&chunk))
                                    .and_then(|()| out.flush());
                            }
                            Event::Stderr(chunk) => {
                                let mut err = std::io::stderr().lock();
                                let _ = err
                                    .write_all(stderr.fresh(&chunk))
                                    .and_then(|()| err.flush());
                            }
                            Event::Finished(finished) => break 'connections Some(finished),
                            Event::Started(_) | Event::File(_) => {}
                        }
                    }
                    Some(Err(error)) => break error,
                    // Ended without `finished`: cancelled, or it ended
                    // without a result; GetExecution says which.
                    None => break 'connections None,
                }
            },
            Err(error) => error,
        };
        if !is_dropped(&dropped) || reconnects >= MAX_RECONNECTS {
            return Err(failure(cli, &dropped));
        }
        reconnects += 1;
        let wait = FIRST_POLL * 2u32.pow(reconnects.min(4));
        if !cli.quiet {
            eprintln!(
                "wasmwiz: the connection dropped ({}); reconnecting",
                dropped.code()
            );
        }
        tokio::time::sleep(wait).await;
    };
    match finished {
        Some(finished) => {
            report_unusual(cli, Some(&finished));
            Ok(exit_code(&finished))
        }
        None => {
            let execution = client
                .get_execution(&args.id)
                .await
                .map_err(|e| failure(cli, &e))?;
            ended_code(&execution)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Resume;

    #[test]
    fn a_replay_prints_only_what_is_new() {
        let mut resume = Resume::default();
        assert_eq!(resume.fresh(b"tick 0\n"), b"tick 0\n");
        assert_eq!(resume.fresh(b"tick 1\n"), b"tick 1\n");
        // Reconnected: the replay repeats, then goes past what was printed.
        resume.seen = 0;
        assert_eq!(resume.fresh(b"tick 0\n"), b"");
        assert_eq!(resume.fresh(b"tick 1\ntick 2\n"), b"tick 2\n");
        assert_eq!(resume.fresh(b"done\n"), b"done\n");
    }
}
