//! The async side of an execution: starts it (inline only when
//! instantiation is provably cheap, with a short first slice whose host
//! calls may not overdraw; otherwise on a worker), then hands slices to the
//! worker pool; between slices it sends
//! output (awaiting a slow client: backpressure), feeds streamed stdin, and
//! stops the guest on timeout or cancellation.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;
use wasmi_wasi::wasi_common::pipe::{ReadPipe, WritePipe};

use super::{
    io::{OutputBuffer, OutputChunk, StdinBuffer, Stream},
    outcome::{Outcome, Report},
    run::{cancelled_ending, timeout_ending, Ending, Execution, Setup, Step},
    trace::ThreadTrace,
    vfs::{cut_files, CollectedFile, Fs},
    wasi::{build_ctx, WasiSetup},
    CompiledModule, Sandbox,
};

/// Where the guest's stdin comes from.
pub enum StdinSource {
    /// All of it, up front.
    Bytes(Bytes),
    /// Chunks as the client sends them; the channel closing is end of file.
    Stream(mpsc::Receiver<Bytes>),
    /// Chunks as a person types them: the job's timeout counts only running
    /// time, each wait for input is bounded by `idle` and the whole run by
    /// `session`.
    Interactive {
        feed: mpsc::Receiver<Bytes>,
        idle: Duration,
        session: Duration,
        /// The execution's admission: its running slot is given back while
        /// the guest waits, and taken again before it runs on.
        permit: Option<super::Permit>,
    },
}

/// One execution request with its effective limits.
pub struct Job {
    pub module: Arc<CompiledModule>,
    pub program_name: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub random_seed: u64,
    pub stdin: StdinSource,
    pub fuel: u64,
    pub memory_bytes: u64,
    pub timeout: Duration,
    pub max_output_bytes: u64,
    /// The guest's in-memory filesystem; `None` gives it no preopens.
    pub fs: Option<super::vfs::FsSpec>,
}

/// Streamed stdin buffered ahead of the guest's reads, at most.
const STDIN_READ_AHEAD: u64 = 1024 * 1024;
/// Executions whose memory (or filesystem) grew past this are dropped on
/// a worker.
const DROP_INLINE_MAX_MEMORY: u64 = 16 * 1024 * 1024;
/// Executions whose filesystem has more entries are dropped on a worker.
const DROP_INLINE_MAX_ENTRIES: u64 = 4096;
/// Args plus env strings, and their bytes, at most for the guest's WASI
/// context to be built on an async runtime thread (it copies them all).
const INLINE_MAX_STRINGS: usize = 256;
const INLINE_MAX_STRING_BYTES: usize = 64 * 1024;

/// Counts first, so a huge list is not even walked on the runtime thread.
fn world_is_small(args: &[String], env: &[(String, String)]) -> bool {
    if args.len() + env.len() > INLINE_MAX_STRINGS {
        return false;
    }
    let bytes = args.iter().map(String::len).sum::<usize>()
        + env.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    bytes <= INLINE_MAX_STRING_BYTES
}

impl Sandbox {
    /// Runs `job` to its end, sending output to `out` as it is produced.
    /// Dropping `out`'s receiver or cancelling `cancel` ends it as cancelled.
    pub async fn execute(
        &self,
        job: Job,
        out: mpsc::Sender<OutputChunk>,
        cancel: CancellationToken,
    ) -> Report {
        self.execute_traced(job, out, cancel, None).await
    }

