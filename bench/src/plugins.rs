//! What plugins cost, beside their native twins (`wasmkafka-bench plugins`): a whole-group
//! assign at two sizes through the lab's simulation (the consumer's own decision path), one
//! reset decision, loading a plugin with a cold and a warm compilation cache, and the same
//! round-robin assignor as a Rust and as a Python guest (call time, memory, loading). No
//! broker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use wasmkafka::group::{Assignor, Builtin};
use wasmkafka::lab::{simulate, MakeAssignor, Scenario};
use wasmkafka::plugin::{CompileCache, PluginLimits, PluginRuntime, WasmAssignor, WasmResetPolicy};
use wasmkafka::policy::{ResetContext, ResetPolicy, ResetPolicySpec, ResetReason};

use wasmkafka_policy::assign::{Group, Member, PartitionInfo};

use crate::report::median;

fn plugin_file(repo: &Path, name: &str) -> Result<PathBuf> {
    let path = repo.join("target/wasm32-wasip2/release").join(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: scripts/build-plugins.sh builds the plugins",
        path.display()
    );
    Ok(path)
}

fn python_plugin_file(repo: &Path, name: &str) -> Result<PathBuf> {
    let path = repo.join("target/python-plugins").join(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: scripts/build-python-plugins.sh builds the Python plugins",
        path.display()
    );
    Ok(path)
}

fn millis(seconds: f64) -> String {
    format!("{:.3}", seconds * 1e3)
}

/// The median assign call of a fresh group (every member joins at once) and of the
/// rebalance after one more member joins.
fn assign_times(scenario: &Scenario, make: &MakeAssignor) -> Result<(f64, f64)> {
    let run = simulate::simulate(scenario, make, "bench", Builtin::Range)?;
    let first = median(run.steps[0].assign_seconds.clone());
    let join = median(run.steps[1].assign_seconds.clone());
    Ok((first, join))
}

