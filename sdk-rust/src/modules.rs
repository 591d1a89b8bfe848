//! Where a module comes from ([`Module`]), chunked uploads with dedup and
//! progress ([`Upload`]), and the stored-module calls.

use std::{
    future::{Future, IntoFuture},
    path::PathBuf,
    pin::Pin,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use futures::{stream, StreamExt};
use tonic::Code;

use crate::{
    proto::{self, upload_module_request::Msg},
    util::sha256_hex,
    Client, Error, ModuleInfo, Result, UploadProgress,
};

/// A WebAssembly module to run or upload: a file, bytes, or the sha256 of a
/// module stored before.
///
/// ```
/// use wasmwiz::Module;
///
/// let from_file = Module::file("examples/guests/hello.wasm");
/// let from_bytes = Module::bytes(std::fs::read("../examples/guests/hello.wasm").unwrap_or_default());
/// let stored = Module::sha256("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
/// # let _ = (from_file, from_bytes, stored);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module(pub(crate) ModuleSource);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ModuleSource {
    File(PathBuf),
    Bytes(Bytes),
    Sha256(String),
}

impl Module {
    /// A `.wasm` file, read when the call is made.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Module(ModuleSource::File(path.into()))
    }

    /// Module bytes (binary WebAssembly).
    pub fn bytes(bytes: impl Into<Bytes>) -> Self {
        Module(ModuleSource::Bytes(bytes.into()))
    }

    /// A module this account stored before, by its hex sha256.
    pub fn sha256(hex: impl Into<String>) -> Self {
        Module(ModuleSource::Sha256(hex.into().trim().to_ascii_lowercase()))
    }

    /// The module's bytes, when it has them (reading a file).
    pub(crate) fn load(&self) -> impl Future<Output = Result<Option<Bytes>>> + Send + 'static {
        let source = self.0.clone();
        async move {
            match source {
                ModuleSource::File(path) => match tokio::fs::read(&path).await {
                    Ok(b) => Ok(Some(Bytes::from(b))),
                    Err(source) => Err(Error::Io { path, source }),
                },
                ModuleSource::Bytes(bytes) => Ok(Some(bytes)),
                ModuleSource::Sha256(_) => Ok(None),
            }
        }
    }
}

/// How a call refers to the module after resolution.
pub(crate) enum Resolved {
    Inline(Bytes),
    Stored(String),
}

pub(crate) type ProgressFn = Arc<Mutex<Box<dyn FnMut(UploadProgress) + Send>>>;

pub(crate) fn progress_fn(f: impl FnMut(UploadProgress) + Send + 'static) -> ProgressFn {
    Arc::new(Mutex::new(Box::new(f)))
}

fn report(progress: &Option<ProgressFn>, p: UploadProgress) {
    if let Some(progress) = progress {
        if let Ok(mut f) = progress.lock() {
            f(p);
        }
    }
}

impl Client {
    /// Inline bytes for small modules; large ones are uploaded once (or found
    /// already stored) and referred to by sha256.
    pub(crate) async fn resolve(
        &self,
        module: &Module,
        progress: &Option<ProgressFn>,
    ) -> Result<Resolved> {
        if let ModuleSource::Sha256(sha) = &module.0 {
            return Ok(Resolved::Stored(sha.clone()));
        }
        let bytes = module.load().await?.unwrap_or_default();
        if (bytes.len() as u64) < self.inner.upload_threshold {
            return Ok(Resolved::Inline(bytes));
        }
        let sha = sha256_hex(&bytes);
        let info = self
            .upload_bytes(bytes, sha, progress.clone(), true)
            .await?;
        Ok(Resolved::Stored(info.sha256))
    }

    /// Stores a module in this account, in chunks with `UploadModule`,
    /// unless the server already has it. Await the returned [`Upload`].
    ///
    /// ```no_run
    /// # async fn demo(client: wasmwiz::Client) -> wasmwiz::Result<()> {
    /// use wasmwiz::Module;
    ///
    /// let info = client
    ///     .upload(Module::file("big.wasm"))
    ///     .on_progress(|p| eprintln!("{}/{} bytes", p.sent, p.total))
    ///     .await?;
    /// println!("stored {} (already there: {})", info.sha256, info.already_existed);
    /// let output = client.run(wasmwiz::Module::sha256(&info.sha256)).output().await?;
    /// # let _ = output; Ok(()) }
    /// ```
    pub fn upload(&self, module: Module) -> Upload {
        Upload {
            client: self.clone(),
            module,
            progress: None,
            check_existing: true,
        }
    }

    /// What the server knows of a stored module (`GetModule`).
    pub async fn module_info(&self, sha256: &str) -> Result<ModuleInfo> {
        let message = proto::GetModuleRequest {
            sha256: sha256.trim().to_ascii_lowercase(),
        };
        let info = self
            .unary(self.modules_client(), message, |mut c, r| async move {
                c.get_module(r).await
            })
            .await?;
        Ok(info.into())
    }

    /// Every module stored by this account, newest first (`ListModules`,
    /// all pages), with import and export counts but not the lists (see
    /// [`Client::list_modules_detailed`]).
    pub async fn list_modules(&self) -> Result<Vec<ModuleInfo>> {
        self.list_module_pages(false).await
    }

