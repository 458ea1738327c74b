//! The plugin runtime: one wasmtime engine for every plugin, compiled components cached on
//! disk, and a fresh store per call with a deadline and a memory cap.
//!
//! Invariants:
//! - A plugin's contract version and imports are checked before it is compiled.
//! - Every call gets a new `Store` (nothing survives between calls), a deadline enforced by
//!   epoch interruption (a ticker thread advances the engine's epoch), and a memory cap
//!   enforced by a resource limiter; one instance, one table, a bounded number of memories.
//! - A trap, a deadline, a memory cap hit becomes a typed [`PluginError`] naming the plugin;
//!   the host goes on.
//! - The deadline holds in a blocking WASI wait too (Rust's `thread::sleep`, a `poll` on a clock),
//!   where epoch interruption does not reach: every clock subscription a plugin makes ends by
//!   the call's deadline at the latest (`limit_clock_waits`), and a call that asked to wait
//!   beyond it fails with the deadline even if it then answers in time. Clocks are the only
//!   pollables that can stay pending here (stdin is empty, stdout and stderr are sinks), so no
//!   wait outlives the deadline.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::cache::CompileCache;
use super::contract::{inspect, PluginInfo, PluginKind};
use super::digest::Sha256Digest;
use super::failure::{PluginError, PluginFailure};
use super::log::{bindings::wasmkafka::plugin::log as log_import, LogSink, PluginLog, TracingSink};
use super::quarantine::Quarantine;
use super::stats::{PluginStats, PluginStatsRegistry, PluginStatsSnapshot};

/// How often the epoch advances: the granularity of deadlines.
const TICK: Duration = Duration::from_millis(5);

/// Per-call limits.
#[derive(Debug, Clone)]
pub struct PluginLimits {
    /// Longest a single call may run.
    pub deadline: Duration,
    /// Most linear memory a plugin instance may hold.
    pub memory_bytes: usize,
    /// Largest plugin file accepted.
    pub max_file_bytes: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            deadline: Duration::from_secs(1),
            memory_bytes: 64 * 1024 * 1024,
            max_file_bytes: 32 * 1024 * 1024,
        }
    }
}

/// The per-call store state: an empty WASI context (no env, no args, no files, no network,
/// stdio discarded) and the memory limiter.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
    /// When this call's time is up.
    deadline: std::time::Instant,
    /// The plugin asked to wait on a clock beyond the deadline (the wait was cut short).
    waited_past_deadline: bool,
    /// Where its `log` import writes (contract 0.3.0).
    log: PluginLog,
}

