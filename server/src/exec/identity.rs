//! The engine's identity: what, besides the request, determines a result.
//! It goes into every inputs digest (so an engine upgrade never serves a
//! cached answer of the old engine) and into every receipt (so a verifier
//! knows which engine produced the output).

use serde::{Deserialize, Serialize};
use wasmwiz_proto::v1;

/// The wasmi version the server is built with (checked against Cargo.lock
/// by a test, so an upgrade cannot forget it).
pub const WASMI_VERSION: &str = "2.0.0";

/// Version of the fuel cost model: `engine/host_fuel.rs`'s table and the
/// slicing rules. Bump it with any change that can change `fuel_consumed`.
pub const FUEL_COST_MODEL: &str = "wasmwiz-fuel-1";

/// Version of the WASI preview1 implementation: virtual clocks, the seeded
/// PRNG, the in-memory filesystem. Bump it with any change a guest can see.
pub const WASI_VERSION: &str = "wasmwiz-wasi-preview1-2";

/// One engine's identity (tests inject another through
/// `Config::engine_identity` to see a change invalidate cached results).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineIdentity {
    pub wasmi_version: String,
    pub fuel_cost_model: String,
    pub wasi_version: String,
}

impl Default for EngineIdentity {
    /// This build's engine.
    fn default() -> Self {
        Self {
            wasmi_version: WASMI_VERSION.into(),
            fuel_cost_model: FUEL_COST_MODEL.into(),
            wasi_version: WASI_VERSION.into(),
        }
    }
}

impl EngineIdentity {
    pub fn to_proto(&self) -> v1::EngineIdentity {
        v1::EngineIdentity {
            wasmi_version: self.wasmi_version.clone(),
            fuel_cost_model: self.fuel_cost_model.clone(),
            wasi_version: self.wasi_version.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wasmi_version_is_the_one_cargo_lock_builds() {
        let lock = include_str!("../../../Cargo.lock");
        let locked = lock
            .split("[[package]]")
            .find(|package| package.contains("\nname = \"wasmi\"\n"))
            .and_then(|package| {
                package
                    .lines()
                    .find_map(|line| line.strip_prefix("version = \""))
                    .map(|rest| rest.trim_end_matches('"'))
            })
            .expect("wasmi in Cargo.lock");
        assert_eq!(locked, WASMI_VERSION);
    }
}
