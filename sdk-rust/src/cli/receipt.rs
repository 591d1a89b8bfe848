//! `wasmwiz receipt verify`: checks a receipt offline — its signature with
//! the server's public key, then any output files given against the
//! digests it states. Contacts no server.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use wasmwiz::receipt::{self, ReceiptError, Verified};

use crate::{cli::print_json, exit, CliResult, Failure};

/// `wasmwiz receipt ...`
#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Verify a receipt's signature offline, and output files against it.
    Verify(VerifyArgs),
}

/// Flags of `receipt verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The receipt: a serialized `wasmwiz.v1.Receipt` message.
    pub receipt: PathBuf,
    /// The server's receipt public key: 64 hex digits, or a file holding
    /// them (or the 32 raw bytes). `GetServerInfo` lists the server's keys.
    #[arg(long, value_name = "HEX|FILE")]
    pub public_key: String,
    /// Check this file against the receipt's stdout digest.
    #[arg(long, value_name = "FILE")]
    pub stdout: Option<PathBuf>,
    /// Check this file against the receipt's stderr digest.
    #[arg(long, value_name = "FILE")]
    pub stderr: Option<PathBuf>,
    /// Check a collected file: PATH as the receipt lists it, LOCAL the copy
    /// to check (repeatable).
    #[arg(long = "file", value_name = "PATH=LOCAL")]
    pub files: Vec<String>,
    /// Check this module file against the receipt's module sha256.
    #[arg(long, value_name = "FILE")]
    pub module: Option<PathBuf>,
    /// Print the verified statement as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `receipt` subcommand (no server needed).
pub fn receipt(command: &ReceiptCommand, quiet: bool) -> CliResult {
    match command {
        ReceiptCommand::Verify(args) => verify(args, quiet),
    }
}

fn read(path: &PathBuf) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))
}

/// The key from hex text, or from a file of hex text or 32 raw bytes.
fn public_key(text: &str) -> CliResult<[u8; 32]> {
    if let Ok(key) = receipt::parse_public_key(text) {
        return Ok(key);
    }
    let path = PathBuf::from(text);
    if !path.is_file() {
        return Err(Failure::usage(format!(
            "--public-key {text}: neither 64 hex digits nor a readable file"
        )));
    }
    let bytes = read(&path)?;
    if let Ok(raw) = <[u8; 32]>::try_from(bytes.as_slice()) {
        return Ok(raw);
    }
    receipt::parse_public_key(&String::from_utf8_lossy(&bytes))
        .map_err(|e| Failure::usage(format!("--public-key {text}: {e}")))
}

fn rejected(error: ReceiptError) -> Failure {
    Failure {
        code: exit::WRONG_ANSWER,
        message: format!("receipt NOT verified: {error}"),
    }
}

fn verify(args: &VerifyArgs, quiet: bool) -> CliResult {
    let key = public_key(&args.public_key)?;
    let bytes = read(&args.receipt)?;
    let receipt = receipt::decode(&bytes)
        .map_err(|e| Failure::usage(format!("{}: {e}", args.receipt.display())))?;
    let verified = receipt::verify(&receipt, &key).map_err(rejected)?;
    let mut checked = Vec::new();
    if let Some(path) = &args.stdout {
        verified.check_stdout(&read(path)?).map_err(rejected)?;
        checked.push("stdout".to_string());
    }
    if let Some(path) = &args.stderr {
        verified.check_stderr(&read(path)?).map_err(rejected)?;
        checked.push("stderr".to_string());
    }
    if let Some(path) = &args.module {
        verified.check_module(&read(path)?).map_err(rejected)?;
        checked.push("module".to_string());
    }
    for spec in &args.files {
        let (path, local) = spec
            .split_once('=')
            .ok_or_else(|| Failure::usage(format!("--file {spec}: expected PATH=LOCAL")))?;
        verified
            .check_file(path, &read(&PathBuf::from(local))?)
            .map_err(rejected)?;
        checked.push(format!("file {path}"));
    }
    if args.json {
        print_json(&statement_json(&verified, &checked));
    } else if !quiet {
        print!("{}", summary(&verified, &checked));
    }
    Ok(0)
}

fn outcome_name(outcome: i32) -> String {
    wasmwiz::proto::Outcome::try_from(outcome)
        .map(|o| o.as_str_name().trim_start_matches("OUTCOME_").to_string())
        .unwrap_or_else(|_| format!("unknown ({outcome})"))
}

/// The human-readable report of a verified receipt.
fn summary(verified: &Verified, checked: &[String]) -> String {
    let s = &verified.statement;
    let mut out = format!(
        "receipt verified: signed by key {}\n\
         execution  {}\n\
         module     {}\n\
         inputs     {}\n\
         outcome    {} (exit code {})\n\
         fuel       {}\n\
         finished   {}\n\
         stdout     {} bytes, sha256 {}\n\
         stderr     {} bytes, sha256 {}\n",
        verified.key_id,
        s.execution_id,
        s.module_sha256,
        s.inputs_sha256,
        outcome_name(s.outcome),
        s.exit_code,
        s.fuel_consumed,
        crate::cli::proto_time(s.finished_at.as_ref()),
        s.stdout_bytes,
        s.stdout_sha256,
        s.stderr_bytes,
        s.stderr_sha256,
    );
    for file in &s.files {
        out.push_str(&format!(
            "file       {} ({} bytes, sha256 {})\n",
            file.path, file.size, file.sha256
        ));
    }
    for what in checked {
        out.push_str(&format!("matches    {what}\n"));
    }
    out
}

fn statement_json(verified: &Verified, checked: &[String]) -> serde_json::Value {
    let s = &verified.statement;
    let engine = s.engine.clone().unwrap_or_default();
    serde_json::json!({
        "verified": true,
        "key_id": verified.key_id,
        "execution_id": s.execution_id,
        "module_sha256": s.module_sha256,
        "inputs_sha256": s.inputs_sha256,
        "outcome": outcome_name(s.outcome),
        "exit_code": s.exit_code,
        "trap_kind": s.trap_kind,
        "fuel_consumed": s.fuel_consumed,
        "finished_at": crate::cli::proto_time(s.finished_at.as_ref()),
        "stdout": {"bytes": s.stdout_bytes, "sha256": s.stdout_sha256},
        "stderr": {"bytes": s.stderr_bytes, "sha256": s.stderr_sha256},
        "output_truncated": s.output_truncated,
        "files": s.files.iter().map(|f| serde_json::json!({
            "path": f.path, "size": f.size, "sha256": f.sha256,
        })).collect::<Vec<_>>(),
        "engine": {
            "wasmi_version": engine.wasmi_version,
            "fuel_cost_model": engine.fuel_cost_model,
            "wasi_version": engine.wasi_version,
        },
        "checked": checked,
    })
}
