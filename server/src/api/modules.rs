//! ModuleService: content-addressed module storage per account.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tonic::{Request, Response, Status, Streaming};
use wasmwiz_proto::v1::{self, module_service_server::ModuleService, upload_module_request::Msg};

use super::{
    convert::{check_size, sha256_field},
    errors::ApiError,
    AppState,
};
use crate::{auth::Caller, engine::CompiledModule};

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

fn info(module: &CompiledModule, already_existed: bool, created_at: i64) -> v1::ModuleInfo {
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
            .store
            .put_module(&caller.user_id, &resolved.module.sha256, &bytes)
            .await?;
        Ok(info(&resolved.module, put.already_existed, put.created_at))
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
        let mut incoming = request.into_inner();
        let start = match incoming.message().await? {
            Some(v1::UploadModuleRequest {
                msg: Some(Msg::Start(start)),
            }) => start,
            _ => {
                return Err(ApiError::invalid("start", "the first message must be `start`").into())
            }
        };
        check_size("size", start.size, tier.max_module_bytes)?;
        let mut module = BytesMut::with_capacity(start.size.min(64 << 20) as usize);
        while let Some(message) = incoming.message().await? {
            match message.msg {
                Some(Msg::Chunk(chunk)) => {
                    let total = module.len() as u64 + chunk.len() as u64;
                    if total > start.size {
                        return Err(ApiError::invalid(
                            "chunk",
                            format!(
                                "received more than the announced size of {} bytes",
                                start.size
                            ),
                        )
                        .into());
                    }
                    module.extend_from_slice(&chunk);
                    self.state.metrics.uploaded_bytes.inc_by(chunk.len() as u64);
                }
                _ => {
                    return Err(
                        ApiError::invalid("start", "`start` may only be the first message").into(),
                    )
                }
            }
        }
        if module.len() as u64 != start.size {
            return Err(ApiError::invalid(
                "size",
                format!(
                    "announced {} bytes but received {}",
                    start.size,
                    module.len()
                ),
            )
            .into());
        }
        let info = self.store(&caller, module.freeze(), start.sha256).await?;
        Ok(self.state.respond(&caller, info))
    }

    async fn put_module(
        &self,
        request: Request<v1::PutModuleRequest>,
    ) -> Result<Response<v1::ModuleInfo>, Status> {
        let caller = self.state.caller(&request).await?;
        let tier = self.state.tier(&caller)?.clone();
        let req = request.into_inner();
        check_size("module", req.module.len() as u64, tier.max_module_bytes)?;
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
        let page_size = match req.page_size {
            0 => 100,
            n => n.min(1000),
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
        let modules = rows
            .iter()
            .map(|row| match self.state.sandbox.cached(&row.sha256) {
                Some(module) => info(&module, true, row.created_at),
                None => v1::ModuleInfo {
                    sha256: row.sha256.clone(),
                    size: row.size,
                    already_existed: true,
                    created_at: Some(proto_timestamp(row.created_at)),
                    ..Default::default()
                },
            })
            .collect();
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