    /// [`Sandbox::execute`], recording in `trace` which thread instantiated
    /// the module and ran each host call.
    pub async fn execute_traced(
        &self,
        job: Job,
        out: mpsc::Sender<OutputChunk>,
        cancel: CancellationToken,
        trace: Option<ThreadTrace>,
    ) -> Report {
        let started = std::time::Instant::now();
        let now = Instant::now();
        let output = OutputBuffer::new(job.max_output_bytes);
        let mut permit = None;
        let (stdin, mut feed, session) = match job.stdin {
            StdinSource::Bytes(bytes) => (StdinBuffer::complete(bytes), None, None),
            StdinSource::Stream(rx) => (StdinBuffer::default(), Some(rx), None),
            StdinSource::Interactive {
                feed,
                idle,
                session,
                permit: admitted,
            } => {
                permit = admitted;
                (
                    StdinBuffer::default(),
                    Some(feed),
                    Some(Session {
                        end: now + session,
                        length: session,
                        idle,
                    }),
                )
            }
        };
        let mut deadline = Deadline {
            at: session.map_or(now + job.timeout, |s| s.end.min(now + job.timeout)),
            timeout: job.timeout,
            session,
        };
        // Long host work stops at the deadline; an interactive run's
        // deadline moves with its waits, so its host work is bounded by the
        // session's end (and by fuel).
        let host_deadline = session.map_or(deadline.at, |s| s.end);
        let stop_flag = Arc::new(AtomicBool::new(false));
        let trace_for_collect = trace.clone();
        // Inline only when everything before the first instruction is
        // provably cheap: a small world (args, env), no filesystem (building
        // it copies the request's tree, and its calls may do work priced
        // after the fact) and a module with no start section and small
        // segments and tables.
        let fs_spec = job.fs;
        let collect_patterns = fs_spec
            .as_ref()
            .map(|spec| spec.collect.clone())
            .unwrap_or_default();
        let inline = fs_spec.is_none()
            && job.module.instantiates_inline()
            && world_is_small(&job.args, &job.env);
        let prepare = {
            let (output, stdin, stop_flag) = (output.clone(), stdin.clone(), stop_flag.clone());
            let (fuel, memory_bytes, timeout) = (job.fuel.max(1), job.memory_bytes, job.timeout);
            let start_fuel_cap = self.config.slice_fuel;
            let world = WasiSetup {
                program_name: job.program_name,
                args: job.args,
                env: job.env,
                random_seed: job.random_seed,
                stdin: Box::new(ReadPipe::new(stdin.reader())),
                stdout: Box::new(WritePipe::new(output.writer(Stream::Stdout))),
                stderr: Box::new(WritePipe::new(output.writer(Stream::Stderr))),
                fs: None,
            };
            move || -> Result<Setup, Ending> {
                let mut world = world;
                let fs = match fs_spec {
                    Some(spec) => {
                        if let Some(trace) = &trace {
                            trace.record("fs_build");
                        }
                        Some(Fs::build(&spec).map_err(|error| {
                            Ending::stopped(Outcome::Trap, format!("invalid filesystem: {error}"))
                        })?)
                    }
                    None => None,
                };
                world.fs = fs.clone();
                let wasi = build_ctx(world).map_err(|error| {
                    Ending::stopped(Outcome::Trap, format!("invalid args or env: {error}"))
                })?;
                Ok(Setup {
                    wasi,
                    output,
                    stdin,
                    fuel,
                    memory_bytes,
                    start_fuel_cap,
                    deadline: Some(host_deadline.into_std()),
                    timeout,
                    cancelled: stop_flag,
                    trace,
                    fs,
                })
            }
        };
        let linker = self.linker.clone();
        let module = job.module.clone();
        let begin = move |first_slice: u64, inline: bool| -> Result<(Execution, Step), Ending> {
            let setup = prepare()?;
            Ok(match Execution::start(&linker, &module.module, setup) {
                (mut exec, None) if inline => {
                    let step = exec.run_inline_slice(first_slice);
                    (exec, step)
                }
                (mut exec, None) => {
                    let step = exec.run_slice(first_slice);
                    (exec, step)
                }
                (exec, Some(ending)) => (exec, Step::Finished(ending)),
            })
        };
        let begun = if inline {
            // A short inline slice on which no host call may overdraw, so
            // tiny programs finish without a thread hop.
            begin(self.config.inline_slice_fuel, true)
        } else {
            let slice = self.config.slice_fuel;
            self.on_worker(move || begin(slice, false), &cancel, &out, &stop_flag)
                .await
        };
        let (mut exec, mut step) = match begun {
            Ok(begun) => begun,
            Err(ending) => return finish(ending, None, &output, &stdin, started),
        };

        let ending = loop {
            if let Err(ending) = flush(&output, &out, &cancel, deadline).await {
                break ending;
            }
            match step {
                Step::Finished(ending) => break ending,
                Step::Continue => {}
                Step::NeedStdin => {
                    if let Err(ending) =
                        wait_for_stdin(&mut feed, &stdin, &cancel, &mut deadline, &mut permit).await
                    {
                        break ending;
                    }
                }
            }
            if cancel.is_cancelled() || out.is_closed() {
                break cancelled();
            }
            if Instant::now() >= deadline.at {
                break deadline.ending();
            }
            if let Some(rx) = feed.as_mut() {
                read_ahead(rx, &stdin);
            }
            let slice = self.config.slice_fuel;
            let next = move || {
                let step = exec.run_slice(slice);
                (exec, step)
            };
            (exec, step) = self.on_worker(next, &cancel, &out, &stop_flag).await;
        };
        if ending.outcome == Outcome::Timeout {
            // Deliver what the guest wrote before the deadline, without waiting.
            for chunk in output.take() {
                if out.try_send(chunk).is_err() {
                    break;
                }
            }
        }
        if ending.trap_kind == super::run::ENGINE_ERROR {
            // Whatever the interpreter left half-done for this module stays out of the cache.
            self.cache_remove(&job.module.sha256);
        }
        let mut report = finish(ending, Some(&exec), &output, &stdin, started);
        if let Some(fs) = exec.filesystem() {
            if report.outcome != Outcome::Cancelled && !collect_patterns.is_empty() {
                let trace = trace_for_collect;
                let files = self
                    .pool
                    .run(move || {
                        if let Some(trace) = &trace {
                            trace.record("fs_collect");
                        }
                        fs.collect(&collect_patterns)
                    })
                    .await;
                add_files(&mut report, files, job.max_output_bytes);
                report.duration = started.elapsed();
            }
        }
        let big_tree = exec.filesystem().is_some_and(|fs| {
            let tree = fs.lock();
            tree.bytes() > DROP_INLINE_MAX_MEMORY || tree.entries() > DROP_INLINE_MAX_ENTRIES
        });
        if exec.memory_peak() > DROP_INLINE_MAX_MEMORY || big_tree {
            // Unmapping a large touched memory or freeing a big tree takes
            // milliseconds: not here.
            self.pool.spawn(move || drop(exec));
        }
        report
    }
}

