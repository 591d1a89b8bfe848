//! A refused limit in the words of the command line: the flag the user set
//! and human units ("--memory 2.0 GiB is above the free tier's maximum of
//! 64.0 MiB"), from the numbers the server's ErrorInfo carries. The server's
//! BadRequest keeps the API field for scripts; people see this.

use std::time::Duration;

use wasmwiz::{
    util::{format_bytes, format_duration},
    LimitExceeded,
};

/// What the user set, for an API field: a flag where there is one.
fn subject(field: &str) -> String {
    let flag = match field {
        "limits.memory_bytes" => Some("--memory"),
        "limits.fuel" => Some("--fuel"),
        "limits.timeout_ms" => Some("--timeout"),
        "limits.max_output_bytes" => Some("--max-output"),
        "limits.fs_bytes" => Some("--fs-bytes"),
        _ => None,
    };
    if let Some(flag) = flag {
        return flag.to_string();
    }
    match field.split_once('.') {
        Some((case, rest)) if case.starts_with("cases[") => {
            let index = case.trim_start_matches("cases[").trim_end_matches(']');
            format!("case {index}'s {}", thing(rest))
        }
        _ => thing(field),
    }
}

/// A request part in plain words.
fn thing(field: &str) -> String {
    match field {
        "module" | "module_size" => "the module".into(),
        "stdin" => "stdin".into(),
        "args" => "the guest's arguments and environment".into(),
        "fs" => "the input files".into(),
        other => other.into(),
    }
}

/// `value` in `unit` as a person reads it.
fn amount(value: u64, unit: &str) -> String {
    match unit {
        "bytes" => format_bytes(value),
        "ms" => format_duration(Duration::from_millis(value)),
        "fuel" => format!("{} fuel", grouped(value)),
        _ => grouped(value),
    }
}

/// 1000000000 → "1,000,000,000".
fn grouped(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// "--memory 2.0 GiB is above the free tier's maximum of 64.0 MiB".
pub fn describe(limit: &LimitExceeded) -> String {
    let tier = if limit.tier.is_empty() {
        "your tier's".to_string()
    } else {
        format!("the {} tier's", limit.tier)
    };
    let subject = subject(&limit.field);
    let requested = amount(limit.requested, &limit.unit);
    let maximum = amount(limit.maximum, &limit.unit);
    if subject.starts_with("--") {
        format!("{subject} {requested} is above {tier} maximum of {maximum}")
    } else {
        format!("{subject} ({requested}) is above {tier} maximum of {maximum}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(field: &str, requested: u64, maximum: u64, unit: &str) -> LimitExceeded {
        LimitExceeded {
            field: field.into(),
            requested,
            maximum,
            unit: unit.into(),
            tier: "free".into(),
        }
    }

    #[test]
    fn a_limit_flag_is_named_with_human_bytes() {
        assert_eq!(
            describe(&limit("limits.memory_bytes", 2 << 30, 64 << 20, "bytes")),
            "--memory 2.0 GiB is above the free tier's maximum of 64.0 MiB"
        );
    }

    #[test]
    fn a_timeout_is_in_seconds() {
        assert_eq!(
            describe(&limit("limits.timeout_ms", 90_000, 10_000, "ms")),
            "--timeout 90.0 s is above the free tier's maximum of 10.0 s"
        );
    }

    #[test]
    fn fuel_is_grouped() {
        assert_eq!(
            describe(&limit("limits.fuel", 20_000_000_000, 1_000_000_000, "fuel")),
            "--fuel 20,000,000,000 fuel is above the free tier's maximum of 1,000,000,000 fuel"
        );
    }

    #[test]
    fn a_request_part_without_a_flag_is_named_in_words() {
        assert_eq!(
            describe(&limit("module", 19 << 20, 10 << 20, "bytes")),
            "the module (19.0 MiB) is above the free tier's maximum of 10.0 MiB"
        );
    }

    #[test]
    fn a_batch_case_is_named_by_its_index() {
        assert_eq!(
            describe(&limit("cases[3].stdin", 2 << 20, 1 << 20, "bytes")),
            "case 3's stdin (2.0 MiB) is above the free tier's maximum of 1.0 MiB"
        );
    }
}
