//! `wasmwiz batch`: a module's test cases from a JSON file, in one
//! `RunBatch` call; a table, a summary and optionally JUnit XML.

use std::{
    collections::HashMap,
    io::IsTerminal,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use clap::Args;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::json;
use wasmwiz::{
    util::{format_duration, parse_count, parse_duration, parse_size},
    BatchOutput, Case, CaseResult, Client, Filesystem, Limits, NotRun,
};

use super::{files, module, progress};
use crate::{exit, failure, Cli, CliResult, Failure};

/// `wasmwiz batch` flags.
#[derive(Debug, Args)]
#[command(after_long_help = CASES_HELP)]
pub struct BatchArgs {
    /// The cases file (JSON; see below).
    #[arg(value_name = "CASES.json")]
    pub cases: PathBuf,
    /// The module (a .wasm file or a stored sha256); overrides the file's
    /// `module`.
    #[arg(long, short, value_name = "MODULE.wasm | SHA256")]
    pub module: Option<String>,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Name of the test suite in reports (default: the cases file's name).
    #[arg(long, value_name = "NAME")]
    pub suite: Option<String>,
    /// Fuel budget of each case.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub fuel: Option<u64>,
    /// Memory limit of each case (e.g. 64MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<u64>,
    /// Wall-clock limit of each case (e.g. 2s).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Output limit of each case.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_output: Option<u64>,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Let the server answer unchanged cases from its result cache (and
    /// store the others); cached cases are marked in the JUnit report.
    #[arg(long)]
    pub cache: bool,
    /// Stop the whole batch after this long (e.g. 5m); the cases without a
    /// result are reported as not run (JUnit errors) and the exit code is
    /// 102.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub batch_timeout: Option<Duration>,
    /// The tree every case starts from, and where collected files go
    /// (`<out-dir>/<case name or index>/...`).
    #[command(flatten)]
    pub fs: files::FsArgs,
}

const CASES_HELP: &str = r#"Cases file: either a list of cases, or an object with the module:

  {
    "module": "fib.wasm",            (relative to this file; or a sha256)
    "env": {"LANG": "C"},            (optional, for every case)
    "cases": [
      {"name": "fib 10", "stdin": "10\n", "expected_stdout": "55\n"},
      {"name": "args", "args": ["-v"], "expected_stdout_file": "out.txt"},
      {"name": "big", "stdin_file": "big.in"},
      {"name": "fixtures", "dir": "case1/", "files": {"cfg.txt": "cfg.txt"},
       "collect": ["out/**"]}
    ]
  }

Each case may have name, stdin or stdin_file, args, and expected_stdout or
expected_stdout_file (paths relative to the cases file). A case's files
(guest path -> local file) and dir (a local directory whose contents go at
the guest's root) are laid over the tree of --file/--dir/--mount, replacing
entries with the same path; its collect patterns add to --collect. Files
collected from a case are written to <--out-dir>/<case name>/ (the case's
index when its name is not a plain file name). A case passes when
the guest exits 0 and its stdout equals the expected stdout (when given).

Rows are printed as cases finish (with a progress line on a terminal); a
wrong answer's row shows the first differing line and both byte counts,
and the JUnit <failure> holds a short diff.

Exit codes: 0 when every case passed; 107 when any failed; 102 when
--batch-timeout stopped the batch (the cases left are "not run", as JUnit
errors); 108-112 as for `wasmwiz run` when the batch could not run or
stopped on an error (the JUnit report is still written)."#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    module: Option<String>,
    name: Option<String>,
    #[serde(default)]
    env: HashMap<String, String>,
    cases: Vec<CaseFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    name: Option<String>,
    stdin: Option<String>,
    stdin_file: Option<PathBuf>,
    #[serde(default)]
    args: Vec<String>,
    expected_stdout: Option<String>,
    expected_stdout_file: Option<PathBuf>,
    /// Guest path -> local file (relative to the cases file).
    #[serde(default)]
    files: std::collections::BTreeMap<String, PathBuf>,
    /// A local directory whose contents go at the guest's root.
    dir: Option<PathBuf>,
    #[serde(default)]
    collect: Vec<String>,
}

/// A case's own filesystem from its `files`, `dir` and `collect`.
fn case_fs(dir: &Path, c: &CaseFile) -> CliResult<Option<Filesystem>> {
    if c.files.is_empty() && c.dir.is_none() && c.collect.is_empty() {
        return Ok(None);
    }
    let unreadable = |path: &Path, e: std::io::Error| {
        Failure::usage(format!("cannot read {}: {e}", path.display()))
    };
    let mut fs = Filesystem::new();
    if let Some(local) = &c.dir {
        let local = dir.join(local);
        fs = fs
            .local_dir("", &local)
            .map_err(|e| unreadable(&local, e))?;
    }
    for (guest, local) in &c.files {
        let local = dir.join(local);
        fs = fs
            .local_file(guest, &local)
            .map_err(|e| unreadable(&local, e))?;
    }
    for pattern in &c.collect {
        fs = fs.collect(pattern);
    }
    Ok(Some(fs))
}

/// The folder of `<out-dir>` a case's files go to: its name when that is a
/// plain file name, else its index.
fn case_folder(case: &CaseResult) -> String {
    let plain = !case.name.is_empty()
        && case.name != "."
        && case.name != ".."
        && !case.name.contains(['/', '\\', '\0']);
    if plain {
        case.name.clone()
    } else {
        case.index.to_string()
    }
}

fn read_relative(dir: &Path, file: &Path) -> CliResult<Vec<u8>> {
    let path = dir.join(file);
    std::fs::read(&path).map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))
}

