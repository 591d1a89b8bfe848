//! Test cases against one module ([`Batch`] over `RunBatch`), their results
//! ([`CaseResult`], [`BatchOutput`]) and a JUnit XML report of them.

use std::{collections::HashMap, fmt::Write as _, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::{stream::BoxStream, StreamExt};

use crate::{
    fs::{piece_data, Reassembly},
    modules::{progress_fn, ProgressFn, Resolved},
    proto::{self, run_batch_request::Source},
    util::{first_difference, Mismatch},
    Client, Error, File, Filesystem, Finished, Limits, Module, Outcome, RateLimit, Result,
    UploadProgress, Verdict,
};

/// One test case: stdin, args and (optionally) the expected stdout.
///
/// ```
/// use wasmwiz::Case;
///
/// let case = Case::new("fib 10").stdin("10\n").expect_stdout("55\n");
/// # let _ = case;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Case {
    /// A label for reports.
    pub name: String,
    /// The case's whole stdin.
    pub stdin: Bytes,
    /// argv\[1..\].
    pub args: Vec<String>,
    /// The stdout the case must print.
    pub expected_stdout: Option<Bytes>,
    /// Entries laid over the batch's tree for this case (replacing entries
    /// with the same path) and more collect patterns; setting it gives the
    /// case a filesystem even when the batch has none.
    pub fs: Option<Filesystem>,
}

impl Case {
    /// A case with a name and nothing else.
    pub fn new(name: impl Into<String>) -> Self {
        Case {
            name: name.into(),
            ..Case::default()
        }
    }

    /// Sets stdin.
    pub fn stdin(mut self, stdin: impl Into<Bytes>) -> Self {
        self.stdin = stdin.into();
        self
    }

    /// Sets argv\[1..\].
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the expected stdout.
    pub fn expect_stdout(mut self, expected: impl Into<Bytes>) -> Self {
        self.expected_stdout = Some(expected.into());
        self
    }

    /// Sets this case's own entries and collect patterns (see [`Case::fs`]).
    pub fn fs(mut self, fs: Filesystem) -> Self {
        self.fs = Some(fs);
        self
    }
}

/// The result of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// Index of the case in the request.
    pub index: usize,
    /// The case's name.
    pub name: String,
    /// Its stdout (up to the output limit).
    pub stdout: Vec<u8>,
    /// Its stderr (up to the output limit).
    pub stderr: Vec<u8>,
    /// How it ended.
    pub finished: Finished,
    /// The id of its usage record.
    pub execution_id: String,
    /// The module's sha256.
    pub module_sha256: String,
    /// The stdout the case had to print (from the request), for reports.
    pub expected_stdout: Option<Bytes>,
    /// The case's collected files, whole, in path order.
    pub files: Vec<File>,
    /// Set when the server answered from its result cache: the execution
    /// id of the run whose result this is.
    pub cached_from: Option<String>,
}

impl CaseResult {
    /// True when the guest exited 0 and matched the expected stdout (if any).
    pub fn passed(&self) -> bool {
        self.finished.passed()
    }

    /// Where stdout first differs from the expected stdout, for a wrong
    /// answer (`None` when it matched or nothing was expected).
    pub fn mismatch(&self) -> Option<Mismatch> {
        if self.finished.verdict != Verdict::WrongAnswer {
            return None;
        }
        first_difference(self.expected_stdout.as_deref()?, &self.stdout)
    }

    /// Why the case failed, in one line (`None` when it passed).
    pub fn failure(&self) -> Option<String> {
        let f = &self.finished;
        match f.outcome {
            _ if self.passed() => None,
            Outcome::Success => Some(match self.mismatch() {
                Some(m) => format!("wrong answer: {m}"),
                None => "wrong answer: stdout differs from the expected".into(),
            }),
            Outcome::ExitNonzero => Some(format!("exited with code {}", f.exit_code)),
            Outcome::Trap => Some(format!("trap: {}", f.trap_kind)),
            other => Some(if f.message.is_empty() {
                other.to_string()
            } else {
                format!("{other}: {}", f.message)
            }),
        }
    }
}

/// A case that has no result: the batch stopped before it finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotRun {
    /// Index of the case in the request.
    pub index: usize,
    /// The case's name.
    pub name: String,
    /// Why it has no result (e.g. "the batch timed out after 30.0 s").
    pub reason: String,
}

