//! ModuleService: content-addressed module storage per account, within the
//! tier's upload budget and storage quota.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tonic::{Request, Response, Status, Streaming};
use wasmwiz_proto::v1::{self, module_service_server::ModuleService, upload_module_request::Msg};

use super::{
    convert::{check_size, sha256_field},
    errors::ApiError,
    upload::{next_within, ChunkBuffer},
    AppState,
};
use crate::{
    auth::Caller,
    config::Tier,
    engine::CompiledModule,
    store::{ModuleCounts, ModuleRow, PutModule, StorageQuota},
};

/// Modules per `ListModules` page: default and maximum, and the maximum
/// with `include_details` (each detailed entry may carry 100k exports).
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;
const MAX_DETAILED_PAGE: u32 = 20;

pub struct ModuleApi {
    pub state: Arc<AppState>,
}

/// Unix milliseconds as a protobuf timestamp.
pub fn proto_timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// The tier's storage quota.
pub fn storage_quota(tier: &Tier) -> StorageQuota {
    StorageQuota {
        max_bytes: tier.max_stored_bytes,
        max_modules: tier.max_stored_modules,
    }
}

fn counts_of(module: &CompiledModule) -> ModuleCounts {
    ModuleCounts {
        imports: module.imports.len() as u32,
        exports: module.exports.len() as u32,
    }
}

/// Everything about a module, import and export lists included.
fn info(module: &CompiledModule, already_existed: bool, created_at: i64) -> v1::ModuleInfo {
    let counts = counts_of(module);
    v1::ModuleInfo {
        sha256: module.sha256.clone(),
        size: module.size,
        already_existed,
        imports: module
            .imports
            .iter()
            .map(|i| v1::ModuleImport {
                module: i.module.clone(),
                name: i.name.clone(),
                kind: i.kind.into(),
            })
            .collect(),
        exports: module
            .exports
            .iter()
            .map(|e| v1::ModuleExport {
                name: e.name.clone(),
                kind: e.kind.into(),
            })
            .collect(),
        created_at: Some(proto_timestamp(created_at)),
        import_count: Some(counts.imports),
        export_count: Some(counts.exports),
    }
}

/// A listing entry: what the store row says, counts without the lists.
fn summary(row: &ModuleRow, cached: Option<&CompiledModule>) -> v1::ModuleInfo {
    let counts = row.counts.or_else(|| cached.map(counts_of));
    v1::ModuleInfo {
        sha256: row.sha256.clone(),
        size: row.size,
        already_existed: true,
        created_at: Some(proto_timestamp(row.created_at)),
        import_count: counts.map(|c| c.imports),
        export_count: counts.map(|c| c.exports),
        ..Default::default()
    }
}

impl AppState {
    /// Stores a compiled module's bytes for the caller within their
    /// storage quota (RESOURCE_EXHAUSTED past it).
    pub async fn keep_module(
        &self,
        caller: &Caller,
        module: &CompiledModule,
        bytes: &[u8],
    ) -> Result<PutModule, ApiError> {
        let quota = storage_quota(self.tier(caller)?);
        let put = self
            .store
            .put_module(
                &caller.user_id,
                &module.sha256,
                bytes,
                counts_of(module),
                quota,
            )
            .await?
            .map_err(|over| {
                crate::audit::limit_refused(caller, "storage");
                ApiError::StorageQuota(over)
            })?;
        self.note_ownership(&caller.user_id, &module.sha256);
        Ok(put)
    }
}

impl ModuleApi {
    /// Validates, verifies the optional sha256, stores, caches.
    async fn store(
        &self,
        caller: &Caller,
        bytes: Bytes,
        claimed: Option<String>,
    ) -> Result<v1::ModuleInfo, ApiError> {
        let claimed = claimed.map(|s| sha256_field("sha256", &s)).transpose()?;
        let resolved = self
            .state
            .module_from_bytes(caller, bytes.clone(), false)
            .await?;
        if let Some(claimed) = claimed {
            if claimed != resolved.module.sha256 {
                return Err(ApiError::invalid(
                    "sha256",
                    format!(
                        "the uploaded bytes hash to {}, not {claimed}",
                        resolved.module.sha256
                    ),
                ));
            }
        }
        let put = self
            .state
            .keep_module(caller, &resolved.module, &bytes)
            .await?;
        Ok(info(&resolved.module, put.already_existed, put.created_at))
    }

    /// Refuses an announced upload that cannot fit the quota before any of
    /// it is received (the store checks again, atomically, when storing).
    /// A module the account already has (named by `sha256`) always fits.
    async fn precheck_quota(
        &self,
        caller: &Caller,
        tier: &Tier,
        start: &v1::UploadStart,
    ) -> Result<(), ApiError> {
        let quota = storage_quota(tier);
        if quota == StorageQuota::UNLIMITED {
            return Ok(());
        }
        if let Some(sha256) = start.sha256.as_deref() {
            let sha256 = sha256_field("sha256", sha256)?;
            if self
                .state
                .store
                .module_info(&caller.user_id, &sha256)
                .await?
                .is_some()
            {
                return Ok(());
            }
        }
        let used = self.state.store.storage_usage(&caller.user_id).await?;
        quota.admits(used, start.size).map_err(|over| {
            crate::audit::limit_refused(caller, "storage");
            ApiError::StorageQuota(over)
        })
    }
}

