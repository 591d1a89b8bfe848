//! Turning bytes into a runnable module: validation, the WASI-only import
//! rule, the `_start` rule, and the compiled-module cache.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::shape::ModuleShape;
use wasmi::{ExternType, Module};

/// Bytes per WebAssembly page.
const WASM_PAGE_BYTES: u64 = 64 * 1024;

/// WASI preview1, the only import namespace a guest may use.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// Why a module was refused (all map to INVALID_ARGUMENT on field `module`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    #[error("not a WebAssembly binary module (it does not start with the \\0asm magic)")]
    NotWasm,
    #[error("invalid WebAssembly module: {0}")]
    Invalid(String),
    #[error("the module does not export a `_start` function (only WASI command modules can run)")]
    MissingStart,
    #[error("`_start` must take no parameters and return nothing, found {0}")]
    BadStartSignature(String),
    #[error("import `{module}::{name}` is outside `wasi_snapshot_preview1` (only WASI preview1 imports are allowed)")]
    ForeignImport { module: String, name: String },
    #[error("import `wasi_snapshot_preview1::{name}` is not a WASI preview1 function or has the wrong type")]
    UnknownWasiImport { name: String },
}

/// A validated, compiled module with what clients may want to know of it.
pub struct CompiledModule {
    pub sha256: String,
    pub size: u64,
    pub module: Module,
    pub imports: Vec<ImportDesc>,
    pub exports: Vec<ExportDesc>,
    /// What instantiating and keeping it costs, from its sections.
    pub shape: ModuleShape,
    /// The most linear memory the module can ever have: its exported
    /// memory's declared maximum (`None` when it declares none, or its
    /// memory is not exported). Admission charges no more than this.
    pub max_memory_bytes: Option<u64>,
}

impl CompiledModule {
    /// True when instantiation may run on an async runtime thread.
    pub fn instantiates_inline(&self) -> bool {
        self.shape.instantiates_inline()
    }

    /// Estimated memory held by the compiled module (what the cache weighs).
    pub fn weight(&self) -> u64 {
        self.shape.compiled_bytes(self.size)
    }
}

/// One import, for `ModuleInfo.imports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportDesc {
    pub module: String,
    pub name: String,
    pub kind: &'static str,
}

/// One export, for `ModuleInfo.exports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportDesc {
    pub name: String,
    pub kind: &'static str,
}

/// Lowercase hex sha256, the identity of a module everywhere.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn kind_of(ty: &ExternType) -> &'static str {
    match ty {
        ExternType::Func(_) => "func",
        ExternType::Table(_) => "table",
        ExternType::Memory(_) => "memory",
        ExternType::Global(_) => "global",
    }
}

/// Validates and compiles `bytes`; `check_wasi` checks that every
/// `wasi_snapshot_preview1` import exists with a compatible type.
pub fn compile(
    engine: &wasmi::Engine,
    bytes: &[u8],
    check_wasi: impl FnOnce(&Module) -> Result<(), ModuleError>,
) -> Result<CompiledModule, ModuleError> {
    if !bytes.starts_with(b"\0asm") {
        return Err(ModuleError::NotWasm);
    }
    let module =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Module::new(engine, bytes)))
            .map_err(|_| {
                ModuleError::Invalid("the interpreter could not compile this module".into())
            })?
            .map_err(|e| ModuleError::Invalid(describe(&e)))?;
    let mut imports = Vec::new();
    for import in module.imports() {
        let ty = import.ty();
        if import.module() != WASI_MODULE {
            return Err(ModuleError::ForeignImport {
                module: import.module().to_string(),
                name: import.name().to_string(),
            });
        }
        imports.push(ImportDesc {
            module: import.module().to_string(),
            name: import.name().to_string(),
            kind: kind_of(ty),
        });
    }
    check_wasi(&module)?;
    let exports: Vec<ExportDesc> = module
        .exports()
        .map(|e| ExportDesc {
            name: e.name().to_string(),
            kind: kind_of(e.ty()),
        })
        .collect();
    match module
        .exports()
        .find(|e| e.name() == "_start")
        .map(|e| e.ty().clone())
    {
        None => return Err(ModuleError::MissingStart),
        Some(ExternType::Func(f)) if f.params().is_empty() && f.results().is_empty() => {}
        Some(ExternType::Func(f)) => {
            return Err(ModuleError::BadStartSignature(format!(
                "{:?} -> {:?}",
                f.params(),
                f.results()
            )))
        }
        Some(other) => {
            return Err(ModuleError::BadStartSignature(format!(
                "a {} export",
                kind_of(&other)
            )))
        }
    }
    // A guest has at most one memory (the run's limiter refuses more), so
    // an exported memory's maximum bounds everything it can allocate.
    let max_memory_bytes = module.exports().find_map(|e| match e.ty() {
        ExternType::Memory(memory) => memory
            .maximum()
            .map(|pages| pages.saturating_mul(WASM_PAGE_BYTES)),
        _ => None,
    });
    Ok(CompiledModule {
        sha256: sha256_hex(bytes),
        size: bytes.len() as u64,
        module,
        imports,
        exports,
        shape: ModuleShape::of(bytes),
        max_memory_bytes,
    })
}

/// wasmi's message, with the proposal named when validation needs one wasmi
/// does not enable (wasmparser says e.g. "exceptions support is not enabled").
fn describe(error: &wasmi::Error) -> String {
    let text = error.to_string();
    let text = text.trim();
    if text.contains("support is not enabled") || text.contains("proposal not enabled") {
        format!("{text} (the module needs a WebAssembly proposal this server does not run)")
    } else {
        text.to_string()
    }
}

/// Compiled modules by sha256, weighed by their estimated memory (a module
/// of 100k tiny exports holds far more than its bytes).
#[derive(Clone)]
pub struct ModuleCache(moka::sync::Cache<String, Arc<CompiledModule>>);

impl ModuleCache {
    /// A cache holding at most `budget_bytes` of compiled modules.
    pub fn new(budget_bytes: u64) -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(budget_bytes)
                .weigher(|_k: &String, v: &Arc<CompiledModule>| {
                    u32::try_from(v.weight()).unwrap_or(u32::MAX)
                })
                .build(),
        )
    }

    pub fn get(&self, sha256: &str) -> Option<Arc<CompiledModule>> {
        self.0.get(sha256)
    }

    pub fn insert(&self, module: Arc<CompiledModule>) {
        self.0.insert(module.sha256.clone(), module);
    }

    pub fn remove(&self, sha256: &str) {
        self.0.invalidate(sha256);
    }

    /// (entries, weighted bytes) for metrics.
    pub fn usage(&self) -> (u64, u64) {
        self.0.run_pending_tasks();
        (self.0.entry_count(), self.0.weighted_size())
    }
}