/// Every case's result, in case order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutput {
    /// Results by case index.
    pub cases: Vec<CaseResult>,
    /// Cases without a result, by index (empty when the batch completed).
    pub not_run: Vec<NotRun>,
    /// The `ratelimit-*` metadata of the response.
    pub rate_limit: Option<RateLimit>,
}

impl BatchOutput {
    /// True when every case ran and passed.
    pub fn all_passed(&self) -> bool {
        self.not_run.is_empty() && self.cases.iter().all(CaseResult::passed)
    }

    /// The cases that failed.
    pub fn failed(&self) -> impl Iterator<Item = &CaseResult> {
        self.cases.iter().filter(|c| !c.passed())
    }

    /// A JUnit XML report (one `<testsuite>` named `suite`).
    /// Cases that did not run are `<error>`s.
    pub fn junit_xml(&self, suite: &str) -> String {
        junit_report(suite, &self.cases, &self.not_run)
    }
}

/// Runs of many cases against one module, compiled once. Made by
/// [`Client::batch`].
///
/// ```no_run
/// # async fn demo(client: wasmwiz::Client) -> wasmwiz::Result<()> {
/// use wasmwiz::{Case, Module};
///
/// let results = client
///     .batch(Module::file("fib.wasm"))
///     .case(Case::new("ten").stdin("10\n").expect_stdout("55\n"))
///     .case(Case::new("twenty").stdin("20\n").expect_stdout("6765\n"))
///     .output()
///     .await?;
/// for case in &results.cases {
///     println!("{}: {}", case.name, if case.passed() { "ok" } else { "FAILED" });
/// }
/// std::fs::write("report.xml", results.junit_xml("fib")).unwrap();
/// # Ok(()) }
/// ```
#[must_use = "a batch does nothing until `.output()` or `.stream()` is awaited"]
pub struct Batch {
    client: Client,
    module: Module,
    cases: Vec<Case>,
    limits: Limits,
    env: HashMap<String, String>,
    seed: u64,
    program_name: String,
    fs: Option<Filesystem>,
    progress: Option<ProgressFn>,
    cache: proto::CachePolicy,
}

impl Client {
    /// Sets up a batch of test cases against `module`; see [`Batch`].
    pub fn batch(&self, module: Module) -> Batch {
        Batch {
            client: self.clone(),
            module,
            cases: Vec::new(),
            limits: Limits::default(),
            env: HashMap::new(),
            seed: 0,
            program_name: String::new(),
            fs: None,
            progress: None,
            cache: proto::CachePolicy::Unspecified,
        }
    }
}

impl Batch {
    /// Adds a case.
    pub fn case(mut self, case: Case) -> Self {
        self.cases.push(case);
        self
    }

    /// Adds cases.
    pub fn cases(mut self, cases: impl IntoIterator<Item = Case>) -> Self {
        self.cases.extend(cases);
        self
    }

    /// Limits of each case.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Environment of every case.
    pub fn env<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// PRNG seed of every case.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Whether the server's result cache may answer (and store) the cases
    /// (default: off).
    pub fn cache(mut self, policy: proto::CachePolicy) -> Self {
        self.cache = policy;
        self
    }

    /// argv\[0\] of every case.
    pub fn program_name(mut self, name: impl Into<String>) -> Self {
        self.program_name = name.into();
        self
    }

    /// The tree every case starts from (each case gets its own copy, with
    /// its [`Case::fs`] laid over it). It travels inline in the one
    /// `RunBatch` message, so the server's message limit bounds it.
    pub fn fs(mut self, fs: Filesystem) -> Self {
        self.fs = Some(fs);
        self
    }

    /// Progress of the module's upload (large modules only).
    pub fn on_upload_progress(mut self, f: impl FnMut(UploadProgress) + Send + 'static) -> Self {
        self.progress = Some(progress_fn(f));
        self
    }