pub fn run(repo: &Path) -> Result<String> {
    let cache = tempfile::tempdir()?;
    // A long deadline: this measures calls, it does not police them.
    let limits = PluginLimits {
        deadline: std::time::Duration::from_secs(30),
        ..PluginLimits::default()
    };
    let runtime = PluginRuntime::new(limits.clone(), Some(CompileCache::new(cache.path())))
        .map_err(anyhow::Error::msg)?;
    let mut text =
        String::from("| assign (ms per call, median) | start | after a join |\n|---|---:|---:|\n");
    for (members, topics) in [
        (100, vec!["t1:1000".to_string()]),
        (1000, (1..=4).map(|t| format!("t{t}:25000")).collect()),
    ] {
        let mut scenario = Scenario::from_flags(members, &topics, 3, 3)?;
        scenario.push_events(&["join 1"])?;
        let partitions: usize = scenario.topics.iter().map(|t| t.partitions.len()).sum();
        for (builtin, file) in [
            (Builtin::Range, "assignor_range.wasm"),
            (
                Builtin::CooperativeSticky,
                "assignor_cooperative_sticky.wasm",
            ),
        ] {
            let native = simulate::builtin(builtin);
            let (first, join) = assign_times(&scenario, &native)?;
            text.push_str(&format!(
                "| {} native, {members} members x {partitions} partitions | {} | {} |\n",
                builtin.name(),
                millis(first),
                millis(join)
            ));
            // One instance for every member, as one process holds it.
            let wasm: Arc<dyn Assignor> =
                Arc::new(WasmAssignor::load(&runtime, &plugin_file(repo, file)?)?);
            let make: Box<MakeAssignor> = Box::new(move |_| Ok(wasm.clone()));
            let (first_wasm, join_wasm) = assign_times(&scenario, &make)?;
            text.push_str(&format!(
                "| {} Wasm, {members} members x {partitions} partitions | {} ({:.2}x) | {} ({:.2}x) |\n",
                builtin.name(),
                millis(first_wasm),
                first_wasm / first,
                millis(join_wasm),
                join_wasm / join
            ));
            eprintln!("assign {} {members}x{partitions} done", builtin.name());
        }
    }

    // One reset decision, native and Wasm (the same earliest policy).
    let context = ResetContext {
        topic: "t".into(),
        partition: 0,
        reason: ResetReason::OutOfRange { offset: 5 },
        committed: Some(5),
        log_start: 10,
        high_watermark: 100,
        now_ms: 0,
        group: Some("g".into()),
        settings: BTreeMap::new(),
    };
    let native: Arc<dyn ResetPolicy> = ResetPolicySpec::Earliest.into_policy();
    let wasm = WasmResetPolicy::load(&runtime, &plugin_file(repo, "reset_earliest.wasm")?)?;
    let time_decisions = |policy: &dyn ResetPolicy| -> Result<f64> {
        let mut times = Vec::new();
        for _ in 0..200 {
            let started = Instant::now();
            policy.decide(&context).context("a decision")?;
            times.push(started.elapsed().as_secs_f64());
        }
        Ok(median(times))
    };
    let (native_decision, wasm_decision) = (time_decisions(&*native)?, time_decisions(&wasm)?);
    text.push_str(&format!(
        "\n| one reset decision (earliest), median of 200 | ms |\n|---|---:|\n\
         | native | {} |\n| Wasm | {} |\n",
        millis(native_decision),
        millis(wasm_decision)
    ));

    // Loading: compile (an empty cache), then load what the cache kept, in a new runtime
    // each time (as a new process would).
    let file = plugin_file(repo, "assignor_cooperative_sticky.wasm")?;
    let mut cold = Vec::new();
    let mut cached = Vec::new();
    for _ in 0..5 {
        let dir = tempfile::tempdir()?;
        let fresh =
            PluginRuntime::new(PluginLimits::default(), Some(CompileCache::new(dir.path())))
                .map_err(anyhow::Error::msg)?;
        let started = Instant::now();
        WasmAssignor::load(&fresh, &file)?;
        cold.push(started.elapsed().as_secs_f64());
        for _ in 0..5 {
            let warm =
                PluginRuntime::new(PluginLimits::default(), Some(CompileCache::new(dir.path())))
                    .map_err(anyhow::Error::msg)?;
            let started = Instant::now();
            WasmAssignor::load(&warm, &file)?;
            cached.push(started.elapsed().as_secs_f64());
        }
    }
    text.push_str(&format!(
        "\n| loading assignor_cooperative_sticky.wasm ({} KB) | ms, median |\n|---|---:|\n\
         | compiled (empty cache), 5 loads | {} |\n| from the cache, 25 loads | {} |\n",
        std::fs::metadata(&file)?.len() / 1024,
        millis(median(cold)),
        millis(median(cached))
    ));
    text.push_str(&guests(repo, limits)?);
    Ok(text)
}

/// `members` members subscribed to one topic of `partitions` partitions.
fn one_topic_group(members: usize, partitions: i32) -> Group {
    Group {
        members: (0..members)
            .map(|m| Member {
                member_id: format!("member-{m:04}"),
                topics: vec!["t".into()],
                generation: -1,
                ..Member::default()
            })
            .collect(),
        topics: BTreeMap::from([(
            "t".to_string(),
            (0..partitions)
                .map(|partition| PartitionInfo {
                    partition,
                    racks: Vec::new(),
                })
                .collect(),
        )]),
        settings: BTreeMap::new(),
    }
}