/// A parsed cases file.
struct Loaded {
    /// The file's `module`, resolved against the file's folder.
    module: Option<String>,
    /// The file's `name`.
    name: Option<String>,
    env: HashMap<String, String>,
    cases: Vec<Case>,
}

/// Parses a cases file (a list of cases, or an object with `cases`).
fn load(path: &Path) -> CliResult<Loaded> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
    let bad = |e: serde_json::Error| Failure::usage(format!("{}: {e}", path.display()));
    let value: serde_json::Value = serde_json::from_str(&text).map_err(bad)?;
    let suite: SuiteFile = if value.is_array() {
        SuiteFile {
            module: None,
            name: None,
            env: HashMap::new(),
            cases: serde_json::from_value(value).map_err(bad)?,
        }
    } else {
        serde_json::from_value(value).map_err(bad)?
    };
    if suite.cases.is_empty() {
        return Err(Failure::usage(format!("{}: no cases", path.display())));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut cases = Vec::with_capacity(suite.cases.len());
    for (i, c) in suite.cases.into_iter().enumerate() {
        let fs = case_fs(dir, &c)?;
        let stdin = match (c.stdin, c.stdin_file) {
            (Some(_), Some(_)) => {
                return Err(Failure::usage(format!(
                    "{}: case {i} has both stdin and stdin_file",
                    path.display()
                )))
            }
            (Some(s), None) => s.into_bytes(),
            (None, Some(f)) => read_relative(dir, &f)?,
            (None, None) => Vec::new(),
        };
        let expected = match (c.expected_stdout, c.expected_stdout_file) {
            (Some(_), Some(_)) => {
                return Err(Failure::usage(format!(
                    "{}: case {i} has both expected_stdout and expected_stdout_file",
                    path.display()
                )))
            }
            (Some(s), None) => Some(s.into_bytes()),
            (None, Some(f)) => Some(read_relative(dir, &f)?),
            (None, None) => None,
        };
        let mut case = Case::new(c.name.unwrap_or_else(|| format!("case {i}")))
            .stdin(stdin)
            .args(c.args);
        if let Some(fs) = fs {
            case = case.fs(fs);
        }
        if let Some(expected) = expected {
            case = case.expect_stdout(expected);
        }
        cases.push(case);
    }
    let module = suite.module.map(|m| {
        let relative = dir.join(&m);
        if relative.is_file() {
            relative.display().to_string()
        } else {
            m
        }
    });
    Ok(Loaded {
        module,
        name: suite.name,
        env: suite.env,
        cases,
    })
}

/// Why a batch stopped before every case had a result.
enum Stop {
    /// `--batch-timeout` passed.
    Timeout(Duration),
    /// The call failed (before the first case or in the middle).
    Error(Failure),
    /// The server ended the stream early.
    Short,
}

impl Stop {
    fn reason(&self) -> String {
        match self {
            Stop::Timeout(after) => format!(
                "--batch-timeout {} passed before it finished",
                format_duration(*after)
            ),
            Stop::Error(f) => format!(
                "the batch stopped: {}",
                f.message.lines().next().unwrap_or_default()
            ),
            Stop::Short => "the server ended the batch before it".into(),
        }
    }
}