    /// Each case's result as soon as it finishes (in any order of index).
    pub async fn stream(self) -> Result<BatchStream> {
        let client = self.client.clone();
        let source = match client.resolve(&self.module, &self.progress).await? {
            Resolved::Inline(bytes) => Source::Module(bytes.to_vec()),
            Resolved::Stored(sha) => Source::ModuleSha256(sha),
        };
        let request = proto::RunBatchRequest {
            source: Some(source),
            cases: self
                .cases
                .iter()
                .map(|c| proto::BatchCase {
                    stdin: c.stdin.to_vec(),
                    args: c.args.clone(),
                    expected_stdout: c.expected_stdout.as_ref().map(|b| b.to_vec()),
                    name: c.name.clone(),
                    fs: c.fs.as_ref().map(Filesystem::to_proto),
                })
                .collect(),
            limits: Some(self.limits.to_proto()),
            program_name: self.program_name.clone(),
            env: self.env.clone(),
            random_seed: self.seed,
            fs: self.fs.as_ref().map(Filesystem::to_proto),
            cache: self.cache as i32,
            ..Default::default()
        };
        let total = self.cases.len();
        let expected: Arc<Vec<Option<Bytes>>> = Arc::new(
            self.cases
                .iter()
                .map(|c| c.expected_stdout.clone())
                .collect(),
        );
        let mut retries = 0;
        loop {
            let error = match client
                .execution()
                .run_batch(client.request(request.clone()))
                .await
            {
                Ok(response) => {
                    let rate_limit = RateLimit::from_metadata(response.metadata());
                    let expected = expected.clone();
                    // A case's file pieces come before its `finished` event.
                    let events = response
                        .into_inner()
                        .scan(HashMap::<u32, Reassembly>::new(), move |pieces, event| {
                            let item = match event.map_err(Error::from) {
                                Err(error) => Some(Err(error)),
                                Ok(event) => match &event.file {
                                    Some(piece) => {
                                        pieces
                                            .entry(event.case_index)
                                            .or_default()
                                            .push(piece.path.clone(), &piece_data(piece));
                                        None
                                    }
                                    None => {
                                        let files = pieces
                                            .remove(&event.case_index)
                                            .unwrap_or_default()
                                            .finish();
                                        Some(case_result(event, &expected, files))
                                    }
                                },
                            };
                            futures::future::ready(Some(item))
                        })
                        .filter_map(futures::future::ready)
                        .boxed();
                    return Ok(BatchStream {
                        events,
                        rate_limit,
                        total,
                    });
                }
                Err(status) => Error::from(status),
            };
            let Some(wait) = client.retry_wait(&error, retries) else {
                return Err(error);
            };
            retries += 1;
            tokio::time::sleep(wait).await;
        }
    }

    /// Runs every case and returns the results in case order.
    pub async fn output(self) -> Result<BatchOutput> {
        self.stream().await?.output().await
    }
}

fn case_result(
    event: proto::BatchEvent,
    expected: &[Option<Bytes>],
    files: Vec<File>,
) -> Result<CaseResult> {
    let finished = event
        .finished
        .ok_or_else(|| Error::Protocol("a batch event without `finished`".into()))?;
    Ok(CaseResult {
        index: event.case_index as usize,
        name: event.name,
        stdout: event.stdout.into(),
        stderr: event.stderr.into(),
        finished: finished.into(),
        execution_id: event.execution_id,
        expected_stdout: expected.get(event.case_index as usize).cloned().flatten(),
        module_sha256: event.module_sha256,
        files,
        cached_from: event.result_cache_hit.then_some(event.cached_from),
    })
}

/// The results of a batch as each case finishes; a stream of
/// `Result<`[`CaseResult`]`>`.
pub struct BatchStream {
    events: BoxStream<'static, Result<CaseResult>>,
    rate_limit: Option<RateLimit>,
    total: usize,
}

impl std::fmt::Debug for BatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchStream")
            .field("rate_limit", &self.rate_limit)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl BatchStream {
    /// The `ratelimit-*` metadata of the response.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit
    }

    /// How many cases were sent.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Collects every case, in case order.
    pub async fn output(mut self) -> Result<BatchOutput> {
        let mut cases = Vec::with_capacity(self.total);
        while let Some(case) = self.events.next().await {
            cases.push(case?);
        }
        if cases.len() != self.total {
            return Err(Error::Protocol(format!(
                "the batch ended after {} of {} cases",
                cases.len(),
                self.total
            )));
        }
        cases.sort_by_key(|c| c.index);
        Ok(BatchOutput {
            cases,
            not_run: Vec::new(),
            rate_limit: self.rate_limit,
        })
    }
}

