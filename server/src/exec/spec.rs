//! Requests become a [`RunSpec`] by conversion, so every execution —
//! `Run`, `Execute` or one case of `RunBatch` — is validated the same way
//! before the lifecycle sees it.

use bytes::Bytes;
use tonic::Status;
use wasmwiz_proto::v1;

use super::{
    client::{receive_fs, receive_module, ClientStdin, ClientStream, InteractiveStdin},
    fs_input::{FsRequest, TreeLimits},
};
use crate::{
    api::{
        convert::{check_size, sha256_field, CommandLine, EffectiveLimits},
        errors::ApiError,
    },
    config::Tier,
};

/// Where the module to run comes from, as the request gave it.
pub enum ModuleSource {
    /// Bytes in the request.
    Inline(Bytes),
    /// A module the caller stored, by sha256.
    Stored(String),
    /// `size` bytes that follow `start` on the client's stream; read only
    /// once the caller is admitted, so a refused caller uploads nothing.
    Streamed(u64),
}

/// A request's `oneof source` in the shape `Run` and `RunBatch` share.
pub enum GivenSource {
    Module(Vec<u8>),
    Sha256(String),
}

impl From<v1::run_request::Source> for GivenSource {
    fn from(source: v1::run_request::Source) -> Self {
        match source {
            v1::run_request::Source::Module(bytes) => Self::Module(bytes),
            v1::run_request::Source::ModuleSha256(sha) => Self::Sha256(sha),
        }
    }
}

impl From<v1::run_batch_request::Source> for GivenSource {
    fn from(source: v1::run_batch_request::Source) -> Self {
        match source {
            v1::run_batch_request::Source::Module(bytes) => Self::Module(bytes),
            v1::run_batch_request::Source::ModuleSha256(sha) => Self::Sha256(sha),
        }
    }
}

/// The caller's tier with its name (errors name the tier in the user's terms).
#[derive(Clone, Copy)]
pub struct NamedTier<'a> {
    pub name: &'a str,
    pub tier: &'a Tier,
}

impl ModuleSource {
    /// Checks inline bytes against the tier and a sha256's shape.
    pub fn given(source: Option<GivenSource>, tier: NamedTier<'_>) -> Result<Self, ApiError> {
        match source {
            Some(GivenSource::Module(bytes)) => {
                check_size(
                    "module",
                    bytes.len() as u64,
                    tier.tier.max_module_bytes,
                    tier.name,
                )?;
                Ok(Self::Inline(Bytes::from(bytes)))
            }
            Some(GivenSource::Sha256(sha)) => {
                Ok(Self::Stored(sha256_field("module_sha256", &sha)?))
            }
            None => Err(ApiError::invalid(
                "source",
                "give `module` bytes or a `module_sha256`",
            )),
        }
    }
}

/// The guest's stdin, as the request gave it.
pub enum StdinSpec {
    Bytes(Bytes),
    /// `stdin_chunk`s on the client's stream, up to the tier's maximum.
    Streamed {
        max: u64,
        tier_name: String,
        /// Waits for input pause the timeout (`start.interactive`).
        interactive: Option<(std::time::Duration, std::time::Duration)>,
    },
    /// `initial`, then `WriteStdin` calls until `eof` (an interactive `Run`).
    Interactive {
        initial: Bytes,
        settings: InteractiveStdin,
    },
}

/// One execution, validated against the caller's tier.
pub struct RunSpec {
    pub source: ModuleSource,
    /// Store the module for the caller (inline or streamed bytes only).
    pub keep_module: bool,
    pub cmd: CommandLine,
    pub limits: EffectiveLimits,
    pub seed: u64,
    pub stdin: StdinSpec,
    /// Bytes stdout must equal for an ACCEPTED verdict.
    pub expected: Option<Bytes>,
    /// The guest's filesystem; `None` gives it no preopens.
    pub fs: Option<FsRequest>,
    /// More entries follow on the client's stream as `fs_chunk`s.
    pub streams_fs: bool,
    /// The client's message that ended its `fs_chunk`s, when it was stdin.
    pending: Option<v1::execute_request::Msg>,
    /// The tier's name and upload idle timeout, for what streams in.
    tier_name: String,
    idle: std::time::Duration,
    /// The rest of an `Execute` client's stream (module chunks, then
    /// filesystem entries, then stdin).
    pub client: Option<ClientStream>,
    /// Sign a receipt of the run (`receipt = true`).
    pub receipt: bool,
    /// Whether the result cache answers or stores this run.
    pub cache: v1::CachePolicy,
    /// Set by the job worker: the detached execution this run is an
    /// attempt of (a re-run is not charged again).
    pub job: Option<super::record::JobAttempt>,
}