/// Runs the cases, printing each row as its case finishes; 0 when all
/// passed, 107 when any failed, 102 when `--batch-timeout` cut it short,
/// or the error's code when the batch failed. The JUnit report is written
/// in every case, with cases that did not run as errors.
pub async fn batch(cli: &Cli, client: &Client, args: &BatchArgs) -> CliResult {
    let started = Instant::now();
    let Loaded {
        module: file_module,
        name: file_name,
        env,
        cases,
    } = load(&args.cases)?;
    let module_text = args.module.clone().or(file_module).ok_or_else(|| {
        Failure::usage(format!(
            "no module: pass --module or set \"module\" in {}",
            args.cases.display()
        ))
    })?;
    let loaded = module::load(&module_text, false)?;
    module::check_size(cli, client, &loaded).await?;
    let suite = args.suite.clone().or(file_name).unwrap_or_else(|| {
        args.cases
            .file_stem()
            .map_or_else(|| "wasmwiz".into(), |s| s.to_string_lossy().into_owned())
    });
    let mut limits = Limits::new();
    limits.fuel = args.fuel;
    limits.memory_bytes = args.memory;
    limits.timeout = args.timeout;
    limits.max_output_bytes = args.max_output;
    limits.fs_bytes = args.fs.fs_bytes;
    let shared = args.fs.filesystem()?;
    let names: Vec<String> = cases.iter().map(|c| c.name.clone()).collect();
    let rows = Rows::new(&names, !args.json, !args.json && !cli.quiet);
    let deadline = args
        .batch_timeout
        .map(|d| tokio::time::Instant::from_std(started + d));
    let within = |deadline: Option<tokio::time::Instant>| async move {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };

    let mut request = client
        .batch(loaded.module)
        .cases(cases)
        .env(env)
        .limits(limits)
        .cache(crate::cli::run::cache_policy(args.cache))
        .on_upload_progress(progress::reporter(module_text.clone(), cli.quiet));
    if let Some(shared) = shared {
        request = request.fs(shared);
    }
    let request = request.stream();
    let mut results = Vec::with_capacity(names.len());
    let mut rate_limit = None;
    let stop = tokio::select! {
        opened = request => match opened {
            Err(e) => Some(Stop::Error(failure(cli, &e))),
            Ok(mut stream) => {
                rate_limit = stream.rate_limit();
                loop {
                    let next = tokio::select! {
                        next = stream.next() => next,
                        () = within(deadline) => break args.batch_timeout.map(Stop::Timeout),
                    };
                    match next {
                        None if results.len() < names.len() => break Some(Stop::Short),
                        None => break None,
                        Some(Err(e)) => break Some(Stop::Error(failure(cli, &e))),
                        Some(Ok(case)) => {
                            if let Some(out_dir) = &args.fs.out_dir {
                                if let Err(failed) =
                                    files::write_all(&out_dir.join(case_folder(&case)), &case.files)
                                {
                                    break Some(Stop::Error(failed));
                                }
                            }
                            rows.case(&case);
                            results.push(case);
                        }
                    }
                }
                // Dropping the stream here cancels what is still running.
            }
        },
        () = within(deadline) => args.batch_timeout.map(Stop::Timeout),
    };
    results.sort_by_key(|c| c.index);
    let not_run: Vec<NotRun> = match &stop {
        None => Vec::new(),
        Some(stop) => {
            let reason = stop.reason();
            (0..names.len())
                .filter(|i| !results.iter().any(|c| c.index == *i))
                .map(|index| NotRun {
                    index,
                    name: names[index].clone(),
                    reason: reason.clone(),
                })
                .collect()
        }
    };
    let results = BatchOutput {
        cases: results,
        not_run,
        rate_limit,
    };
    // An error before any case ran prints no table of empty rows.
    let nothing_ran = matches!(stop, Some(Stop::Error(_))) && results.cases.is_empty();
    if !nothing_ran {
        for case in &results.not_run {
            rows.not_run(case);
        }
    }
    rows.finish();
    if let Some(path) = &args.junit {
        std::fs::write(path, results.junit_xml(&suite)).map_err(|e| Failure {
            code: exit::USAGE,
            message: format!("cannot write {}: {e}", path.display()),
        })?;
    }
    if args.json && !nothing_ran {
        print_json(&results, stop.as_ref().map(Stop::reason));
    }
    let failed = results.failed().count();
    if !cli.quiet && !args.json && !nothing_ran {
        println!("{}", summary(&results));
    }
    if !cli.quiet {
        if let Some(path) = &args.junit {
            eprintln!("wasmwiz: wrote JUnit XML to {}", path.display());
        }
    }
    match stop {
        Some(Stop::Error(failure)) => Err(failure),
        Some(Stop::Timeout(after)) => Err(Failure {
            code: exit::TIMEOUT,
            message: format!(
                "the batch hit --batch-timeout {}: {} of {} cases did not run",
                format_duration(after),
                results.not_run.len(),
                names.len()
            ),
        }),
        Some(Stop::Short) => Err(Failure {
            code: exit::SERVER,
            message: format!(
                "the server ended the batch after {} of {} cases",
                results.cases.len(),
                names.len()
            ),
        }),
        None if failed > 0 => Ok(exit::WRONG_ANSWER),
        None => Ok(0),
    }
}

