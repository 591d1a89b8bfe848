//! Upload progress: an indicatif bar on a terminal, a few plain lines in CI
//! logs.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use wasmwiz::{util::format_bytes, UploadProgress};

/// A progress callback for uploads of `label`.
pub fn reporter(label: String, quiet: bool) -> impl FnMut(UploadProgress) + Send + 'static {
    let terminal = std::io::stderr().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let mut next_quarter = 0u64;
    move |p: UploadProgress| {
        if quiet {
            return;
        }
        if p.skipped {
            eprintln!(
                "wasmwiz: {label} ({}) is already on the server; upload skipped",
                format_bytes(p.total)
            );
            return;
        }
        if terminal {
            let bar = bar.get_or_insert_with(|| {
                let bar = ProgressBar::new(p.total);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_message(format!("uploading {label}"));
                bar
            });
            bar.set_position(p.sent);
            if p.sent >= p.total {
                bar.finish_and_clear();
                eprintln!(
                    "wasmwiz: sent {label} ({}); the server is checking it",
                    format_bytes(p.total)
                );
            }
        } else {
            // 0%, 25%, 50%, 75%, 100%: enough for a CI log.
            let percent = (p.sent * 100).checked_div(p.total).unwrap_or(100);
            if percent >= next_quarter * 25 {
                eprintln!(
                    "wasmwiz: uploading {label}: {} of {} ({percent}%)",
                    format_bytes(p.sent),
                    format_bytes(p.total)
                );
                next_quarter = percent / 25 + 1;
            }
        }
    }
}