impl log_import::Host for CallState {
    fn log(&mut self, level: log_import::Level, message: String, fields: Vec<(String, String)>) {
        self.log.write(level.into(), &message, &fields);
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Refuses memory beyond the cap, counted over every linear memory of the store together
/// (and remembers that it did, to name the failure); bounds tables the same way.
struct MemoryCap {
    limit: usize,
    hit: bool,
    /// Bytes of every memory together, as granted so far.
    memory_used: usize,
    /// Elements of every table together.
    table_elements: usize,
}

/// Table elements of one store, every table together.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

impl MemoryCap {
    fn new(limit: usize) -> MemoryCap {
        MemoryCap {
            limit,
            hit: false,
            memory_used: 0,
            table_elements: 0,
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_used - current.min(self.memory_used) + desired;
        if total > self.limit {
            self.hit = true;
            return Err(wasmtime::Error::msg("memory cap reached"));
        }
        self.memory_used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.table_elements - current.min(self.table_elements) + desired;
        if total > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
    }

    // One component instance per store. Its core instances are the guest's modules and the
    // WASI adapter's shims: a Rust plugin has a handful; a Python one (componentize-py:
    // libc, libpython and their bindings, sharing memories) a few dozen. Memory and table
    // space are bounded in total above, whatever the count.
    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

/// The shared engine and its epoch ticker.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<CallState>,
    limits: PluginLimits,
    cache: Option<CompileCache>,
    ticker_stop: Arc<AtomicBool>,
    stats: PluginStatsRegistry,
    /// Where plugins' log lines go (the host's log unless set).
    log_sink: std::sync::Mutex<Arc<dyn LogSink>>,
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Release);
    }
}

impl PluginRuntime {
    /// A runtime with these limits; compiled plugins are kept in `cache` when given.
    pub fn new(
        limits: PluginLimits,
        cache: Option<CompileCache>,
    ) -> Result<Arc<PluginRuntime>, String> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| format!("cannot start wasmtime: {e:#}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| format!("cannot link WASI: {e:#}"))?;
        limit_clock_waits(&mut linker).map_err(|e| format!("cannot link WASI clocks: {e:#}"))?;
        log_import::add_to_linker::<CallState, wasmtime::component::HasSelf<CallState>>(
            &mut linker,
            |state| state,
        )
        .map_err(|e| format!("cannot link the plugin log: {e:#}"))?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new()
                .name("wasmkafka-plugin-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| format!("cannot start the plugin epoch thread: {e}"))?;
        }
        Ok(Arc::new(PluginRuntime {
            engine,
            linker,
            limits,
            cache,
            ticker_stop,
            stats: PluginStatsRegistry::default(),
            log_sink: std::sync::Mutex::new(Arc::new(TracingSink)),
        }))
    }

    /// Each plugin file's calls, failures, quarantine skips and call times.
    pub fn plugin_stats(&self) -> BTreeMap<String, PluginStatsSnapshot> {
        self.stats.snapshot()
    }

    /// Sends the log lines of plugins loaded from now on to `sink` (e.g. `plugin test`,
    /// which prints them beside each case).
    pub fn set_log_sink(&self, sink: Arc<dyn LogSink>) {
        *self.log_sink.lock().expect("log sink lock") = sink;
    }

    fn log_sink(&self) -> Arc<dyn LogSink> {
        self.log_sink.lock().expect("log sink lock").clone()
    }

    pub fn linker(&self) -> &Linker<CallState> {
        &self.linker
    }

    /// Reads, checks and compiles (or loads from the cache) a plugin file; a `pin` refuses
    /// any file whose SHA-256 differs, before anything else is done with it.
    pub fn load(
        &self,
        path: &Path,
        pin: Option<Sha256Digest>,
    ) -> Result<(PluginInfo, Component), PluginError> {
        let plugin = path.display().to_string();
        let fail = |failure: PluginFailure| PluginError {
            plugin: plugin.clone(),
            failure,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| fail(PluginFailure::Read(e.into())))?
            .len() as usize;
        if size > self.limits.max_file_bytes {
            return Err(fail(PluginFailure::TooLarge {
                size,
                limit: self.limits.max_file_bytes,
            }));
        }
        let bytes = std::fs::read(path).map_err(|e| fail(PluginFailure::Read(e.into())))?;
        if let Some(pinned) = pin {
            let actual = Sha256Digest::of(&bytes);
            if actual != pinned {
                return Err(fail(PluginFailure::PinMismatch { pinned, actual }));
            }
        }
        let info = inspect(&bytes).map_err(|e| fail(e.into()))?;
        let component = self
            .compile(&bytes)
            .map_err(|e| fail(PluginFailure::Compile(e)))?;
        Ok((info, component))
    }

    /// [`PluginRuntime::load`], then checks the kind and links it once (`InstancePre`).
    /// Returns what the plugin is (its contract version decides which bindings call it).
    pub fn prepare(
        &self,
        path: &Path,
        pin: Option<Sha256Digest>,
        kind: PluginKind,
    ) -> Result<(PluginInfo, InstancePre<CallState>), PluginError> {
        let fail = |failure| PluginError {
            plugin: path.display().to_string(),
            failure,
        };
        let (info, component) = self.load(path, pin)?;
        if info.kind != kind {
            return Err(fail(PluginFailure::InvalidAnswer(format!(
                "it is {}, not {}",
                info.kind.described(),
                kind.described()
            ))));
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| fail(PluginFailure::Instantiate(format!("{e:#}"))))?;
        Ok((info, pre))
    }

    /// Compiles, through the disk cache when there is one (see [`super::cache`]).
    fn compile(&self, bytes: &[u8]) -> Result<Component, String> {
        match &self.cache {
            Some(cache) => cache.component(&self.engine, bytes),
            None => Component::new(&self.engine, bytes).map_err(|e| format!("{e:#}")),
        }
    }

    /// A fresh store for one call, with the memory cap and the deadline armed, and WASI with
    /// nothing behind it (`deny_all_wasi`); the plugin's
    /// log lines go to `log`.
    pub fn store(&self, log: PluginLog) -> Store<CallState> {
        let mut store = Store::new(
            &self.engine,
            CallState {
                wasi: deny_all_wasi(),
                table: ResourceTable::new(),
                limiter: MemoryCap::new(self.limits.memory_bytes),
                deadline: std::time::Instant::now() + self.limits.deadline,
                waited_past_deadline: false,
                log,
            },
        );
        store.limiter(|state| &mut state.limiter);
        let ticks = (self.limits.deadline.as_millis() / TICK.as_millis()).max(1) as u64 + 1;
        store.set_epoch_deadline(ticks);
        store
    }

    /// Names what an error from a call means.
    pub fn classify(&self, store: &Store<CallState>, error: &wasmtime::Error) -> PluginFailure {
        if store.data().limiter.hit {
            return PluginFailure::MemoryLimit(self.limits.memory_bytes);
        }
        if store.data().waited_past_deadline {
            return PluginFailure::Deadline(self.limits.deadline);
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => PluginFailure::Deadline(self.limits.deadline),
            Some(trap) => PluginFailure::Trap(trap.to_string()),
            None => PluginFailure::Trap(format!("{error:#}")),
        }
    }
}

/// How a loaded plugin is called: a fresh store per call, typed failures, quarantine.
pub struct PluginCaller {
    runtime: Arc<PluginRuntime>,
    plugin: String,
    /// The SHA-256 every version of the file must have (the config's `sha256`).
    pin: Option<Sha256Digest>,
    quarantine: Quarantine,
    stats: Arc<PluginStats>,
    log: PluginLog,
}

impl PluginCaller {
    pub fn new(runtime: Arc<PluginRuntime>, path: &Path) -> PluginCaller {
        let plugin = path.display().to_string();
        PluginCaller {
            stats: runtime.stats.for_plugin(&plugin),
            log: PluginLog::new(&plugin, runtime.log_sink()),
            runtime,
            plugin,
            pin: None,
            quarantine: Quarantine::default(),
        }
    }