/// "2 of 4 cases passed, 1 failed, 1 not run".
fn summary(results: &BatchOutput) -> String {
    let failed = results.failed().count();
    let total = results.cases.len() + results.not_run.len();
    let mut line = format!("{} of {total} cases passed", results.cases.len() - failed);
    if failed > 0 {
        line.push_str(&format!(", {failed} failed"));
    }
    if !results.not_run.is_empty() {
        line.push_str(&format!(", {} not run", results.not_run.len()));
    }
    let cached = results
        .cases
        .iter()
        .filter(|c| c.cached_from.is_some())
        .count();
    if cached > 0 {
        line.push_str(&format!(" ({cached} from the result cache)"));
    }
    line
}

const HEADER: [&str; 7] = ["#", "CASE", "RESULT", "EXIT", "FUEL", "TIME", "DETAIL"];

/// The results table, one row printed as each case finishes (so a case
/// that runs away is visible), with a progress line on a terminal.
struct Rows {
    widths: [usize; 6],
    print: bool,
    headed: std::cell::Cell<bool>,
    bar: Option<ProgressBar>,
}

impl Rows {
    /// Column widths come from the case names, known before any result.
    fn new(names: &[String], print: bool, progress: bool) -> Self {
        let name_width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        let widths = [
            names.len().saturating_sub(1).to_string().len().max(1),
            name_width.clamp(4, 40),
            "NOT RUN".len(),
            4,
            12,
            9,
        ];
        let bar = (progress && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(names.len() as u64);
            bar.set_style(
                ProgressStyle::with_template("{pos}/{len} cases done, {elapsed} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message("running…");
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Rows {
            widths,
            print,
            headed: std::cell::Cell::new(false),
            bar,
        }
    }

    /// Prints a row (the header first).
    fn line(&self, cells: [&str; 7]) {
        if !self.print {
            return;
        }
        if !self.headed.replace(true) {
            self.line(HEADER);
        }
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if let Some(width) = self.widths.get(i) {
                out.push_str(&" ".repeat(width.saturating_sub(cell.chars().count()) + 2));
            }
        }
        let out = out.trim_end();
        match &self.bar {
            Some(bar) => bar.suspend(|| println!("{out}")),
            None => println!("{out}"),
        }
    }

    fn case(&self, c: &CaseResult) {
        let detail = c.failure().unwrap_or_default();
        self.line([
            &c.index.to_string(),
            &c.name,
            if c.passed() { "ok" } else { "FAIL" },
            &c.finished.exit_code.to_string(),
            &c.finished.fuel_consumed.to_string(),
            &format_duration(c.finished.duration),
            &detail,
        ]);
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn not_run(&self, c: &NotRun) {
        self.line([
            &c.index.to_string(),
            &c.name,
            "NOT RUN",
            "-",
            "-",
            "-",
            &c.reason,
        ]);
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn print_json(results: &BatchOutput, stopped: Option<String>) {
    let mut cases: Vec<serde_json::Value> = results
        .cases
        .iter()
        .map(|c| {
            json!({
                "index": c.index,
                "name": c.name,
                "status": if c.passed() { "passed" } else { "failed" },
                "passed": c.passed(),
                "detail": c.failure(),
                "mismatch": c.mismatch().map(|m| json!({
                    "line": m.line,
                    "byte": m.byte,
                    "expected_line": m.expected_line,
                    "actual_line": m.actual_line,
                    "expected_bytes": m.expected_bytes,
                    "actual_bytes": m.actual_bytes,
                    "diff": m.diff(),
                })),
                "outcome": c.finished.outcome.as_str(),
                "verdict": c.finished.verdict.as_str(),
                "exit_code": c.finished.exit_code,
                "trap_kind": c.finished.trap_kind,
                "message": c.finished.message,
                "fuel_consumed": c.finished.fuel_consumed,
                "duration_us": c.finished.duration.as_micros() as u64,
                "memory_peak_bytes": c.finished.memory_peak_bytes,
                "stdout": String::from_utf8_lossy(&c.stdout),
                "stderr": String::from_utf8_lossy(&c.stderr),
                "cached_from": c.cached_from,
            })
        })
        .collect();
    cases.extend(results.not_run.iter().map(|c| {
        json!({
            "index": c.index,
            "name": c.name,
            "status": "not_run",
            "passed": false,
            "detail": format!("not run: {}", c.reason),
        })
    }));
    cases.sort_by_key(|c| c["index"].as_u64());
    let failed = results.failed().count();
    super::print_json(&json!({
        "passed": results.cases.len() - failed,
        "failed": failed,
        "not_run": results.not_run.len(),
        "stopped": stopped,
        "cases": cases,
    }));
}
