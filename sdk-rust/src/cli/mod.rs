//! The subcommands of the `wasmwiz` binary.

pub mod account;
pub mod batch;
pub mod detached;
pub mod files;
pub mod limit_words;
pub mod module;
pub mod progress;
pub mod receipt;
pub mod run;

use crate::{CliResult, Failure};

/// Reads a whole file, or stdin for `-`.
pub fn read_input(text: &str) -> CliResult<Vec<u8>> {
    if text == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| Failure::usage(format!("cannot read stdin: {e}")))?;
        return Ok(buf);
    }
    std::fs::read(text).map_err(|e| Failure::usage(format!("cannot read {text}: {e}")))
}

/// Prints JSON to stdout.
pub fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// `SystemTime` as RFC 3339 (UTC, seconds).
pub fn rfc3339(t: Option<std::time::SystemTime>) -> String {
    match t {
        Some(t) => chrono::DateTime::<chrono::Utc>::from(t)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => "-".into(),
    }
}

/// A protobuf timestamp as RFC 3339.
pub fn proto_time(t: Option<&prost_types::Timestamp>) -> String {
    rfc3339(t.and_then(|t| std::time::SystemTime::try_from(*t).ok()))
}

/// Left-aligned columns, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}