#[tonic::async_trait]
impl ModuleService for ModuleApi {
    async fn upload_module(
        &self,
        request: Request<Streaming<v1::UploadModuleRequest>>,
    ) -> Result<Response<v1::ModuleInfo>, Status> {
        let caller = self.state.caller(&request).await?;
        let tier = self.state.tier(&caller)?.clone();
        let _upload = self
            .state
            .limits
            .admit_upload(&caller.user_id, &caller.tier, &tier)
            .await
            .map_err(ApiError::from)?;
        let idle = Duration::from_millis(tier.upload_idle_timeout_ms);
        let mut incoming = request.into_inner();
        let start = match next_within(&mut incoming, idle).await? {
            Some(v1::UploadModuleRequest {
                msg: Some(Msg::Start(start)),
            }) => start,
            _ => {
                return Err(ApiError::invalid("start", "the first message must be `start`").into())
            }
        };
        check_size("size", start.size, tier.max_module_bytes, &caller.tier)?;
        self.precheck_quota(&caller, &tier, &start).await?;
        let mut module = ChunkBuffer::new(start.size);
        while let Some(message) = next_within(&mut incoming, idle).await? {
            match message.msg {
                Some(Msg::Chunk(chunk)) => {
                    module.push(&chunk, "chunk")?;
                    self.state.metrics.uploaded_bytes.inc_by(chunk.len() as u64);
                }
                _ => {
                    return Err(
                        ApiError::invalid("start", "`start` may only be the first message").into(),
                    )
                }
            }
        }
        let module = module.finish("size")?;
        let info = self.store(&caller, module, start.sha256).await?;
        Ok(self.state.respond(&caller, info))
    }

    async fn put_module(
        &self,
        request: Request<v1::PutModuleRequest>,
    ) -> Result<Response<v1::ModuleInfo>, Status> {
        let caller = self.state.caller(&request).await?;
        let tier = self.state.tier(&caller)?.clone();
        let _upload = self
            .state
            .limits
            .admit_upload(&caller.user_id, &caller.tier, &tier)
            .await
            .map_err(ApiError::from)?;
        let req = request.into_inner();
        check_size(
            "module",
            req.module.len() as u64,
            tier.max_module_bytes,
            &caller.tier,
        )?;
        self.state
            .metrics
            .uploaded_bytes
            .inc_by(req.module.len() as u64);
        let info = self
            .store(&caller, Bytes::from(req.module), req.sha256)
            .await?;
        Ok(self.state.respond(&caller, info))
    }

    async fn get_module(
        &self,
        request: Request<v1::GetModuleRequest>,
    ) -> Result<Response<v1::ModuleInfo>, Status> {
        let caller = self.state.caller(&request).await?;
        let sha256 = sha256_field("sha256", &request.get_ref().sha256)?;
        let row = self
            .state
            .store
            .module_info(&caller.user_id, &sha256)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound {
                resource_type: "module",
                name: sha256.clone(),
            })?;
        let resolved = self.state.module_by_sha(&caller, &sha256).await?;
        if row.counts.is_none() {
            // Stored before counts were kept: record them now that the
            // module is compiled, so listings show them from then on.
            self.state
                .store
                .set_module_counts(&sha256, counts_of(&resolved.module))
                .await
                .map_err(ApiError::from)?;
        }
        Ok(self
            .state
            .respond(&caller, info(&resolved.module, true, row.created_at)))
    }

    async fn list_modules(
        &self,
        request: Request<v1::ListModulesRequest>,
    ) -> Result<Response<v1::ListModulesResponse>, Status> {
        let caller = self.state.caller(&request).await?;
        let req = request.into_inner();
        let max_page = if req.include_details {
            MAX_DETAILED_PAGE
        } else {
            MAX_PAGE
        };
        let page_size = match req.page_size {
            0 => DEFAULT_PAGE.min(max_page),
            n => n.min(max_page),
        };
        let after = if req.page_token.is_empty() {
            None
        } else {
            let (time, sha) = req
                .page_token
                .split_once(':')
                .and_then(|(t, s)| Some((t.parse::<i64>().ok()?, s.to_string())))
                .ok_or_else(|| {
                    ApiError::invalid("page_token", "not a token from a previous page")
                })?;
            Some((time, sha))
        };
        let rows = self
            .state
            .store
            .list_modules(&caller.user_id, page_size + 1, after)
            .await
            .map_err(ApiError::from)?;
        let more = rows.len() > page_size as usize;
        let rows = &rows[..rows.len().min(page_size as usize)];
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => format!("{}:{}", last.created_at, last.sha256),
            _ => String::new(),
        };
        let mut modules = Vec::with_capacity(rows.len());
        for row in rows {
            modules.push(if req.include_details {
                let resolved = self.state.module_by_sha(&caller, &row.sha256).await?;
                info(&resolved.module, true, row.created_at)
            } else {
                summary(row, self.state.sandbox.cached(&row.sha256).as_deref())
            });
        }
        Ok(self.state.respond(
            &caller,
            v1::ListModulesResponse {
                modules,
                next_page_token,
            },
        ))
    }

    async fn delete_module(
        &self,
        request: Request<v1::DeleteModuleRequest>,
    ) -> Result<Response<v1::DeleteModuleResponse>, Status> {
        let caller = self.state.caller(&request).await?;
        let sha256 = sha256_field("sha256", &request.get_ref().sha256)?;
        let removed = self
            .state
            .store
            .delete_module(&caller.user_id, &sha256)
            .await
            .map_err(ApiError::from)?;
        self.state.forget_ownership(&caller.user_id, &sha256);
        if !removed {
            return Err(ApiError::NotFound {
                resource_type: "module",
                name: sha256,
            }
            .into());
        }
        Ok(self.state.respond(&caller, v1::DeleteModuleResponse {}))
    }
}
