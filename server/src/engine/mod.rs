//! The sandbox: runs untrusted WASI preview1 command modules on wasmi,
//! deterministically and within limits, streaming their output.
//!
//! # Layout
//! - [`compile`]: validation (WASI-only imports, `_start`), compiled-module cache.
//! - [`wasi`]: the guest's world: virtual clocks, seeded RNG, no sockets.
//! - [`vfs`]: the per-execution in-memory filesystem (only when asked for).
//! - [`io`]: non-blocking stdout/stderr and stdin buffers shared with the driver.
//! - [`run`]: one execution as a resumable state machine over fuel slices.
//! - [`host_calls`], [`host_fuel`]: every WASI import, charging fuel for its work.
//! - [`shape`]: what a module costs to instantiate and to keep compiled.
//! - [`driver`]: the async loop around it: output, stdin, deadline, cancellation.
//! - [`pool`], [`admission`]: where slices run, and how many executions may.
//!
//! # Compilation mode
//! Modules are validated eagerly (invalid modules are refused before they
//! can run) and translated lazily, so a 28 MB module starts in a fraction of
//! the eager time. Lazy translation normally charges fuel for translating a
//! function on first use, which would make a cold run cost more than a cached
//! one; translation and validation fuel are set to 0 so `fuel_consumed` is
//! the same cold, cached, or on a fresh engine.

pub mod admission;
pub mod compile;
pub mod driver;
pub mod host_calls;
pub mod host_fuel;
pub mod io;
pub mod outcome;
pub mod pool;
pub mod run;
pub mod shape;
pub mod trace;
pub mod vfs;
pub mod wasi;

use std::{sync::Arc, time::Duration};

use wasmi::{CompilationMode, Config, CustomFuelCosts, Engine, ExternType, Linker};

pub use self::{
    admission::{Admission, AdmissionLimits, Busy, Permit},
    compile::{sha256_hex, CompiledModule, ModuleCache, ModuleError},
    driver::{Job, StdinSource},
    io::{OutputChunk, Stream},
    outcome::{Outcome, Report},
    shape::ModuleShape,
    trace::ThreadTrace,
};
use self::{pool::WorkerPool, run::HostState};

/// Sandbox-wide settings (the per-execution limits come with each job).
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Estimated bytes of compiled modules the cache may hold.
    pub module_cache_bytes: u64,
    /// Worker threads running guest slices (default: the number of cores).
    pub workers: usize,
    /// Executions admitted at once, server-wide.
    pub max_running: usize,
    /// Sum of admitted executions' memory limits, server-wide.
    pub memory_budget_bytes: u64,
    /// Executions that may wait for admission before callers get "busy".
    pub max_queue: usize,
    /// How long one may wait for admission.
    pub max_queue_wait: Duration,
    /// Percent of `memory_budget_bytes` one tenant may hold at once.
    pub tenant_memory_share_percent: u32,
    /// Percent of `max_running` one tenant may hold at once.
    pub tenant_running_share_percent: u32,
    /// Fuel of the first slice, run inline on the async thread (short, so
    /// tiny programs finish without a thread hop; host calls on it may not
    /// overdraw, so it bounds host work too).
    pub inline_slice_fuel: u64,
    /// Fuel per slice on a worker; bounds how late a timeout or cancel lands.
    /// Also the most a start section may use (it cannot be paused).
    pub slice_fuel: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            module_cache_bytes: 512 * 1024 * 1024,
            workers: cores,
            max_running: 64,
            memory_budget_bytes: 8 * 1024 * 1024 * 1024,
            max_queue: 256,
            max_queue_wait: Duration::from_secs(10),
            tenant_memory_share_percent: 25,
            tenant_running_share_percent: 25,
            inline_slice_fuel: 50_000,
            slice_fuel: 20_000_000,
        }
    }
}

/// The shared engine, linker, cache, worker pool and admission control.
pub struct Sandbox {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    cache: ModuleCache,
    pool: WorkerPool,
    admission: Admission,
    config: SandboxConfig,
}

