//! ServerService: what this server is — its version, its engine, and the
//! public keys that verify its receipts. Needs no API key (a verifier may
//! have none), so it is routed as an anonymous service with the small
//! anonymous message cap.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use wasmwiz_proto::v1::{self, server_service_server::ServerService};

use super::AppState;

/// The gRPC face of the server's identity.
pub struct ServerInfoApi {
    pub state: Arc<AppState>,
}

#[tonic::async_trait]
impl ServerService for ServerInfoApi {
    async fn get_server_info(
        &self,
        _request: Request<v1::GetServerInfoRequest>,
    ) -> Result<Response<v1::GetServerInfoResponse>, Status> {
        Ok(Response::new(v1::GetServerInfoResponse {
            server_version: env!("CARGO_PKG_VERSION").to_string(),
            engine: Some(self.state.config.engine_identity.to_proto()),
            receipt_keys: self.state.receipt_keys.listed(),
        }))
    }
}
