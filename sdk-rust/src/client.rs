//! The connection: built once (URL, TLS, key, timeouts, retry policy) and
//! shared by every call; service clients are made from it per call.

use std::{future::Future, sync::Arc, time::Duration};

use base64::Engine as _;
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{interceptor::InterceptedService, Interceptor},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
    Request, Status,
};

use crate::{
    error::innermost,
    proto::{
        account_service_client::AccountServiceClient, admin_service_client::AdminServiceClient,
        execution_service_client::ExecutionServiceClient,
        module_service_client::ModuleServiceClient,
    },
    Error, Result, RetryPolicy,
};

/// Largest message this client sends or accepts (batch events carry a
/// case's whole output, up to the tier's output limit).
const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// Adds `authorization: Bearer <key>` to every call.
#[derive(Clone)]
pub(crate) struct Auth {
    header: Option<MetadataValue<Ascii>>,
}

impl Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

pub(crate) type Authed = InterceptedService<Channel, Auth>;

/// A connection to a WasmWiz server. Cheap to clone; clones share the
/// connection (HTTP/2 multiplexes concurrent calls).
///
/// ```no_run
/// # async fn demo() -> wasmwiz::Result<()> {
/// use std::time::Duration;
/// use wasmwiz::{Client, Module, RetryPolicy};
///
/// let client = Client::builder("http://127.0.0.1:8080")
///     .api_key(std::env::var("WASMWIZ_API_KEY").unwrap_or_default())
///     .timeout(Duration::from_secs(30))
///     .retry(RetryPolicy::default())
///     .build()
///     .await?;
/// let output = client.run(Module::file("hello.wasm")).output().await?;
/// print!("{}", output.stdout_lossy());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) channel: Authed,
    pub(crate) url: String,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) upload_threshold: u64,
    pub(crate) chunk_size: usize,
    /// Sent with every request (W3C Trace Context).
    pub(crate) traceparent: Option<MetadataValue<Ascii>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.url)
            .field("retry", &self.inner.retry)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Client`]; see [`Client::builder`].
#[must_use]
pub struct ClientBuilder {
    url: String,
    api_key: Option<String>,
    timeout: Option<Duration>,
    connect_timeout: Duration,
    tls: Option<ClientTlsConfig>,
    ca_pems: Vec<Vec<u8>>,
    retry: Option<RetryPolicy>,
    upload_threshold: u64,
    chunk_size: usize,
    user_agent: String,
    traceparent: Option<String>,
}

impl Client {
    /// Starts building a client for `url` (`http://host:port`, or
    /// `https://…` for TLS).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            api_key: None,
            timeout: None,
            connect_timeout: Duration::from_secs(10),
            tls: None,
            ca_pems: Vec::new(),
            retry: None,
            upload_threshold: 1 << 20,
            chunk_size: 1 << 20,
            user_agent: format!("wasmwiz-rust/{}", env!("CARGO_PKG_VERSION")),
            traceparent: None,
        }
    }

    /// The server URL.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The retry policy, when retries are on.
    pub fn retry_policy(&self) -> Option<&RetryPolicy> {
        self.inner.retry.as_ref()
    }

    /// A request carrying the per-call timeout.
    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(timeout) = self.inner.timeout {
            request.set_timeout(timeout);
        }
        crate::trace::attach(&mut request, self.inner.traceparent.as_ref());
        request
    }

    pub(crate) fn execution(&self) -> ExecutionServiceClient<Authed> {
        ExecutionServiceClient::new(self.inner.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    pub(crate) fn modules_client(&self) -> ModuleServiceClient<Authed> {
        ModuleServiceClient::new(self.inner.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    pub(crate) fn account_client(&self) -> AccountServiceClient<Authed> {
        AccountServiceClient::new(self.inner.channel.clone())
    }

    pub(crate) fn admin_client(&self) -> AdminServiceClient<Authed> {
        AdminServiceClient::new(self.inner.channel.clone())
    }

    /// The wait before retrying after `error` (the `retries`-th retry so
    /// far), or `None` when the error must be returned. Tells the policy's
    /// hook.
    pub(crate) fn retry_wait(&self, error: &Error, retries: u32) -> Option<Duration> {
        let policy = self.inner.retry.as_ref()?;
        let wait = policy.delay(error, retries)?;
        policy.notify(error, wait, retries + 1);
        Some(wait)
    }

    /// One unary call with retries: `call` gets a fresh service client and
    /// request each time.
    pub(crate) async fn unary<S, T, R, F, Fut>(&self, service: S, message: T, call: F) -> Result<R>
    where
        S: Clone,
        T: Clone,
        F: Fn(S, Request<T>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, Status>>,
    {
        let mut retries = 0;
        loop {
            let error = match call(service.clone(), self.request(message.clone())).await {
                Ok(response) => return Ok(response.into_inner()),
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

impl ClientBuilder {
    /// The API key sent as `authorization: Bearer <key>` on every call.
    /// An empty key sends none.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        self.api_key = (!key.trim().is_empty()).then(|| key.trim().to_string());
        self
    }

    /// Deadline for each call to be answered (sent as `grpc-timeout`). For a
    /// run it bounds the wait until the execution starts (upload, compile,
    /// admission), not the guest: the guest's own bound is
    /// [`crate::Limits::timeout`]. Default: none.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long connecting may take. Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// TLS settings (CA, client identity, domain). Without this, `https://`
    /// URLs use the operating system's root certificates.
    pub fn tls(mut self, tls: ClientTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Also trusts this PEM CA certificate (e.g. a private CA), on top of
    /// the [`tls`](Self::tls) settings or the system roots.
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pems.push(pem.into());
        self
    }

    /// Turns on retries of RESOURCE_EXHAUSTED and UNAVAILABLE (off by
    /// default); see [`RetryPolicy`].
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Modules at least this large (default 1 MiB) are not sent inline with
    /// each run: they are stored once with `UploadModule` (skipped when the
    /// server already has the hash) and run by sha256.
    pub fn upload_threshold(mut self, bytes: u64) -> Self {
        self.upload_threshold = bytes;
        self
    }

    /// Size of upload and inline-module chunks (default 1 MiB).
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes.max(1024);
        self
    }

    /// A W3C `traceparent` sent with every call, so the server's spans join
    /// the caller's trace (e.g. a CI job's `TRACEPARENT`).
    pub fn traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.traceparent = Some(traceparent.into());
        self
    }

    /// The `user-agent` prefix (default `wasmwiz-rust/VERSION`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Connects. Fails with [`Error::Connect`] when the server cannot be
    /// reached (retried when a retry policy is set).
    pub async fn build(self) -> Result<Client> {
        let traceparent = self
            .traceparent
            .as_deref()
            .map(crate::trace::parse_traceparent)
            .transpose()?;
        let header = match &self.api_key {
            Some(key) => Some(
                format!("Bearer {key}")
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| {
                        Error::Config("the API key has characters a header cannot carry".into())
                    })?,
            ),
            None => None,
        };
        let url = self.url.trim().trim_end_matches('/').to_string();
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| Error::Config(format!("`{url}` is not a valid URL: {}", innermost(&e))))?
            .user_agent(self.user_agent.clone())
            .map_err(|_| Error::Config("invalid user agent".into()))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(false)
            .http2_adaptive_window(true);
        let https = url.starts_with("https://");
        if https || self.tls.is_some() || !self.ca_pems.is_empty() {
            let mut tls = match self.tls {
                Some(tls) => tls,
                None => {
                    let mut tls = ClientTlsConfig::new().ca_certificates(system_roots());
                    if let Some(host) = endpoint.uri().host() {
                        tls = tls.domain_name(host.trim_matches(['[', ']']));
                    }
                    tls
                }
            };
            for pem in self.ca_pems {
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| Error::Config(format!("TLS: {}", innermost(&e))))?;
        }
        let inner_url = url.clone();
        let connect = || {
            let endpoint = endpoint.clone();
            let url = url.clone();
            async move {
                endpoint.connect().await.map_err(|source| Error::Connect {
                    reason: innermost(&source),
                    url,
                    source,
                })
            }
        };
        let channel = match &self.retry {
            None => connect().await?,
            Some(policy) => {
                let mut retries = 0;
                loop {
                    match connect().await {
                        Ok(channel) => break channel,
                        Err(error) => match policy.delay(&error, retries) {
                            Some(wait) => {
                                retries += 1;
                                policy.notify(&error, wait, retries);
                                tokio::time::sleep(wait).await;
                            }
                            None => return Err(error),
                        },
                    }
                }
            }
        };
        Ok(Client {
            inner: Arc::new(Inner {
                channel: InterceptedService::new(channel, Auth { header }),
                url: inner_url,
                retry: self.retry,
                timeout: self.timeout,
                upload_threshold: self.upload_threshold,
                chunk_size: self.chunk_size,
                traceparent,
            }),
        })
    }
}

/// The operating system's root certificates, as PEM for tonic.
fn system_roots() -> Vec<Certificate> {
    let engine = base64::engine::general_purpose::STANDARD;
    rustls_native_certs::load_native_certs()
        .certs
        .into_iter()
        .map(|der| {
            let body = engine.encode(der.as_ref());
            let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
            for line in body.as_bytes().chunks(64) {
                pem.push_str(std::str::from_utf8(line).unwrap_or_default());
                pem.push('\n');
            }
            pem.push_str("-----END CERTIFICATE-----\n");
            Certificate::from_pem(pem)
        })
        .collect()
}
