//! Parsing and formatting of sizes and durations (used by the CLI flags
//! `--memory 16MiB` and `--timeout 500ms`, and in messages).

use std::time::Duration;

/// Parses a size: a number with an optional unit. `K`, `M`, `G` (and `KiB`,
/// `MiB`, `GiB`) are powers of 1024; `KB`, `MB`, `GB` are powers of 1000;
/// `B` or no unit means bytes. Case-insensitive; `_` is ignored.
///
/// ```
/// use wasmwiz::util::parse_size;
/// assert_eq!(parse_size("16MiB"), Ok(16 << 20));
/// assert_eq!(parse_size("64m"), Ok(64 << 20));
/// assert_eq!(parse_size("1.5K"), Ok(1536));
/// assert_eq!(parse_size("2MB"), Ok(2_000_000));
/// assert_eq!(parse_size("4096"), Ok(4096));
/// assert!(parse_size("lots").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<u64, String> {
    let cleaned: String = text.trim().chars().filter(|c| *c != '_').collect();
    let split = cleaned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(cleaned.len());
    let (number, unit) = cleaned.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (try 16MiB, 512K or 1048576)"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{text}` (use B, KiB, MiB, GiB, KB, MB or GB)"
            ))
        }
    };
    let bytes = value * factor;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(bytes.round() as u64)
}

/// Parses a duration: a number with an optional unit `ms`, `s`, `m` or `h`
/// (no unit means seconds).
///
/// ```
/// use std::time::Duration;
/// use wasmwiz::util::parse_duration;
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
/// assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let cleaned = text.trim();
    let split = cleaned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(cleaned.len());
    let (number, unit) = cleaned.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 500ms, 5s or 2m)"))?;
    let secs = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" => value / 1000.0,
        "" | "s" | "sec" | "secs" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{text}` (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{text}` is out of range"))
}

/// Parses a count such as fuel: digits, `_` separators, or `1e9` notation.
///
/// ```
/// use wasmwiz::util::parse_count;
/// assert_eq!(parse_count("1_000_000"), Ok(1_000_000));
/// assert_eq!(parse_count("1e9"), Ok(1_000_000_000));
/// ```
pub fn parse_count(text: &str) -> Result<u64, String> {
    let cleaned: String = text.trim().chars().filter(|c| *c != '_').collect();
    if let Ok(n) = cleaned.parse::<u64>() {
        return Ok(n);
    }
    match cleaned.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 => {
            Ok(v as u64)
        }
        _ => Err(format!(
            "`{text}` is not a whole number (try 1000000 or 1e9)"
        )),
    }
}

/// Formats a byte count with a binary unit, e.g. `30.0 MiB`.
///
/// ```
/// assert_eq!(wasmwiz::util::format_bytes(31_457_280), "30.0 MiB");
/// assert_eq!(wasmwiz::util::format_bytes(512), "512 B");
/// ```
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Formats a duration for people: `850 µs`, `12.3 ms`, `6.0 s`, `2m 05s`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(wasmwiz::util::format_duration(Duration::from_secs(6)), "6.0 s");
/// ```
pub fn format_duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 1_000 {
        format!("{micros} µs")
    } else if micros < 1_000_000 {
        format!("{:.1} ms", micros as f64 / 1e3)
    } else if d.as_secs() < 120 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{}m {:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// True when `text` looks like a lowercase or uppercase hex sha256.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Where a guest's stdout first departs from the expected stdout: what a
/// wrong answer's report shows instead of a bare "differs".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Offset of the first differing byte.
    pub byte: usize,
    /// Its line, counting from 1.
    pub line: usize,
    /// That line of the expected stdout with its newline (`None`: the
    /// expected stdout ended before it).
    pub expected_line: Option<String>,
    /// That line of the actual stdout (`None`: the output ended before it).
    pub actual_line: Option<String>,
    /// The line before it (the same in both), for context.
    pub previous_line: Option<String>,
    /// Length of the expected stdout.
    pub expected_bytes: usize,
    /// Length of the actual stdout.
    pub actual_bytes: usize,
}

/// Longest line shown in a [`Mismatch`]; the rest is cut with `…`.
const MISMATCH_LINE_CHARS: usize = 200;

