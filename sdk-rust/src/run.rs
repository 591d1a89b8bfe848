//! One execution: [`Run`] (the request builder) over the `Execute` RPC, and
//! [`RunStream`] (its typed events as they arrive).

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use futures::{stream::BoxStream, Stream, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    sync::oneshot,
};

use crate::{
    fs::{piece_data, Reassembly, PIECE_BYTES},
    modules::{progress_fn, ProgressFn, RequestStream, Resolved},
    proto::{self, execute_event, execute_request::Msg, execute_start::Source},
    Client, Error, Event, File, Filesystem, Finished, Limits, Module, Output, RateLimit, Result,
    Started, UploadProgress,
};

type SharedStdin = Arc<Mutex<Option<BoxStream<'static, Bytes>>>>;

enum Stdin {
    Bytes(Bytes),
    Stream(SharedStdin),
}

/// A run being set up; finish with [`Run::output`] (collect everything) or
/// [`Run::stream`] (events as they come). Made by [`Client::run`].
///
/// ```no_run
/// # async fn demo(client: wasmwiz::Client) -> wasmwiz::Result<()> {
/// use std::time::Duration;
/// use wasmwiz::{Limits, Module, Outcome};
///
/// let output = client
///     .run(Module::file("fib.wasm"))
///     .stdin("30\n")
///     .args(["--verbose"])
///     .env([("LANG", "C")])
///     .limits(Limits::new().fuel(10_000_000_000).timeout(Duration::from_secs(5)))
///     .seed(42)
///     .expect_stdout("832040\n")
///     .output()
///     .await?;
/// assert_eq!(output.outcome, Outcome::Success);
/// println!("{} fuel in {:?}", output.fuel_consumed, output.duration);
/// # Ok(()) }
/// ```
#[must_use = "a run does nothing until `.output()` or `.stream()` is awaited"]
pub struct Run {
    client: Client,
    module: Module,
    stdin: Stdin,
    args: Vec<String>,
    env: HashMap<String, String>,
    program_name: String,
    limits: Limits,
    seed: u64,
    expected_stdout: Option<Bytes>,
    keep_module: bool,
    fs: Option<Filesystem>,
    progress: Option<ProgressFn>,
    cache: proto::CachePolicy,
    receipt: bool,
    interactive: bool,
}

impl Client {
    /// Sets up a run of `module`; see [`Run`].
    pub fn run(&self, module: Module) -> Run {
        Run {
            client: self.clone(),
            module,
            stdin: Stdin::Bytes(Bytes::new()),
            args: Vec::new(),
            env: HashMap::new(),
            program_name: String::new(),
            limits: Limits::default(),
            seed: 0,
            expected_stdout: None,
            keep_module: false,
            fs: None,
            progress: None,
            cache: proto::CachePolicy::Unspecified,
            receipt: false,
            interactive: false,
        }
    }
}

impl Run {
    /// Whether the server's result cache may answer (and store) this run
    /// (default: off). Refused with streamed stdin.
    pub fn cache(mut self, policy: proto::CachePolicy) -> Self {
        self.cache = policy;
        self
    }

    /// A person types the streamed stdin (default: no): the timeout then
    /// counts only the guest's running time, each wait for input is bounded
    /// by `Limits::idle_timeout` and the whole run by the tier's session
    /// length. Needs streamed stdin ([`Run::stdin_stream`], [`Run::stdin_reader`]).
    pub fn interactive(mut self, interactive: bool) -> Self {
        self.interactive = interactive;
        self
    }

    /// Ask for a signed receipt (`Finished::receipt`; default: no).
    pub fn receipt(mut self, receipt: bool) -> Self {
        self.receipt = receipt;
        self
    }

    /// The guest's whole stdin (default: empty).
    pub fn stdin(mut self, stdin: impl Into<Bytes>) -> Self {
        self.stdin = Stdin::Bytes(stdin.into());
        self
    }

    /// Streams stdin while the guest runs: its reads wait for the next chunk,
    /// and the end of the stream is the end of file. The stream is polled
    /// only once the server has admitted the run (so a refused run can be
    /// retried without losing stdin).
    pub fn stdin_stream(mut self, stdin: impl Stream<Item = Bytes> + Send + 'static) -> Self {
        self.stdin = Stdin::Stream(Arc::new(Mutex::new(Some(stdin.boxed()))));
        self
    }