impl Sandbox {
    /// Runs `f` on a worker; if the execution is cancelled meanwhile, tells
    /// long host work inside `f` to stop (through `cancelled`).
    async fn on_worker<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
        cancel: &CancellationToken,
        out: &mpsc::Sender<OutputChunk>,
        cancelled: &AtomicBool,
    ) -> R {
        let work = self.pool.run(f);
        tokio::pin!(work);
        tokio::select! {
            biased;
            result = &mut work => return result,
            () = cancel.cancelled() => {}
            () = out.closed() => {}
        }
        cancelled.store(true, Ordering::Relaxed);
        work.await
    }
}

/// Moves already-arrived stdin chunks into the buffer, up to the read-ahead.
fn read_ahead(rx: &mut mpsc::Receiver<Bytes>, stdin: &StdinBuffer) {
    while stdin.buffered() < STDIN_READ_AHEAD {
        match rx.try_recv() {
            Ok(chunk) => stdin.push(chunk),
            Err(mpsc::error::TryRecvError::Empty) => break,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                stdin.close();
                break;
            }
        }
    }
}

/// When the run must end, and the timeout it came from (for the message).
#[derive(Clone, Copy)]
struct Deadline {
    at: Instant,
    timeout: Duration,
    /// Set for interactive runs, whose deadline moves on by each wait.
    session: Option<Session>,
}

/// An interactive run's bounds beyond its running time.
#[derive(Clone, Copy)]
struct Session {
    end: Instant,
    length: Duration,
    idle: Duration,
}

impl Deadline {
    /// How a run that reached this deadline ends.
    fn ending(&self) -> Ending {
        match self.session {
            Some(session) if self.at >= session.end => session_over(session.length),
            _ => timed_out(self.timeout),
        }
    }

    /// Moves the deadline on by a wait for input (time not spent running),
    /// never past the session's end.
    fn add_wait(&mut self, waited: Duration) {
        if let Some(session) = self.session {
            self.at = (self.at + waited).min(session.end);
        }
    }
}

async fn flush(
    output: &OutputBuffer,
    out: &mpsc::Sender<OutputChunk>,
    cancel: &CancellationToken,
    deadline: Deadline,
) -> Result<(), Ending> {
    for chunk in output.take() {
        tokio::select! {
            sent = out.send(chunk) => if sent.is_err() { return Err(cancelled()) },
            () = cancel.cancelled() => return Err(cancelled()),
            () = tokio::time::sleep_until(deadline.at) => return Err(deadline.ending()),
        }
    }
    Ok(())
}

