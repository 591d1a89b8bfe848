//! `wasmwiz batch`: a module's test cases from a JSON file, in one
//! `RunBatch` call; a table, a summary and optionally JUnit XML.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

use clap::Args;
use serde::Deserialize;
use serde_json::json;
use wasmwiz::{
    util::{format_duration, parse_count, parse_duration, parse_size},
    BatchOutput, Case, Client, Limits,
};

use super::{module_arg, progress, table};
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
}

const CASES_HELP: &str = r#"Cases file: either a list of cases, or an object with the module:

  {
    "module": "fib.wasm",            (relative to this file; or a sha256)
    "env": {"LANG": "C"},            (optional, for every case)
    "cases": [
      {"name": "fib 10", "stdin": "10\n", "expected_stdout": "55\n"},
      {"name": "args", "args": ["-v"], "expected_stdout_file": "out.txt"},
      {"name": "big", "stdin_file": "big.in"}
    ]
  }

Each case may have name, stdin or stdin_file, args, and expected_stdout or
expected_stdout_file (paths relative to the cases file). A case passes when
the guest exits 0 and its stdout equals the expected stdout (when given).

Exit codes: 0 when every case passed, 107 when any failed; 108-112 as for
`wasmwiz run` when the batch could not run."#;

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

/// Runs the cases; 0 when all passed, 107 when any failed.
pub async fn batch(cli: &Cli, client: &Client, args: &BatchArgs) -> CliResult {
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
    let (module, _) = module_arg(&module_text)?;
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
    let results = client
        .batch(module)
        .cases(cases)
        .env(env)
        .limits(limits)
        .on_upload_progress(progress::reporter(module_text.clone(), cli.quiet))
        .output()
        .await
        .map_err(|e| failure(cli, &e))?;
    if let Some(path) = &args.junit {
        std::fs::write(path, results.junit_xml(&suite)).map_err(|e| Failure {
            code: exit::USAGE,
            message: format!("cannot write {}: {e}", path.display()),
        })?;
    }
    if args.json {
        print_json(&results);
    } else {
        print_table(&results);
    }
    let failed = results.failed().count();
    if !cli.quiet && !args.json {
        println!(
            "{} of {} cases passed{}",
            results.cases.len() - failed,
            results.cases.len(),
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        );
        if let Some(path) = &args.junit {
            eprintln!("wasmwiz: wrote JUnit XML to {}", path.display());
        }
    }
    Ok(if failed == 0 { 0 } else { exit::WRONG_ANSWER })
}

fn print_table(results: &BatchOutput) {
    let rows: Vec<Vec<String>> = results
        .cases
        .iter()
        .map(|c| {
            vec![
                c.index.to_string(),
                c.name.clone(),
                if c.passed() { "ok" } else { "FAIL" }.to_string(),
                c.finished.exit_code.to_string(),
                c.finished.fuel_consumed.to_string(),
                format_duration(c.finished.duration),
                c.failure().unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["#", "CASE", "RESULT", "EXIT", "FUEL", "TIME", "DETAIL"],
            &rows
        )
    );
}

fn print_json(results: &BatchOutput) {
    let cases: Vec<serde_json::Value> = results
        .cases
        .iter()
        .map(|c| {
            json!({
                "index": c.index,
                "name": c.name,
                "passed": c.passed(),
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
            })
        })
        .collect();
    let failed = results.failed().count();
    super::print_json(&json!({
        "passed": results.cases.len() - failed,
        "failed": failed,
        "cases": cases,
    }));
}
