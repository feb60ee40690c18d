//! A running plugin instance: one store, reused across batches, re-created after a failure.
//! Every call runs under the transform's limits: epoch deadline, fuel, memory cap, output cap.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sluice_core::record::Record;
use sluice_core::transform::{
    Outcome, Transform, TransformError, TransformErrorKind, TransformLimits,
};
use wasmtime::{ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

use crate::bindings::sluice::transform::host::{self, Level};
use crate::loader::Plugin;
use crate::{engine, wire};

/// How much a plugin may write to standard error within one instance's life. Standard error is
/// captured for error reports (panic messages); plugins should log through the `log` import.
const STDERR_CAPACITY: usize = 1024 * 1024;

/// Past this much captured standard error, the instance is recycled after a successful call
/// (a fresh one starts with an empty buffer), so chatty plugins never fill the capacity.
const STDERR_RECYCLE: usize = 64 * 1024;

/// How much of standard error goes into an error message (the end of it).
const STDERR_IN_ERRORS: usize = 2048;

/// Per-store host state.
pub(crate) struct HostState {
    name: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    /// Set when a memory or table growth was refused by the cap.
    memory_denied: bool,
    stderr: MemoryOutputPipe,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = self.limits.memory_growing(current, desired, maximum)?;
        self.memory_denied |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = self.limits.table_growing(current, desired, maximum)?;
        self.memory_denied |= !ok;
        Ok(ok)
    }
}

impl host::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let plugin = &*self.name;
        match level {
            Level::Trace => tracing::trace!(target: "sluice::plugin", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "sluice::plugin", plugin, "{message}"),
            Level::Info => tracing::info!(target: "sluice::plugin", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "sluice::plugin", plugin, "{message}"),
            Level::Error => tracing::error!(target: "sluice::plugin", plugin, "{message}"),
        }
    }
}

/// A clock frozen at zero: plugins get no time source unless the host hands one over.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// A fixed, predictable generator standing in for randomness: plugins get no entropy unless
/// the host hands it over (ordinary std code that asks for random bytes keeps working).
struct NoEntropy(u64);

impl rand_core::TryRng for NoEntropy {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.try_next_u64()? as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        // SplitMix64 from a fixed seed: deterministic, but not a constant.
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Ok(z ^ (z >> 31))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

fn sandbox(stderr: MemoryOutputPipe) -> WasiCtx {
    // No preopened directories, environment, arguments, network or name lookup; clocks frozen
    // at zero; randomness replaced by a fixed sequence. Standard error is captured for reports.
    WasiCtx::builder()
        .stderr(stderr)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
        .secure_random(NoEntropy(1))
        .insecure_random(NoEntropy(2))
        .insecure_random_seed(0)
        .build()
}

struct Live {
    store: Store<HostState>,
    bindings: crate::bindings::Transform,
}

/// A loaded, initialized plugin: implements the core [`Transform`] contract.
pub struct WasmTransform {
    name: String,
    plugin: Arc<Plugin>,
    config: String,
    limits: TransformLimits,
    deadline_ticks: u64,
    live: Option<Live>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for WasmTransform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmTransform")
            .field("name", &self.name)
            .field("plugin", &self.plugin)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl WasmTransform {
    /// Instantiate `plugin` and call its `init` with `with` (JSON). A rejected config is an
    /// [`TransformErrorKind::Init`] error carrying the plugin's message.
    pub fn new(
        name: String,
        plugin: Arc<Plugin>,
        with: &serde_json::Value,
        limits: TransformLimits,
    ) -> Result<Self, TransformError> {
        let mut this = Self {
            deadline_ticks: engine::deadline_ticks(limits.deadline.0),
            name,
            plugin,
            config: with.to_string(),
            limits,
            live: None,
            buf: Vec::new(),
        };
        this.live = Some(this.instantiate()?);
        Ok(this)
    }

    /// The compiled plugin this transform runs.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> &TransformLimits {
        &self.limits
    }

    fn error(&self, kind: TransformErrorKind, message: String) -> TransformError {
        TransformError::new(&self.name, kind, message)
    }

    /// Reset the per-call budgets: deadline and fuel.
    fn arm(&self, store: &mut Store<HostState>) -> Result<(), TransformError> {
        store.set_epoch_deadline(self.deadline_ticks);
        if self.plugin.fuel_metering() {
            store
                .set_fuel(self.limits.fuel)
                .map_err(|e| self.error(TransformErrorKind::Fuel, format!("{e:#}")))?;
        }
        Ok(())
    }