/// The first difference between `expected` and `actual`; `None` when equal.
///
/// ```
/// let m = wasmwiz::util::first_difference(b"a\nb\n", b"a\nx\n").unwrap();
/// assert_eq!((m.line, m.byte), (2, 2));
/// assert_eq!(m.to_string(), r#"line 2 differs: expected "b\n", got "x\n" (expected 4 bytes, got 4)"#);
/// ```
pub fn first_difference(expected: &[u8], actual: &[u8]) -> Option<Mismatch> {
    if expected == actual {
        return None;
    }
    let at = expected
        .iter()
        .zip(actual)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(actual.len()));
    let line_start = expected[..at]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    let line_of = |bytes: &[u8]| -> Option<String> {
        if line_start >= bytes.len() {
            return None;
        }
        let rest = &bytes[line_start..];
        let end = rest
            .iter()
            .position(|b| *b == b'\n')
            .map_or(rest.len(), |p| p + 1);
        Some(shorten(&String::from_utf8_lossy(&rest[..end])))
    };
    let previous_line = (line_start > 0).then(|| {
        let before = &expected[..line_start - 1];
        let start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1);
        shorten(&String::from_utf8_lossy(&expected[start..line_start]))
    });
    Some(Mismatch {
        byte: at,
        line: expected[..at].iter().filter(|b| **b == b'\n').count() + 1,
        expected_line: line_of(expected),
        actual_line: line_of(actual),
        previous_line,
        expected_bytes: expected.len(),
        actual_bytes: actual.len(),
    })
}

fn shorten(line: &str) -> String {
    match line.char_indices().nth(MISMATCH_LINE_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

impl Mismatch {
    /// A short diff: the line before, then `-expected` and `+actual`.
    ///
    /// ```
    /// let m = wasmwiz::util::first_difference(b"a\nb\n", b"a\n").unwrap();
    /// assert_eq!(m.diff(), "--- expected (4 bytes)\n+++ actual (2 bytes)\n@@ line 2 @@\n a\n-b\n+<end of output>\n");
    /// ```
    pub fn diff(&self) -> String {
        let plain = |line: &Option<String>| match line {
            Some(l) => l.strip_suffix('\n').unwrap_or(l).to_string(),
            None => "<end of output>".into(),
        };
        let mut out = format!(
            "--- expected ({} bytes)\n+++ actual ({} bytes)\n@@ line {} @@\n",
            self.expected_bytes, self.actual_bytes, self.line
        );
        if let Some(previous) = &self.previous_line {
            out.push_str(&format!(" {}\n", plain(&Some(previous.clone()))));
        }
        out.push_str(&format!(
            "-{}\n+{}\n",
            plain(&self.expected_line),
            plain(&self.actual_line)
        ));
        out
    }
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quoted = |line: &Option<String>| match line {
            Some(l) => format!("{l:?}"),
            None => "<end of output>".into(),
        };
        write!(
            f,
            "line {} differs: expected {}, got {} (expected {} bytes, got {})",
            self.line,
            quoted(&self.expected_line),
            quoted(&self.actual_line),
            self.expected_bytes,
            self.actual_bytes
        )
    }
}

/// True when `value` is a W3C Trace Context `traceparent`
/// (`00-<32 hex>-<16 hex>-<2 hex>`, ids not all zero).
///
/// ```
/// assert!(wasmwiz::util::is_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
/// assert!(!wasmwiz::util::is_traceparent("not-a-trace"));
/// ```
pub fn is_traceparent(value: &str) -> bool {
    crate::trace::parse_traceparent(value).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(expected: &[u8], actual: &[u8]) -> String {
        first_difference(expected, actual).unwrap().to_string()
    }

    #[test]
    fn a_changed_line_is_named_with_its_number() {
        assert_eq!(
            said(b"a\nb\nc\n", b"a\nx\nc\n"),
            r#"line 2 differs: expected "b\n", got "x\n" (expected 6 bytes, got 6)"#
        );
    }

    #[test]
    fn missing_and_extra_output_are_the_end_of_output() {
        assert_eq!(
            said(b"a\nb\n", b"a\n"),
            r#"line 2 differs: expected "b\n", got <end of output> (expected 4 bytes, got 2)"#
        );
        assert_eq!(
            said(b"", b"extra"),
            r#"line 1 differs: expected <end of output>, got "extra" (expected 0 bytes, got 5)"#
        );
    }

    #[test]
    fn a_missing_final_newline_shows() {
        assert_eq!(
            said(b"55\n", b"55"),
            r#"line 1 differs: expected "55\n", got "55" (expected 3 bytes, got 2)"#
        );
    }

    #[test]
    fn equal_output_has_no_difference() {
        assert_eq!(first_difference(b"same\n", b"same\n"), None);
    }

    #[test]
    fn long_lines_are_cut() {
        let long = "y".repeat(500);
        let m = first_difference(long.as_bytes(), b"n").unwrap();
        assert_eq!(
            m.expected_line.unwrap().chars().count(),
            MISMATCH_LINE_CHARS + 1
        );
    }
}