async fn wait_for_stdin(
    feed: &mut Option<mpsc::Receiver<Bytes>>,
    stdin: &StdinBuffer,
    cancel: &CancellationToken,
    deadline: &mut Deadline,
    permit: &mut Option<super::Permit>,
) -> Result<(), Ending> {
    let Some(rx) = feed.as_mut() else {
        stdin.close();
        return Ok(());
    };
    if let Some(session) = deadline.session {
        return wait_for_input(rx, stdin, cancel, deadline, session, permit).await;
    }
    // Cancellation and the deadline first: once either has come, no more
    // stdin reaches the guest.
    tokio::select! {
        biased;
        () = cancel.cancelled() => return Err(cancelled()),
        () = tokio::time::sleep_until(deadline.at) => return Err(timed_out(deadline.timeout)),
        chunk = rx.recv() => match chunk {
            Some(chunk) => stdin.push(chunk),
            None => stdin.close(),
        },
    }
    Ok(())
}

/// An interactive guest's wait: bounded by the idle timeout and the
/// session's end, not by the running deadline, which moves on by the wait.
async fn wait_for_input(
    rx: &mut mpsc::Receiver<Bytes>,
    stdin: &StdinBuffer,
    cancel: &CancellationToken,
    deadline: &mut Deadline,
    session: Session,
    permit: &mut Option<super::Permit>,
) -> Result<(), Ending> {
    let began = Instant::now();
    let idle_end = (began + session.idle).min(session.end);
    if let Some(permit) = permit.as_mut() {
        permit.park();
    }
    tokio::select! {
        biased;
        () = cancel.cancelled() => return Err(cancelled()),
        () = tokio::time::sleep_until(idle_end) => {
            return Err(if idle_end >= session.end {
                session_over(session.length)
            } else {
                idle_ending(session.idle)
            })
        }
        chunk = rx.recv() => match chunk {
            Some(chunk) => stdin.push(chunk),
            None => stdin.close(),
        },
    }
    if let Some(permit) = permit.as_mut() {
        // Waiting for a slot is waiting too, bounded by the session.
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(cancelled()),
            () = tokio::time::sleep_until(session.end) => return Err(session_over(session.length)),
            () = permit.unpark() => {}
        }
    }
    deadline.add_wait(began.elapsed());
    Ok(())
}

fn idle_ending(idle: Duration) -> Ending {
    Ending::stopped(
        Outcome::Timeout,
        format!(
            "the guest was idle: it waited for stdin longer than its {} ms idle timeout",
            idle.as_millis()
        ),
    )
}

fn session_over(length: Duration) -> Ending {
    Ending::stopped(
        Outcome::Timeout,
        format!(
            "the interactive session reached its maximum length of {} ms",
            length.as_millis()
        ),
    )
}

/// Puts the collected files in the report; their bytes count towards the
/// output limit after stdout and stderr: past it they are cut at exactly
/// the limit and a run that had ended normally becomes `OutputLimit`.
fn add_files(report: &mut Report, mut files: Vec<CollectedFile>, max_output_bytes: u64) {
    let room = max_output_bytes.saturating_sub(report.stdout_bytes + report.stderr_bytes);
    if cut_files(&mut files, room) {
        report.output_truncated = true;
        if matches!(report.outcome, Outcome::Success | Outcome::ExitNonzero) {
            report.outcome = Outcome::OutputLimit;
            report.message =
                "the collected files exceeded max_output_bytes (after stdout and stderr); they were cut at the limit"
                    .to_string();
        }
    }
    report.files = files;
}

fn cancelled() -> Ending {
    cancelled_ending()
}

fn timed_out(timeout: Duration) -> Ending {
    timeout_ending(timeout)
}

fn finish(
    ending: Ending,
    exec: Option<&Execution>,
    output: &OutputBuffer,
    stdin: &StdinBuffer,
    started: std::time::Instant,
) -> Report {
    let (stdout_bytes, stderr_bytes) = output.totals();
    Report {
        outcome: ending.outcome,
        exit_code: ending.exit_code,
        trap_kind: ending.trap_kind,
        message: ending.message,
        fuel_consumed: exec.map_or(0, Execution::fuel_consumed),
        duration: started.elapsed(),
        memory_peak_bytes: exec.map_or(0, Execution::memory_peak),
        stdout_bytes,
        stderr_bytes,
        output_truncated: output.truncated(),
        stdin_bytes: stdin.total(),
        files: Vec::new(),
    }
}