    /// Streams stdin from a reader (a file, a pipe, the process's stdin), in
    /// 64 KiB chunks; a read error ends the guest's stdin.
    pub fn stdin_reader(self, reader: impl AsyncRead + Send + Unpin + 'static) -> Self {
        let chunks = futures::stream::unfold(reader, |mut reader| async move {
            let mut buf = BytesMut::zeroed(64 * 1024);
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((buf.freeze(), reader))
                }
            }
        });
        self.stdin_stream(chunks)
    }

    /// argv\[1..\] (replaces earlier args).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds environment variables (the guest inherits nothing else).
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

    /// argv\[0\] (default `main.wasm`).
    pub fn program_name(mut self, name: impl Into<String>) -> Self {
        self.program_name = name.into();
        self
    }

    /// Fuel, memory, timeout and output limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Seed of the guest's `random_get`.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The stdout the guest must print: the result's verdict says whether
    /// it did ([`crate::Verdict`]).
    pub fn expect_stdout(mut self, expected: impl Into<Bytes>) -> Self {
        self.expected_stdout = Some(expected.into());
        self
    }

    /// Gives the guest a filesystem (one preopened directory, fd 3, named
    /// `/`); its files are streamed to the server in pieces of 1 MiB, and
    /// files matching its `collect` patterns come back in
    /// [`Output::files`]. Without it the guest has no filesystem.
    ///
    /// ```no_run
    /// # async fn demo(client: wasmwiz::Client) -> wasmwiz::Result<()> {
    /// use wasmwiz::{Filesystem, Module};
    ///
    /// let output = client
    ///     .run(Module::file("convert.wasm"))
    ///     .fs(Filesystem::new().file("in.txt", "hello").collect("out/**"))
    ///     .output()
    ///     .await?;
    /// for file in &output.files {
    ///     println!("{}: {} bytes", file.path, file.contents.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn fs(mut self, fs: Filesystem) -> Self {
        self.fs = Some(fs);
        self
    }

    /// Also store an inline module in the account (to run it by sha256).
    pub fn keep_module(mut self, keep: bool) -> Self {
        self.keep_module = keep;
        self
    }

    /// Progress of the module's upload, for modules large enough to be
    /// uploaded first (see [`crate::ClientBuilder::upload_threshold`]).
    pub fn on_upload_progress(mut self, f: impl FnMut(UploadProgress) + Send + 'static) -> Self {
        self.progress = Some(progress_fn(f));
        self
    }

    /// Runs and collects everything: stdout, stderr and how it ended.
    pub async fn output(self) -> Result<Output> {
        self.stream().await?.output().await
    }

    /// Runs, returning the events as the server sends them: `Started`, the
    /// guest's stdout/stderr chunks as it writes them, then `Finished`.
    /// Dropping the stream cancels the run.
    ///
    /// ```no_run
    /// # async fn demo(client: wasmwiz::Client) -> wasmwiz::Result<()> {
    /// use futures::StreamExt;
    /// use std::io::Write;
    /// use wasmwiz::{Event, Module};
    ///
    /// let mut events = client.run(Module::file("progress.wasm")).arg("5").stream().await?;
    /// while let Some(event) = events.next().await {
    ///     match event? {
    ///         Event::Stdout(chunk) => std::io::stdout().write_all(&chunk).unwrap(),
    ///         Event::Stderr(chunk) => std::io::stderr().write_all(&chunk).unwrap(),
    ///         Event::Finished(end) => println!("\n{} after {:?}", end.outcome, end.duration),
    ///         Event::Started(_) | Event::File(_) => {}
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn stream(self) -> Result<RunStream> {
        let client = self.client.clone();
        let resolved = client.resolve(&self.module, &self.progress).await?;
        let (source, inline) = match resolved {
            Resolved::Inline(bytes) => (Source::ModuleSize(bytes.len() as u64), Some(bytes)),
            Resolved::Stored(sha) => (Source::ModuleSha256(sha), None),
        };
        let (stdin, streamed) = match &self.stdin {
            Stdin::Bytes(b) => (b.to_vec(), None),
            Stdin::Stream(s) => (Vec::new(), Some(s.clone())),
        };
        let start = proto::ExecuteStart {
            source: Some(source),
            stdin,
            args: self.args.clone(),
            program_name: self.program_name.clone(),
            env: self.env.clone(),
            limits: Some(self.limits.to_proto()),
            random_seed: self.seed,
            expected_stdout: self.expected_stdout.as_ref().map(|b| b.to_vec()),
            stream_stdin: streamed.is_some(),
            keep_module: self.keep_module,
            // Entries follow as `fs_chunk`s, so no file needs one message.
            fs: self.fs.as_ref().map(|fs| proto::Filesystem {
                entries: Vec::new(),
                collect: fs.collect.clone(),
            }),
            cache: self.cache as i32,
            receipt: self.receipt,
            interactive: self.interactive,
        };
        let fs = self.fs.map(Arc::new);
        let chunk_size = client.inner.chunk_size;
        let mut retries = 0;
        loop {
            let (gate, opened) = oneshot::channel::<()>();
            let messages = request_messages(
                start.clone(),
                inline.clone(),
                chunk_size,
                fs.clone(),
                streamed.clone(),
                opened,
            );
            let error = match client.execution().execute(client.request(messages)).await {
                Ok(response) => {
                    let rate_limit = RateLimit::from_metadata(response.metadata());
                    let _ = gate.send(());
                    return Ok(RunStream {
                        inner: response.into_inner(),
                        rate_limit,
                        done: false,
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
}

impl Run {
    /// The run as one `RunRequest` (for `SubmitExecution`): the module is
    /// resolved (uploaded first when large), stdin and files go whole.
    pub(crate) async fn run_request(&self) -> Result<proto::RunRequest> {
        let Stdin::Bytes(stdin) = &self.stdin else {
            return Err(Error::Config(
                "a submitted run's stdin is sent whole: use `stdin`, not a stream".into(),
            ));
        };
        if self.interactive {
            return Err(Error::Config(
                "an interactive run cannot be submitted".into(),
            ));
        }
        let source = match self.client.resolve(&self.module, &self.progress).await? {
            Resolved::Inline(bytes) => proto::run_request::Source::Module(bytes.to_vec()),
            Resolved::Stored(sha) => proto::run_request::Source::ModuleSha256(sha),
        };
        Ok(proto::RunRequest {
            source: Some(source),
            stdin: stdin.to_vec(),
            args: self.args.clone(),
            program_name: self.program_name.clone(),
            env: self.env.clone(),
            limits: Some(self.limits.to_proto()),
            random_seed: self.seed,
            expected_stdout: self.expected_stdout.as_ref().map(|b| b.to_vec()),
            keep_module: self.keep_module,
            fs: self.fs.as_ref().map(Filesystem::to_proto),
            receipt: self.receipt,
            cache: self.cache as i32,
            interactive: false,
        })
    }

    /// The client the run was set up on.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }
}

/// `start`, the inline module's chunks, the filesystem's entries (files in
/// pieces) and `fs_eof`, then (once `opened` fires, i.e. the server
/// admitted the run) the streamed stdin and `stdin_eof`.
fn request_messages(
    start: proto::ExecuteStart,
    inline: Option<Bytes>,
    chunk_size: usize,
    fs: Option<Arc<Filesystem>>,
    stdin: Option<SharedStdin>,
    opened: oneshot::Receiver<()>,
) -> RequestStream<proto::ExecuteRequest> {
    fn message(msg: Msg) -> proto::ExecuteRequest {
        proto::ExecuteRequest { msg: Some(msg) }
    }
    let head = futures::stream::once(async move { message(Msg::Start(start)) });
    let module = inline.unwrap_or_default();
    let chunks = futures::stream::iter((0..module.len()).step_by(chunk_size).map(move |at| {
        let end = (at + chunk_size).min(module.len());
        message(Msg::ModuleChunk(module.slice(at..end).to_vec()))
    }));
    let entries: Vec<proto::ExecuteRequest> = match fs {
        Some(fs) => fs
            .chunks(PIECE_BYTES)
            .map(|chunk| message(Msg::FsChunk(chunk)))
            .chain(std::iter::once(message(Msg::FsEof(true))))
            .collect(),
        None => Vec::new(),
    };
    let chunks = chunks.chain(futures::stream::iter(entries));
    let tail = futures::stream::once(async move {
        let taken = match (stdin, opened.await) {
            (Some(shared), Ok(())) => shared.lock().ok().and_then(|mut s| s.take()),
            _ => None,
        };
        match taken {
            Some(user) => user
                .map(|chunk| message(Msg::StdinChunk(chunk.to_vec())))
                .chain(futures::stream::once(async move {
                    message(Msg::StdinEof(true))
                }))
                .boxed(),
            None => futures::stream::empty().boxed(),
        }
    })
    .flatten();
    RequestStream(head.chain(chunks).chain(tail).boxed())
}

/// The events of a run as they arrive; a [`Stream`] of
/// `Result<`[`Event`]`>`. Ends after [`Event::Finished`].
pub struct RunStream {
    inner: tonic::Streaming<proto::ExecuteEvent>,
    rate_limit: Option<RateLimit>,
    done: bool,
}

impl std::fmt::Debug for RunStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunStream")
            .field("rate_limit", &self.rate_limit)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl RunStream {
    /// The events of a call that streams `ExecuteEvent`s (`WatchExecution`).
    pub(crate) fn from_events(inner: tonic::Streaming<proto::ExecuteEvent>) -> Self {
        RunStream {
            inner,
            rate_limit: None,
            done: false,
        }
    }

    /// The `ratelimit-*` metadata of the response (metered tiers only).
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit
    }

    /// Collects the rest of the run into an [`Output`].
    pub async fn output(mut self) -> Result<Output> {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut started: Option<Started> = None;
        let mut finished: Option<Finished> = None;
        let mut files = Reassembly::default();
        while let Some(event) = self.next().await {
            match event? {
                Event::Started(s) => started = Some(s),
                Event::Stdout(chunk) => stdout.extend_from_slice(&chunk),
                Event::Stderr(chunk) => stderr.extend_from_slice(&chunk),
                Event::File(piece) => files.push(piece.path, &piece.contents),
                Event::Finished(f) => finished = Some(f),
            }
        }
        match (started, finished) {
            (Some(started), Some(finished)) => Ok(Output::new(
                started,
                finished,
                stdout,
                stderr,
                files.finish(),
                self.rate_limit,
            )),
            _ => Err(Error::Protocol(
                "the run's event stream ended without `started` and `finished`".into(),
            )),
        }
    }
}

impl Stream for RunStream {
    type Item = Result<Event>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let polled = Pin::new(&mut self.inner).poll_next(cx);
            return match polled {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => {
                    self.done = true;
                    Poll::Ready(None)
                }
                Poll::Ready(Some(Err(status))) => {
                    self.done = true;
                    Poll::Ready(Some(Err(Error::from(status))))
                }
                Poll::Ready(Some(Ok(event))) => match event.event {
                    None => continue,
                    Some(execute_event::Event::Started(s)) => {
                        Poll::Ready(Some(Ok(Event::Started(s.into()))))
                    }
                    Some(execute_event::Event::Stdout(b)) => {
                        Poll::Ready(Some(Ok(Event::Stdout(b))))
                    }
                    Some(execute_event::Event::Stderr(b)) => {
                        Poll::Ready(Some(Ok(Event::Stderr(b))))
                    }
                    Some(execute_event::Event::File(entry)) => {
                        Poll::Ready(Some(Ok(Event::File(File {
                            contents: piece_data(&entry),
                            path: entry.path,
                        }))))
                    }
                    Some(execute_event::Event::Finished(f)) => {
                        self.done = true;
                        Poll::Ready(Some(Ok(Event::Finished(f.into()))))
                    }
                },
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_send<T: Send + 'static>(_: T) {}

    /// Runs, uploads and batches can be spawned.
    #[allow(dead_code)]
    fn futures_are_send(client: Client) {
        is_send(client.run(Module::file("x")).output());
        is_send(client.run(Module::file("x")).stream());
        is_send(std::future::IntoFuture::into_future(
            client.upload(Module::file("x")),
        ));
        is_send(client.batch(Module::file("x")).output());
        let c = client.clone();
        is_send(async move { c.whoami().await });
    }
}