/// The byte and entry limits of a request's tree.
pub fn tree_limits(limits: &EffectiveLimits, tier: &Tier) -> TreeLimits {
    TreeLimits {
        max_bytes: limits.fs_bytes,
        max_entries: tier.max_fs_entries,
    }
}

/// A request's optional `fs` as a tree (absent: no filesystem).
pub fn given_fs(
    fs: Option<v1::Filesystem>,
    field: &str,
    limits: &EffectiveLimits,
    tier: &Tier,
) -> Result<Option<FsRequest>, ApiError> {
    fs.map(|fs| FsRequest::from_proto(fs, field, tree_limits(limits, tier)))
        .transpose()
}

impl RunSpec {
    /// The module's bytes or sha256, reading a streamed module from the
    /// client now (the caller has been admitted).
    pub async fn take_source(&mut self) -> Result<ModuleSource, Status> {
        match std::mem::replace(&mut self.source, ModuleSource::Streamed(0)) {
            ModuleSource::Streamed(size) => {
                let client = self.client.as_mut().ok_or_else(|| {
                    Status::internal("a streamed module needs the client's stream")
                })?;
                Ok(ModuleSource::Inline(
                    receive_module(size, client, self.idle).await?,
                ))
            }
            ready => Ok(ready),
        }
    }

    /// Checks the tree the request gave (before admission, so a refused
    /// tree costs no allowance).
    pub async fn check_fs(&mut self) -> Result<(), ApiError> {
        if let Some(fs) = self.fs.take() {
            self.fs = Some(fs.checked(&self.tier_name).await?);
        }
        Ok(())
    }

    /// The guest's filesystem, reading streamed entries from the client now
    /// (the caller has been admitted and the module received).
    pub async fn take_fs(&mut self) -> Result<Option<crate::engine::vfs::FsSpec>, Status> {
        let Some(mut fs) = self.fs.take() else {
            return Ok(None);
        };
        if self.streams_fs {
            let client = self
                .client
                .as_mut()
                .ok_or_else(|| Status::internal("streamed entries need the client's stream"))?;
            let (tree, pending) = receive_fs(fs, client, self.idle, &self.tier_name).await?;
            self.pending = pending;
            fs = tree.checked(&self.tier_name).await?;
        }
        Ok(Some(fs.spec))
    }

    /// The guest's stdin, streaming from the client's rest when asked to.
    pub fn take_stdin(&mut self) -> Result<ClientStdin, Status> {
        let pending = self.pending.take();
        let fs_given = self.streams_fs;
        match std::mem::replace(&mut self.stdin, StdinSpec::Bytes(Bytes::new())) {
            StdinSpec::Bytes(bytes) => match self.client.take() {
                None => Ok(ClientStdin::bytes(bytes)),
                Some(client) => Ok(ClientStdin::bytes_watching(
                    bytes, client, pending, fs_given,
                )?),
            },
            StdinSpec::Streamed {
                max,
                tier_name,
                interactive,
            } => {
                let client = self
                    .client
                    .take()
                    .ok_or_else(|| Status::internal("streamed stdin needs the client's stream"))?;
                Ok(ClientStdin::streamed(
                    client,
                    max,
                    tier_name,
                    pending,
                    fs_given,
                    interactive,
                ))
            }
            StdinSpec::Interactive { initial, settings } => {
                Ok(ClientStdin::interactive(initial, settings))
            }
        }
    }
}

