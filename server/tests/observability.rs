//! The dashboard and the alert rules under deploy/ against a real server:
//! every metric their PromQL names is one a running server exports (after
//! a few executions), and the scrape-time gauges tell the truth.

mod support;

use std::{
    collections::{BTreeSet, HashMap},
    path::PathBuf,
};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Series Prometheus itself adds to every scrape target.
const SCRAPE_GENERATED: &[&str] = &["up"];

/// PromQL words that are not metric names (functions are recognised by the
/// `(` after them; aggregations also take `by (...)` before theirs).
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
    "atan2",
];

/// Names a PromQL expression reads as metrics: identifiers used bare or
/// followed by `{` or `[`, without label matchers, ranges, strings,
/// grouping labels, numbers, durations, Grafana `$variables`, functions
/// and keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // After `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`
    // the parenthesised list holds label names.
    let mut labels_follow = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_string(&chars, i),
            '{' => i = skip_to(&chars, i, '}'),
            '[' => i = skip_to(&chars, i, ']'),
            '(' if labels_follow => {
                i = skip_to(&chars, i, ')');
                labels_follow = false;
            }
            '$' => {
                i += 1;
                while i < chars.len() && is_word(chars[i]) {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || (c == '.' && next_is_digit(&chars, i)) => {
                while i < chars.len() && (is_word(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len() && (is_word(chars[i]) || chars[i] == ':') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let is_call = chars.get(next) == Some(&'(');
                let grouping = matches!(
                    word.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                );
                if grouping {
                    labels_follow = true;
                } else if !is_call && !KEYWORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            _ => {
                if !c.is_whitespace() {
                    labels_follow = false;
                }
                i += 1;
            }
        }
    }
    names
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn next_is_digit(chars: &[char], i: usize) -> bool {
    chars.get(i + 1).is_some_and(char::is_ascii_digit)
}

/// The index after the closing `close` of the bracket at `open`.
fn skip_to(chars: &[char], open: usize, close: char) -> usize {
    let mut i = open + 1;
    while i < chars.len() && chars[i] != close {
        if matches!(chars[i], '"' | '\'' | '`') {
            i = skip_string(chars, i);
        } else {
            i += 1;
        }
    }
    i + 1
}

/// The index after the string literal starting at `start`.
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

fn deploy_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Every `expr` of the dashboard's panels (and of panels inside rows).
fn dashboard_exprs() -> Vec<String> {
    let dashboard: serde_json::Value =
        serde_json::from_str(&deploy_file("grafana/dashboards/wasmwiz.json")).unwrap();
    let mut exprs = Vec::new();
    let mut panels: Vec<&serde_json::Value> =
        dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        if let Some(inner) = panel["panels"].as_array() {
            panels.extend(inner);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    exprs
}

/// Every `expr` of the alert rules, by alert name.
fn alert_exprs() -> Vec<(String, String)> {
    let docs = yaml_rust2::YamlLoader::load_from_str(&deploy_file("prometheus/rules.yml")).unwrap();
    let mut exprs = Vec::new();
    for group in docs[0]["groups"].as_vec().unwrap() {
        for rule in group["rules"].as_vec().unwrap() {
            let name = rule["alert"].as_str().unwrap().to_string();
            exprs.push((name, rule["expr"].as_str().unwrap().to_string()));
        }
    }
    exprs
}

/// `GET path` over HTTP/1.1; the body.
async fn http_get(server: &TestServer, path: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let (_, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    body.to_string()
}

/// A server that has run a few executions (one success, one trap), and
/// its `/metrics` then.
async fn scraped_after_executions() -> (TestServer, String) {
    let server = TestServer::start().await;
    let key = server.create_key("obs@test.local", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let ok = run(&mut c, run_bytes(guest("hello"))).await.unwrap();
    assert_eq!(ok.outcome(), wasmwiz_proto::v1::Outcome::Success);
    let again = run(&mut c, run_bytes(guest("hello"))).await.unwrap();
    assert_eq!(again.outcome(), wasmwiz_proto::v1::Outcome::Success);
    let metrics = http_get(&server, "/metrics").await;
    (server, metrics)
}

/// Names a scrape exports: each family's, plus `_bucket`, `_sum` and
/// `_count` for histograms (`_sum`, `_count` for summaries).
fn exported_names(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        names.insert(name.to_string());
        let suffixes: &[&str] = match kind {
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["_sum", "_count"],
            _ => &[],
        };
        for suffix in suffixes {
            names.insert(format!("{name}{suffix}"));
        }
    }
    names
}

/// The value of the one sample of `name` (unlabelled).
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
        .trim()
        .parse()
        .unwrap()
}

fn unexported<'a>(
    exprs: impl IntoIterator<Item = (String, &'a str)>,
    exported: &BTreeSet<String>,
) -> Vec<String> {
    let mut missing = Vec::new();
    for (owner, expr) in exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{owner}: no metric found in {expr}");
        for name in names {
            if !exported.contains(&name) && !SCRAPE_GENERATED.contains(&name.as_str()) {
                missing.push(format!("{owner}: {name}"));
            }
        }
    }
    missing
}

#[test]
fn metric_names_skip_functions_labels_ranges_and_numbers() {
    let expr = r#"histogram_quantile(0.99, sum by (le, tier) (rate(a_seconds_bucket{tier=~"free|pro", x="}"}[$__rate_interval] offset 5m))) / on(instance) group_left(version) b_info > 1e3 and c_total unless bool d"#;
    let expected: BTreeSet<String> = ["a_seconds_bucket", "b_info", "c_total", "d"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(metric_names(expr), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_dashboard_query_uses_a_metric_the_server_exports() {
    let (_server, metrics) = scraped_after_executions().await;
    let exported = exported_names(&metrics);
    let exprs = dashboard_exprs();
    let missing = unexported(
        exprs.iter().map(|e| ("dashboard".to_string(), e.as_str())),
        &exported,
    );
    assert!(missing.is_empty(), "not exported: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_alert_rule_uses_a_metric_the_server_exports() {
    let (_server, metrics) = scraped_after_executions().await;
    let exported = exported_names(&metrics);
    let rules = alert_exprs();
    let missing = unexported(
        rules.iter().map(|(name, e)| (name.clone(), e.as_str())),
        &exported,
    );
    assert!(missing.is_empty(), "not exported: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_memory_budget_gauge_is_the_configured_budget() {
    let (server, metrics) = scraped_after_executions().await;
    let configured = server.config.sandbox.memory_budget_mib * 1024 * 1024;
    assert_eq!(
        sample(&metrics, "wasmwiz_memory_budget_bytes"),
        configured as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_data_dir_gauges_describe_its_filesystem() {
    let (_server, metrics) = scraped_after_executions().await;
    let size = sample(&metrics, "wasmwiz_data_dir_filesystem_size_bytes");
    let available = sample(&metrics, "wasmwiz_data_dir_filesystem_available_bytes");
    assert!(
        size > 0.0 && available <= size,
        "size {size}, available {available}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn committed_usage_records_leave_no_pending_write_and_a_measured_lag() {
    let (_server, metrics) = scraped_after_executions().await;
    assert_eq!(sample(&metrics, "wasmwiz_usage_writer_pending"), 0.0);
    assert!(sample(&metrics, "wasmwiz_usage_writer_lag_seconds") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_answers_are_counted_by_code() {
    let server = TestServer::start().await;
    let mut c = clients(&server, Some("wwz_nope_nope")).await;
    let refused = run(&mut c, run_bytes(guest("hello"))).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let metrics = http_get(&server, "/metrics").await;
    let by_code: HashMap<&str, f64> = metrics
        .lines()
        .filter_map(|line| line.strip_prefix("wasmwiz_grpc_responses_total{code=\""))
        .filter_map(|rest| {
            let (code, value) = rest.split_once("\"} ")?;
            Some((code, value.trim().parse().ok()?))
        })
        .collect();
    assert_eq!(by_code.get("Unauthenticated"), Some(&1.0), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_admission_queue_is_counted_as_queue_full() {
    let server = TestServer::start_with(Db::Sqlite, |c| {
        c.sandbox.max_running = 1;
        c.sandbox.max_queue = 0;
    })
    .await;
    let key = server
        .create_key("queue@test.local", "unlimited", false)
        .await;
    let mut c = clients(&server, Some(&key)).await;
    // A guest that holds the only slot until its 5 s timeout.
    let mut holding = run_bytes(guest("loop"));
    holding.limits = Some(wasmwiz_proto::v1::Limits {
        timeout_ms: 5000,
        ..Default::default()
    });
    let mut held = c.exec.run(holding).await.unwrap().into_inner();
    held.message().await.unwrap().expect("started");
    let refused = run(&mut c, run_bytes(guest("hello"))).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");

    let metrics = http_get(&server, "/metrics").await;
    assert_eq!(
        sample(
            &metrics,
            "wasmwiz_admission_refused_total{reason=\"queue_full\"}"
        ),
        1.0
    );
}