    /// As [`Client::list_modules`], with every module's full import and
    /// export lists (smaller pages: heavier for modules with many exports).
    pub async fn list_modules_detailed(&self) -> Result<Vec<ModuleInfo>> {
        self.list_module_pages(true).await
    }

    async fn list_module_pages(&self, include_details: bool) -> Result<Vec<ModuleInfo>> {
        let mut modules = Vec::new();
        let mut page_token = String::new();
        loop {
            let message = proto::ListModulesRequest {
                // The server caps it (lower with details).
                page_size: 1000,
                page_token: page_token.clone(),
                include_details,
            };
            let page = self
                .unary(self.modules_client(), message, |mut c, r| async move {
                    c.list_modules(r).await
                })
                .await?;
            modules.extend(page.modules.into_iter().map(ModuleInfo::from));
            if page.next_page_token.is_empty() {
                return Ok(modules);
            }
            page_token = page.next_page_token;
        }
    }

    /// Removes a module from this account (`DeleteModule`).
    pub async fn delete_module(&self, sha256: &str) -> Result<()> {
        let message = proto::DeleteModuleRequest {
            sha256: sha256.trim().to_ascii_lowercase(),
        };
        self.unary(self.modules_client(), message, |mut c, r| async move {
            c.delete_module(r).await
        })
        .await?;
        Ok(())
    }

    pub(crate) async fn upload_bytes(
        &self,
        bytes: Bytes,
        sha: String,
        progress: Option<ProgressFn>,
        check_existing: bool,
    ) -> Result<ModuleInfo> {
        let total = bytes.len() as u64;
        if check_existing {
            match self.module_info(&sha).await {
                Ok(mut info) => {
                    info.already_existed = true;
                    report(
                        &progress,
                        UploadProgress {
                            sent: total,
                            total,
                            skipped: true,
                        },
                    );
                    return Ok(info);
                }
                Err(e) if e.code() == Code::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let chunk_size = self.inner.chunk_size;
        let mut retries = 0;
        loop {
            let start = proto::UploadModuleRequest {
                msg: Some(Msg::Start(proto::UploadStart {
                    size: total,
                    sha256: Some(sha.clone()),
                })),
            };
            report(
                &progress,
                UploadProgress {
                    sent: 0,
                    total,
                    skipped: false,
                },
            );
            let chunk_bytes = bytes.clone();
            let chunk_progress = progress.clone();
            let chunks = (0..chunk_bytes.len()).step_by(chunk_size).map(move |at| {
                let end = (at + chunk_size).min(chunk_bytes.len());
                report(
                    &chunk_progress,
                    UploadProgress {
                        sent: end as u64,
                        total,
                        skipped: false,
                    },
                );
                proto::UploadModuleRequest {
                    msg: Some(Msg::Chunk(chunk_bytes.slice(at..end).to_vec())),
                }
            });
            // Lazily: each chunk is made (and reported) when the connection
            // takes it.
            let messages = RequestStream(
                stream::once(async move { start })
                    .chain(stream::iter(chunks))
                    .boxed(),
            );
            let request = self.request(messages);
            let error = match self.modules_client().upload_module(request).await {
                Ok(info) => return Ok(info.into_inner().into()),
                Err(status) => Error::from(status),
            };
            let Some(wait) = self.retry_wait(&error, retries) else {
                return Err(error);
            };
            retries += 1;
            tokio::time::sleep(wait).await;
        }
    }
}

/// A pending upload; `.await` it. See [`Client::upload`].
#[must_use = "an upload does nothing until awaited"]
pub struct Upload {
    client: Client,
    module: Module,
    progress: Option<ProgressFn>,
    check_existing: bool,
}

impl Upload {
    /// Called with the bytes sent so far as chunks go out (and once with
    /// `skipped: true` when the server already has the module).
    pub fn on_progress(mut self, f: impl FnMut(UploadProgress) + Send + 'static) -> Self {
        self.progress = Some(progress_fn(f));
        self
    }

    /// Upload even when the server already has the module (default: ask
    /// with `GetModule` first and skip the upload when it does).
    pub fn force(mut self, force: bool) -> Self {
        self.check_existing = !force;
        self
    }

    async fn send(self) -> Result<ModuleInfo> {
        let loaded = self.module.load().await?;
        match loaded {
            Some(bytes) => {
                let sha = sha256_hex(&bytes);
                self.client
                    .upload_bytes(bytes, sha, self.progress, self.check_existing)
                    .await
            }
            None => {
                let ModuleSource::Sha256(sha) = &self.module.0 else {
                    unreachable!("only sha256 modules have no bytes")
                };
                let mut info = self.client.module_info(sha).await?;
                info.already_existed = true;
                Ok(info)
            }
        }
    }
}

impl IntoFuture for Upload {
    type Output = Result<ModuleInfo>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<ModuleInfo>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// A boxed request stream behind a concrete type: handing tonic a
/// `Pin<Box<dyn Stream + Send>>` directly makes rustc fail to prove the call's
/// future `Send` ("higher-ranked lifetime error"); this newtype does not.
pub(crate) struct RequestStream<T>(pub(crate) stream::BoxStream<'static, T>);

impl<T> futures::Stream for RequestStream<T> {
    type Item = T;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.as_mut().poll_next(cx)
    }
}