impl futures::Stream for BatchStream {
    type Item = Result<CaseResult>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.events.poll_next_unpin(cx)
    }
}

/// Escapes text for XML attributes and content; drops characters XML 1.0
/// cannot carry (most control characters).
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn attr_escape(text: &str) -> String {
    xml_escape(text)
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
        .replace('\t', "&#9;")
}

fn secs(d: Duration) -> String {
    format!("{:.6}", d.as_secs_f64())
}

/// A JUnit XML report of case results: one `<testsuite>` in a
/// `<testsuites>`, a `<testcase>` per case with a `<failure>` for each
/// failed one, and the case's stdout and stderr.
///
/// ```
/// let xml = wasmwiz::junit_xml("empty", &[]);
/// assert!(xml.contains(r#"<testsuite name="empty" tests="0" failures="0""#));
/// ```
pub fn junit_xml(suite: &str, cases: &[CaseResult]) -> String {
    junit_report(suite, cases, &[])
}

/// [`junit_xml`] with the cases that did not run as `<error>`s, so a CI
/// report never silently drops a case.
pub fn junit_report(suite: &str, cases: &[CaseResult], not_run: &[NotRun]) -> String {
    let failures = cases.iter().filter(|c| !c.passed()).count();
    let errors = not_run.len();
    let tests = cases.len() + errors;
    let total: Duration = cases.iter().map(|c| c.finished.duration).sum();
    let suite_attr = attr_escape(suite);
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"{suite_attr}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{}\">",
        secs(total)
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{suite_attr}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" time=\"{}\">",
        secs(total)
    );
    for case in cases {
        let name = if case.name.is_empty() {
            format!("case {}", case.index)
        } else {
            case.name.clone()
        };
        let _ = write!(
            xml,
            "    <testcase classname=\"{suite_attr}\" name=\"{}\" time=\"{}\"",
            attr_escape(&name),
            secs(case.finished.duration)
        );
        xml.push_str(">\n");
        if let Some(original) = &case.cached_from {
            let _ = writeln!(
                xml,
                "      <properties><property name=\"cached_from\" value=\"{}\"/></properties>",
                attr_escape(original)
            );
        }
        if let Some(why) = case.failure() {
            let kind = match (case.finished.outcome, case.finished.verdict) {
                (Outcome::Success, Verdict::WrongAnswer) => "WRONG_ANSWER",
                (outcome, _) => outcome.as_str(),
            };
            let _ = writeln!(
                xml,
                "      <failure message=\"{}\" type=\"{kind}\">{}</failure>",
                attr_escape(&why),
                xml_escape(&failure_body(case, &why))
            );
        }
        if !case.stdout.is_empty() {
            let _ = writeln!(
                xml,
                "      <system-out>{}</system-out>",
                xml_escape(&String::from_utf8_lossy(&case.stdout))
            );
        }
        if !case.stderr.is_empty() {
            let _ = writeln!(
                xml,
                "      <system-err>{}</system-err>",
                xml_escape(&String::from_utf8_lossy(&case.stderr))
            );
        }
        xml.push_str("    </testcase>\n");
    }
    for case in not_run {
        let name = if case.name.is_empty() {
            format!("case {}", case.index)
        } else {
            case.name.clone()
        };
        let why = format!("not run: {}", case.reason);
        let _ = writeln!(
            xml,
            "    <testcase classname=\"{suite_attr}\" name=\"{}\" time=\"0.000000\">\n      <error message=\"{}\" type=\"NOT_RUN\">{}</error>\n    </testcase>",
            attr_escape(&name),
            attr_escape(&why),
            xml_escape(&why)
        );
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

/// The text of a `<failure>`: why, a short diff for a wrong answer, costs.
fn failure_body(case: &CaseResult, why: &str) -> String {
    let mut body = format!("{why}\n");
    if let Some(mismatch) = case.mismatch() {
        body.push_str(&mismatch.diff());
        if case.finished.output_truncated {
            body.push_str("(stdout was cut at the output limit)\n");
        }
    }
    let _ = write!(
        body,
        "exit code: {}\nfuel: {}\n",
        case.finished.exit_code, case.finished.fuel_consumed
    );
    body
}