/// Builds the wasmi engine configuration every module is compiled with.
pub fn engine_config() -> Config {
    let mut config = Config::default();
    config
        .consume_fuel(true)
        .compilation_mode(CompilationMode::LazyTranslation)
        .fuel_cost(CustomFuelCosts {
            // One fuel per 16 bytes, as host calls pay for copies: bounds a
            // 50k-fuel inline slice to 800 KB of memory.fill.
            bytes_copied_per_fuel: 16,
            fuel_per_bytes_translated: 0,
            fuel_per_bytes_validated: 0,
        });
    config
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> anyhow::Result<Self> {
        let engine = Engine::new(&engine_config());
        let mut linker = Linker::new(&engine);
        run::link_wasi(&mut linker)?;
        Ok(Self {
            cache: ModuleCache::new(config.module_cache_bytes),
            pool: WorkerPool::new(config.workers),
            admission: Admission::new(AdmissionLimits {
                max_running: config.max_running,
                memory_budget_bytes: config.memory_budget_bytes,
                max_queue: config.max_queue,
                max_wait: config.max_queue_wait,
                tenant_memory_share_percent: config.tenant_memory_share_percent,
                tenant_running_share_percent: config.tenant_running_share_percent,
            }),
            linker: Arc::new(linker),
            engine,
            config,
        })
    }

    /// Validates and compiles (CPU-bound: call from a blocking context for
    /// large modules). Does not touch the cache.
    pub fn compile(&self, bytes: &[u8]) -> Result<Arc<CompiledModule>, ModuleError> {
        compile::compile(&self.engine, bytes, |module| {
            self.check_wasi_imports(module)
        })
        .map(Arc::new)
    }

    /// Every import must be a WASI preview1 function we define, with its type.
    fn check_wasi_imports(&self, module: &wasmi::Module) -> Result<(), ModuleError> {
        let mut store = wasmi::Store::new(&self.engine, run::placeholder_host_state());
        let mut externals = Vec::new();
        let linked = wasmi_wasi::add_to_externals(
            &mut store,
            module,
            &mut externals,
            |s: &mut HostState| &mut s.wasi,
        );
        if linked.is_err() {
            // It links imports in order and stops at the first it does not
            // define, so that one is the import after the last it linked.
            // (Its error type keeps the name private.)
            let name = module
                .imports()
                .nth(externals.len())
                .map(|import| import.name().to_string())
                .unwrap_or_default();
            return Err(ModuleError::UnknownWasiImport { name });
        }
        for (import, external) in module.imports().zip(&externals) {
            let compatible = match (external.ty(&store), import.ty()) {
                (ExternType::Func(have), ExternType::Func(want)) => have == *want,
                _ => false,
            };
            if !compatible {
                return Err(ModuleError::UnknownWasiImport {
                    name: import.name().to_string(),
                });
            }
        }
        Ok(())
    }

    /// The compiled module for `sha256` if cached.
    pub fn cached(&self, sha256: &str) -> Option<Arc<CompiledModule>> {
        self.cache.get(sha256)
    }

    /// Puts a compiled module in the cache.
    pub fn cache_insert(&self, module: Arc<CompiledModule>) {
        self.cache.insert(module);
    }

    /// Forgets a cached module.
    pub fn cache_remove(&self, sha256: &str) {
        self.cache.remove(sha256);
    }

    /// (entries, bytes) in the compiled-module cache.
    pub fn cache_usage(&self) -> (u64, u64) {
        self.cache.usage()
    }

    /// Waits (boundedly) for an execution slot and memory for `tenant`'s
    /// run of `module` under `memory_limit`, with an in-memory filesystem
    /// of at most `fs_bytes` (0 without one). The charge is what the guest
    /// can actually use: its linear memory (the limit, or the module's
    /// declared maximum memory when that is smaller) plus the file
    /// contents its tree may hold, which live in the server's memory too.
    /// `tenant` is `None` for the operator's trusted (unmetered) tiers,
    /// which have no per-tenant share.
    pub async fn admit(
        &self,
        tenant: Option<&str>,
        module: &CompiledModule,
        memory_limit: u64,
        fs_bytes: u64,
    ) -> Result<Permit, Busy> {
        let linear = module
            .max_memory_bytes
            .map_or(memory_limit, |max| max.min(memory_limit));
        let usable = linear.saturating_add(fs_bytes);
        match tenant {
            Some(tenant) => self.admission.admit(tenant, usable).await,
            None => self.admission.admit_trusted(usable).await,
        }
    }

    /// Executions waiting for admission.
    pub fn queue_depth(&self) -> usize {
        self.admission.queue_depth()
    }

    /// Memory charged to running executions now (for `/metrics`).
    pub fn memory_admitted_bytes(&self) -> u64 {
        self.admission.memory_admitted_bytes()
    }

    /// Memory all running executions may be charged together.
    pub fn memory_budget_bytes(&self) -> u64 {
        self.admission.memory_budget_bytes()
    }
}