    fn instantiate(&self) -> Result<Live, TransformError> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let memory = usize::try_from(self.limits.memory.0).unwrap_or(usize::MAX);
        let state = HostState {
            name: Arc::from(self.name.as_str()),
            wasi: sandbox(stderr.clone()),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new().memory_size(memory).build(),
            memory_denied: false,
            stderr,
        };
        let pre = self.plugin.pre();
        let mut store = Store::new(pre.engine(), state);
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        self.arm(&mut store)?;
        let bindings = pre
            .instantiate(&mut store)
            .map_err(|e| self.call_error(&store, "instantiate", e))?;
        self.arm(&mut store)?;
        match bindings.call_init(&mut store, &self.config) {
            Ok(Ok(())) => Ok(Live { store, bindings }),
            Ok(Err(message)) => Err(TransformError::rejected_config(&self.name, &message)),
            Err(e) => {
                let mut err = self.call_error(&store, "init", e);
                err.message = format!("init failed ({}): {}", err.kind, err.message);
                err.kind = TransformErrorKind::Init;
                Err(err)
            }
        }
    }

    /// Classify a failed call: deadline, fuel, memory cap, or a plain trap.
    fn call_error(
        &self,
        store: &Store<HostState>,
        what: &str,
        e: wasmtime::Error,
    ) -> TransformError {
        let state = store.data();
        let trap = e.downcast_ref::<Trap>().copied();
        let (kind, message) = match trap {
            Some(Trap::Interrupt) => (
                TransformErrorKind::Deadline,
                format!("{what} ran past the {:?} deadline", self.limits.deadline.0),
            ),
            Some(Trap::OutOfFuel) => (
                TransformErrorKind::Fuel,
                format!("{what} used up its fuel budget of {}", self.limits.fuel),
            ),
            _ if state.memory_denied => (
                TransformErrorKind::Memory,
                format!(
                    "{what} hit the memory cap of {} bytes",
                    self.limits.memory.0
                ),
            ),
            _ => {
                // The root cause ("wasm `unreachable` instruction executed") without the wasm
                // backtrace, which goes to the debug log.
                tracing::debug!(plugin = %self.name, error = %format!("{e:?}"), "Plugin trapped.");
                (
                    TransformErrorKind::Trap,
                    format!("{what} trapped: {}", e.root_cause()),
                )
            }
        };
        let stderr = state.stderr.contents();
        let tail = &stderr[stderr.len().saturating_sub(STDERR_IN_ERRORS)..];
        let stderr = String::from_utf8_lossy(tail);
        let stderr = stderr.trim();
        let message = if stderr.is_empty() {
            message
        } else if tail.len() < STDERR_IN_ERRORS
            || state.stderr.contents().len() + STDERR_RECYCLE < STDERR_CAPACITY
        {
            format!("{message}; plugin stderr: {stderr}")
        } else {
            format!(
                "{message} (standard error is capped at {STDERR_CAPACITY} bytes per batch: log through the SDK instead); plugin stderr: {stderr}"
            )
        };
        self.error(kind, message)
    }

    fn try_process(&mut self, records: &[Record]) -> Result<Vec<Outcome>, TransformError> {
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        // Before taking the instance: a batch the encoding cannot carry (a field over 4 GiB)
        // fails without costing the plugin its instance.
        wire::encode_batch(&mut self.buf, records, time_ms)
            .map_err(|m| self.error(TransformErrorKind::Malformed, m))?;
        let mut live = match self.live.take() {
            Some(live) => live,
            None => self.instantiate()?,
        };
        self.arm(&mut live.store)?;
        let out = match live.bindings.call_process(&mut live.store, &self.buf) {
            Ok(Ok(out)) => out,
            Ok(Err(message)) => {
                return Err(self.error(
                    TransformErrorKind::Malformed,
                    format!("process returned an error: {message}"),
                ));
            }
            Err(e) => return Err(self.call_error(&live.store, "process", e)),
        };
        if out.len() as u64 > self.limits.max_output.0 {
            return Err(self.error(
                TransformErrorKind::OutputTooLarge,
                format!(
                    "output of {} bytes for {} records exceeds max_output of {} bytes",
                    out.len(),
                    records.len(),
                    self.limits.max_output.0
                ),
            ));
        }
        let outcomes = wire::decode_outcomes(out, records)
            .map_err(|m| self.error(TransformErrorKind::Malformed, m))?;
        // Only a successful call keeps the instance; any failure re-instantiates next time.
        let stderr = live.store.data().stderr.contents();
        if stderr.len() > STDERR_RECYCLE {
            tracing::debug!(
                plugin = %self.name,
                bytes = stderr.len(),
                "Recycling a plugin instance that wrote a lot to standard error."
            );
        } else {
            self.live = Some(live);
        }
        Ok(outcomes)
    }
}

impl Transform for WasmTransform {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, records: &[Record]) -> Result<Vec<Outcome>, TransformError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let result = self.try_process(records);
        if let Err(error) = &result {
            tracing::warn!(transform = %self.name, kind = %error.kind, error = %error.message, "Transform batch failed; the instance will be re-created.");
        }
        result
    }
}