impl TryFrom<(v1::RunRequest, NamedTier<'_>)> for RunSpec {
    type Error = ApiError;

    fn try_from((req, named): (v1::RunRequest, NamedTier<'_>)) -> Result<Self, ApiError> {
        let (tier, name) = (named.tier, named.name);
        let limits = EffectiveLimits::resolve(req.limits.as_ref(), tier, name)?;
        check_size("stdin", req.stdin.len() as u64, tier.max_stdin_bytes, name)?;
        let cmd =
            CommandLine::new(req.program_name, req.args, req.env)?.within(tier, name, "args")?;
        let fs = given_fs(req.fs, "fs", &limits, tier)?;
        let cache = super::result_cache::policy(req.cache)?;
        let stdin = if req.interactive {
            if cache != v1::CachePolicy::Unspecified {
                return Err(ApiError::invalid(
                    "cache",
                    "an interactive run's stdin cannot be part of the result cache's key: \
                     leave `cache` unset",
                ));
            }
            StdinSpec::Interactive {
                initial: Bytes::from(req.stdin),
                settings: InteractiveStdin {
                    max: tier.max_stdin_bytes,
                    tier_name: name.to_string(),
                    idle: std::time::Duration::from_millis(limits.idle_timeout_ms),
                    session: std::time::Duration::from_millis(tier.max_session_ms),
                },
            }
        } else {
            StdinSpec::Bytes(Bytes::from(req.stdin))
        };
        Ok(Self {
            source: ModuleSource::given(req.source.map(GivenSource::from), named)?,
            keep_module: req.keep_module,
            cmd,
            limits,
            seed: req.random_seed,
            stdin,
            expected: req.expected_stdout.map(Bytes::from),
            fs,
            streams_fs: false,
            pending: None,
            tier_name: name.to_string(),
            idle: std::time::Duration::from_millis(tier.upload_idle_timeout_ms),
            client: None,
            receipt: req.receipt,
            cache,
            job: None,
        })
    }
}

impl TryFrom<(v1::ExecuteStart, ClientStream, NamedTier<'_>)> for RunSpec {
    type Error = ApiError;

    fn try_from(
        (start, client, named): (v1::ExecuteStart, ClientStream, NamedTier<'_>),
    ) -> Result<Self, ApiError> {
        let (tier, name) = (named.tier, named.name);
        let limits = EffectiveLimits::resolve(start.limits.as_ref(), tier, name)?;
        check_size(
            "stdin",
            start.stdin.len() as u64,
            tier.max_stdin_bytes,
            name,
        )?;
        let cmd = CommandLine::new(start.program_name, start.args, start.env)?
            .within(tier, name, "args")?;
        let source = match start.source {
            Some(v1::execute_start::Source::ModuleSize(size)) => {
                check_size("module_size", size, tier.max_module_bytes, name)?;
                ModuleSource::Streamed(size)
            }
            Some(v1::execute_start::Source::ModuleSha256(sha)) => {
                ModuleSource::Stored(sha256_field("module_sha256", &sha)?)
            }
            None => {
                return Err(ApiError::invalid(
                    "source",
                    "give `module_size` or a `module_sha256`",
                ))
            }
        };
        let cache = super::result_cache::policy(start.cache)?;
        if start.stream_stdin && cache != v1::CachePolicy::Unspecified {
            return Err(ApiError::invalid(
                "cache",
                "streamed stdin cannot be part of the result cache's key: send stdin whole in \
                 `start.stdin`, or leave `cache` unset",
            ));
        }
        if start.interactive && !start.stream_stdin {
            return Err(ApiError::invalid(
                "interactive",
                "`interactive` needs `stream_stdin`: the person's input arrives as `stdin_chunk`s",
            ));
        }
        let stdin = if start.stream_stdin {
            StdinSpec::Streamed {
                max: tier.max_stdin_bytes,
                tier_name: name.to_string(),
                interactive: start.interactive.then(|| {
                    (
                        std::time::Duration::from_millis(limits.idle_timeout_ms),
                        std::time::Duration::from_millis(tier.max_session_ms),
                    )
                }),
            }
        } else {
            StdinSpec::Bytes(Bytes::from(start.stdin))
        };
        let fs = given_fs(start.fs, "fs", &limits, tier)?;
        Ok(Self {
            source,
            keep_module: start.keep_module,
            cmd,
            limits,
            seed: start.random_seed,
            stdin,
            expected: start.expected_stdout.map(Bytes::from),
            streams_fs: fs.is_some(),
            fs,
            pending: None,
            tier_name: name.to_string(),
            idle: std::time::Duration::from_millis(tier.upload_idle_timeout_ms),
            client: Some(client),
            receipt: start.receipt,
            cache,
            job: None,
        })
    }
}