    /// The plugin's log (its lines carry `name` once it is known).
    pub fn log(&self) -> &PluginLog {
        &self.log
    }

    /// The same caller, loading only files whose SHA-256 is `pin`.
    pub fn pinned(self, pin: Option<Sha256Digest>) -> PluginCaller {
        PluginCaller { pin, ..self }
    }

    pub fn pin(&self) -> Option<Sha256Digest> {
        self.pin
    }

    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    pub fn error(&self, failure: PluginFailure) -> PluginError {
        PluginError {
            plugin: self.plugin.clone(),
            failure,
        }
    }

    /// Instantiates in a fresh store and runs `f`; failures are typed, logged, counted, and
    /// may put the plugin in quarantine.
    pub fn call<I, R>(
        &self,
        instantiate: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<I>,
        f: impl FnOnce(&I, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        if let Err(failure) = self.quarantine.check() {
            self.stats.skipped();
            return Err(self.error(failure));
        }
        let started = std::time::Instant::now();
        let mut store = self.runtime.store(self.log.clone());
        let result = instantiate(&mut store)
            .map_err(|e| PluginFailure::Instantiate(format!("{e:#}")))
            .and_then(|instance| {
                f(&instance, &mut store).map_err(|e| self.runtime.classify(&store, &e))
            })
            .and_then(|value| {
                // It answered, but only because its wait was cut short at the deadline.
                if store.data().waited_past_deadline {
                    Err(PluginFailure::Deadline(self.runtime.limits.deadline))
                } else {
                    Ok(value)
                }
            });
        self.stats.called(
            started.elapsed(),
            result.is_err(),
            store.data().limiter.memory_used,
        );
        match result {
            Ok(value) => {
                self.quarantine.succeeded();
                Ok(value)
            }
            Err(failure) => {
                let failures = self.quarantine.failed();
                tracing::warn!(plugin = %self.plugin, %failure, failures, "plugin call failed");
                Err(self.error(failure))
            }
        }
    }
}

/// WASI with nothing behind it: no preopened directory, no environment, no arguments, stdio
/// discarded, no socket (every address refused, TCP, UDP and name lookups off). Said here
/// rather than left to the builder's defaults, so a change of defaults cannot open anything.
fn deny_all_wasi() -> WasiCtx {
    WasiCtx::builder()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .build()
}

/// The WASI clock version the host's bindings define; plugins importing any 0.2.x match it.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Replaces the monotonic clock's `subscribe-duration` and `subscribe-instant` with versions
/// that never wait past the call's deadline (see the module invariants): a longer wait is
/// shortened to the deadline and remembered, so the call fails with the deadline.
fn limit_clock_waits(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    use wasmtime::component::Resource;
    use wasmtime::StoreContextMut;
    use wasmtime_wasi::clocks::WasiClocksView;
    use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::Host as MonotonicClock;
    use wasmtime_wasi::p2::DynPollable;

    /// Subscribes for `nanos` from now, or until the deadline if that comes first.
    fn bounded(state: &mut CallState, nanos: u64) -> wasmtime::Result<(Resource<DynPollable>,)> {
        let left = state
            .deadline
            .saturating_duration_since(std::time::Instant::now())
            .as_nanos() as u64;
        let nanos = if nanos > left {
            state.waited_past_deadline = true;
            left
        } else {
            nanos
        };
        Ok((MonotonicClock::subscribe_duration(
            &mut state.clocks(),
            nanos,
        )?,))
    }

    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store: StoreContextMut<'_, CallState>, (nanos,): (u64,)| {
            bounded(store.data_mut(), nanos)
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut store: StoreContextMut<'_, CallState>, (when,): (u64,)| {
            let state = store.data_mut();
            let now = MonotonicClock::now(&mut state.clocks())?;
            bounded(state, when.saturating_sub(now))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