/// The round-robin assignor natively, as a Rust guest and as a Python guest
/// (`plugins/python/roundrobin`, the same algorithm): assign calls at two sizes, the memory
/// one call's instance held, and loading with a cold and a warm cache.
fn guests(repo: &Path, limits: PluginLimits) -> Result<String> {
    let rust_file = plugin_file(repo, "assignor_roundrobin.wasm")?;
    let python_file = python_plugin_file(repo, "roundrobin.wasm")?;
    let mut text = String::from(
        "\n| round robin, ms per assign call (median) | 3 members x 6 partitions | \
         100 members x 1000 partitions |\n|---|---:|---:|\n",
    );
    let cache = tempfile::tempdir()?;
    let runtime = PluginRuntime::new(limits.clone(), Some(CompileCache::new(cache.path())))
        .map_err(anyhow::Error::msg)?;
    let native = Builtin::RoundRobin.into_assignor();
    let rust: Arc<dyn Assignor> = Arc::new(WasmAssignor::load(&runtime, &rust_file)?);
    let python: Arc<dyn Assignor> = Arc::new(WasmAssignor::load(&runtime, &python_file)?);
    let small = one_topic_group(3, 6);
    let large = one_topic_group(100, 1000);
    let time = |assignor: &Arc<dyn Assignor>, group: &Group, calls: usize| -> Result<f64> {
        let mut times = Vec::new();
        for _ in 0..calls {
            let started = Instant::now();
            assignor.assign(group).context("an assign call")?;
            times.push(started.elapsed().as_secs_f64());
        }
        Ok(median(times))
    };
    let native_times = (time(&native, &small, 50)?, time(&native, &large, 20)?);
    for (label, assignor) in [
        ("native", &native),
        ("Rust guest", &rust),
        ("Python guest", &python),
    ] {
        let (small_time, large_time) = (time(assignor, &small, 50)?, time(assignor, &large, 20)?);
        let ratio = |t: f64, base: f64| {
            if label == "native" {
                String::new()
            } else {
                format!(" ({:.0}x)", t / base.max(1e-9))
            }
        };
        text.push_str(&format!(
            "| {label} | {}{} | {}{} |\n",
            millis(small_time),
            ratio(small_time, native_times.0),
            millis(large_time),
            ratio(large_time, native_times.1)
        ));
        eprintln!("guests: {label} done");
    }
    let stats = runtime.plugin_stats();
    let peak = |file: &Path| {
        stats
            .get(&file.display().to_string())
            .map_or(0, |s| s.memory_peak_bytes)
    };
    text.push_str(&format!(
        "\n| round robin as a guest | Rust | Python |\n|---|---:|---:|\n\
         | component file (KB) | {} | {} |\n\
         | memory one call's instance held, at most (KB) | {} | {} |\n",
        std::fs::metadata(&rust_file)?.len() / 1024,
        std::fs::metadata(&python_file)?.len() / 1024,
        peak(&rust_file) / 1024,
        peak(&python_file) / 1024
    ));
    let mut loads = Vec::new();
    for (file, cold_loads) in [(&rust_file, 3), (&python_file, 2)] {
        let mut cold = Vec::new();
        let mut cached = Vec::new();
        for _ in 0..cold_loads {
            let dir = tempfile::tempdir()?;
            let fresh = PluginRuntime::new(limits.clone(), Some(CompileCache::new(dir.path())))
                .map_err(anyhow::Error::msg)?;
            let started = Instant::now();
            WasmAssignor::load(&fresh, file)?;
            cold.push(started.elapsed().as_secs_f64());
            for _ in 0..3 {
                let warm = PluginRuntime::new(limits.clone(), Some(CompileCache::new(dir.path())))
                    .map_err(anyhow::Error::msg)?;
                let started = Instant::now();
                WasmAssignor::load(&warm, file)?;
                cached.push(started.elapsed().as_secs_f64());
            }
        }
        loads.push((median(cold), median(cached)));
    }
    text.push_str(&format!(
        "| loading, compiled (an empty cache; 3 Rust, 2 Python loads), ms median | {} | {} |\n\
         | loading from the cache (9 Rust, 6 Python loads), ms median | {} | {} |\n",
        millis(loads[0].0),
        millis(loads[1].0),
        millis(loads[0].1),
        millis(loads[1].1)
    ));
    Ok(text)
}
