//! rust_wordfreq.wasm: counts words on stdin and prints the `argv[1]` most
//! frequent (default 10), one `<count> <word>` line each, most frequent
//! first, ties in alphabetical order. Words are runs of alphanumeric
//! characters, lowercased. Uses std's HashMap, whose hasher seeds itself
//! from WASI `random_get`: the output is the same for any `random_seed`
//! because it is sorted. Stdin that is not UTF-8: stderr
//! `wordfreq: stdin is not UTF-8 text` and exit 1. A bad argument: exit 2.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let top = match std::env::args().nth(1).map(|a| a.parse::<usize>()) {
        None => 10,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("wordfreq: argv[1] must be a count of words to print");
            return ExitCode::from(2);
        }
    };
    let mut input = Vec::new();
    if io::stdin().read_to_end(&mut input).is_err() {
        eprintln!("wordfreq: cannot read stdin");
        return ExitCode::from(1);
    }
    let Ok(text) = String::from_utf8(input) else {
        eprintln!("wordfreq: stdin is not UTF-8 text");
        return ExitCode::from(1);
    };
    let mut counts: HashMap<String, u64> = HashMap::new();
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        *counts.entry(word.to_lowercase()).or_default() += 1;
    }
    let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut out = io::BufWriter::new(io::stdout().lock());
    for (word, count) in ranked.into_iter().take(top) {
        if writeln!(out, "{count} {word}").is_err() {
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}
