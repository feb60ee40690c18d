//! The process-wide wasmtime engines and the epoch ticker that drives wall-clock deadlines.
//!
//! Two engines exist: one without fuel metering (the default; fuel costs about 40% on
//! compute-heavy guests) and one with it, used by transforms whose `limits.fuel` is non-zero.
//! Compiled artifacts are specific to an engine, so the cache key includes which one.
//! `SLUICE_WASM_PERFMAP=1` makes guest functions visible by name to `perf`.

use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::{Config, Engine};

/// How often the ticker advances the engines' epoch; deadlines are rounded up to this.
pub(crate) const TICK: Duration = Duration::from_millis(5);

struct Engines {
    plain: Engine,
    fueled: Engine,
}

static ENGINES: OnceLock<Result<Engines, String>> = OnceLock::new();

fn build(fuel: bool) -> Result<Engine, String> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.consume_fuel(fuel);
    if std::env::var_os("SLUICE_WASM_PERFMAP").is_some() {
        // Name guest functions in `perf` profiles (writes /tmp/perf-<pid>.map).
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Engine::new(&config).map_err(|e| format!("cannot create the wasm engine: {e:#}"))
}

fn engines() -> Result<&'static Engines, String> {
    ENGINES
        .get_or_init(|| {
            let engines = Engines {
                plain: build(false)?,
                fueled: build(true)?,
            };
            let (plain, fueled) = (engines.plain.weak(), engines.fueled.weak());
            std::thread::Builder::new()
                .name("sluice-wasm-epoch".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(TICK);
                        for engine in [&plain, &fueled] {
                            if let Some(engine) = engine.upgrade() {
                                engine.increment_epoch();
                            }
                        }
                    }
                })
                .map_err(|e| format!("cannot start the epoch ticker: {e}"))?;
            Ok(engines)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The engine for transforms with (`fuel = true`) or without fuel metering.
pub(crate) fn engine(fuel: bool) -> Result<&'static Engine, String> {
    let engines = engines()?;
    Ok(if fuel {
        &engines.fueled
    } else {
        &engines.plain
    })
}

/// Epoch ticks covering `deadline`, rounded up, plus one for the tick in progress.
pub(crate) fn deadline_ticks(deadline: Duration) -> u64 {
    let tick = TICK.as_nanos();
    (deadline.as_nanos().div_ceil(tick) as u64).saturating_add(1)
}
