//! The Wasm plugins: native and Wasm built-ins agree on thousands of random inputs; hostile
//! plugins end in a typed error within their limits while the host keeps running; the
//! contract version and the imports are checked before anything runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmkafka::group::{Assignor, Builtin};
use wasmkafka::plugin::{
    CompileCache, ContractError, PluginFailure, PluginLimits, PluginRuntime, WasmAssignor,
    WasmResetPolicy,
};
use wasmkafka::policy::{ResetContext, ResetDecision, ResetPolicy, ResetPolicySpec, ResetReason};
use wasmkafka_policy::assign::{validate, Group, InvalidAssignment, Member, PartitionInfo};
use wasmkafka_tests::plugins::plugin;

fn runtime(limits: PluginLimits) -> Arc<PluginRuntime> {
    PluginRuntime::new(limits, None).unwrap()
}

/// xorshift: reproducible random numbers without a dependency.
struct Random(u64);

impl Random {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below.max(1)
    }
}

/// A random group: 1-8 members, 1-4 topics of 1-16 partitions, random subscriptions, some
/// owned partitions (as after earlier rebalances), static ids and racks now and then.
fn random_group(random: &mut Random) -> Group {
    let topics: Vec<String> = (0..1 + random.next(4))
        .map(|t| format!("topic-{t}"))
        .collect();
    let partitions: BTreeMap<String, Vec<PartitionInfo>> = topics
        .iter()
        .map(|t| {
            let count = 1 + random.next(16) as i32;
            (
                t.clone(),
                (0..count)
                    .map(|p| PartitionInfo {
                        partition: p,
                        racks: vec![format!("rack-{}", p % 3)],
                    })
                    .collect(),
            )
        })
        .collect();
    let members = (0..1 + random.next(8))
        .map(|m| {
            let subscribed: Vec<String> = topics
                .iter()
                .filter(|_| random.next(4) != 0)
                .cloned()
                .collect();
            let mut owned: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for topic in &subscribed {
                for info in &partitions[topic] {
                    if random.next(5) == 0 {
                        owned.entry(topic.clone()).or_default().push(info.partition);
                    }
                }
            }
            Member {
                member_id: format!("member-{m}-{}", random.next(1000)),
                instance_id: (random.next(3) == 0).then(|| format!("instance-{m}")),
                topics: subscribed,
                user_data: Vec::new(),
                owned,
                generation: random.next(5) as i32 - 1,
                rack: (random.next(2) == 0).then(|| format!("rack-{}", m % 3)),
            }
        })
        .collect();
    Group {
        members,
        topics: partitions,
        settings: BTreeMap::new(),
    }
}

#[test]
fn wasm_and_native_assignors_agree_on_thousands_of_random_groups() {
    let runtime = runtime(PluginLimits::default());
    for builtin in Builtin::ALL {
        let wasm =
            WasmAssignor::load(&runtime, &plugin(&format!("assignor-{}", builtin.name()))).unwrap();
        assert_eq!(wasm.name(), builtin.name());
        assert_eq!(wasm.protocol(), Assignor::protocol(&builtin));
        let mut random = Random(0x2545_F491_4F6C_DD1D ^ builtin.name().len() as u64);
        let started = Instant::now();
        for round in 0..1000 {
            let group = random_group(&mut random);
            let native = builtin.assign(&group).unwrap();
            let sandboxed = wasm.assign(&group).unwrap();
            assert_eq!(
                native,
                sandboxed,
                "{} differs on group #{round}: {group:?}",
                builtin.name()
            );
        }
        println!("{}: 1000 groups in {:?}", builtin.name(), started.elapsed());
    }
}

#[test]
fn wasm_and_native_reset_policies_agree() {
    let runtime = runtime(PluginLimits::default());
    let pairs: [(&str, ResetPolicySpec); 4] = [
        ("reset-earliest", ResetPolicySpec::Earliest),
        ("reset-latest", ResetPolicySpec::Latest),
        ("reset-none", ResetPolicySpec::None),
        ("reset-by-duration", "by_duration:P1D".parse().unwrap()),
    ];
    let mut random = Random(7);
    for (crate_name, spec) in pairs {
        let wasm = WasmResetPolicy::load(&runtime, &plugin(crate_name)).unwrap();
        let native = spec.into_policy();
        for _ in 0..500 {
            let log_start = random.next(1_000_000) as i64;
            let context = ResetContext {
                topic: "t".into(),
                partition: random.next(10) as i32,
                reason: if random.next(2) == 0 {
                    ResetReason::NoCommittedOffset
                } else {
                    ResetReason::OutOfRange {
                        offset: random.next(2_000_000) as i64,
                    }
                },
                committed: (random.next(2) == 0).then(|| random.next(2_000_000) as i64),
                log_start,
                high_watermark: log_start + random.next(1_000_000) as i64,
                now_ms: 1_700_000_000_000 + random.next(1_000_000_000) as i64,
                group: Some("g".into()),
                settings: BTreeMap::new(),
            };
            assert_eq!(
                wasm.decide(&context).unwrap(),
                native.decide(&context).unwrap(),
                "{crate_name} on {context:?}"
            );
        }
    }
}

fn small_group() -> Group {
    let mut group = Group::default();
    for m in 0..3 {
        group.members.push(Member {
            member_id: format!("m{m}"),
            topics: vec!["t".into()],
            generation: -1,
            ..Member::default()
        });
    }
    group.topics.insert(
        "t".into(),
        (0..6)
            .map(|p| PartitionInfo {
                partition: p,
                racks: Vec::new(),
            })
            .collect(),
    );
    group
}

fn failure_of(result: Result<impl std::fmt::Debug, wasmkafka::group::AssignorError>) -> String {
    result.expect_err("the plugin must fail").message
}

#[test]
fn an_endless_loop_is_stopped_at_the_deadline() {
    let runtime = runtime(PluginLimits {
        deadline: Duration::from_millis(200),
        ..PluginLimits::default()
    });
    let spin = WasmAssignor::load(&runtime, &plugin("hostile-loop")).unwrap();
    let started = Instant::now();
    let message = failure_of(spin.assign(&small_group()));
    let took = started.elapsed();
    assert!(message.contains("deadline"), "{message}");
    assert!(
        message.contains("hostile_loop.wasm"),
        "names the plugin: {message}"
    );
    // It spins forever: ending within seconds means the deadline ended it (the margin is
    // for a loaded CI machine).
    assert!(took < Duration::from_secs(15), "stopped after {took:?}");
    // The host goes on: a good plugin in the same runtime still answers.
    let range = WasmAssignor::load(&runtime, &plugin("assignor-range")).unwrap();
    assert!(range.assign(&small_group()).is_ok());
}

/// A plugin that sleeps (a blocking WASI clock wait, where epoch interruption does not
/// reach) and one that polls a clock an hour away end at the deadline like the busy loop.
#[test]
fn sleeping_and_polling_plugins_end_at_the_deadline() {
    let deadline = Duration::from_millis(300);
    let runtime = runtime(PluginLimits {
        deadline,
        ..PluginLimits::default()
    });
    let context = ResetContext {
        topic: "t".into(),
        partition: 0,
        reason: ResetReason::NoCommittedOffset,
        committed: None,
        log_start: 0,
        high_watermark: 10,
        now_ms: 0,
        group: None,
        settings: BTreeMap::new(),
    };
    for crate_name in ["hostile-sleep", "hostile-poll"] {
        let policy = WasmResetPolicy::load(&runtime, &plugin(crate_name)).unwrap();
        let started = Instant::now();
        let error = policy.decide(&context).unwrap_err();
        let took = started.elapsed();
        assert!(
            error.message.contains("ran past its 300ms deadline"),
            "{crate_name}: {error}"
        );
        // The plugin sleeps for a minute: ending within seconds means the deadline ended it.
        // The margin is wide because a loaded CI machine is slow, not because the deadline is.
        assert!(
            took >= deadline && took < Duration::from_secs(15),
            "{crate_name} ended after {took:?}"
        );
    }
    // The host goes on: a good plugin in the same runtime still answers.
    let rewind = WasmResetPolicy::load(&runtime, &plugin("reset-rewind")).unwrap();
    assert!(rewind.decide(&context).is_ok());
}

/// A changed plugin file is used at the next call; a broken or renamed new version is
/// refused and the previous one keeps answering.
#[test]
fn a_changed_plugin_file_is_picked_up_and_a_broken_one_is_refused() {
    let runtime = runtime(PluginLimits::default());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.wasm");
    // Each copy gets a distinct modification time, as a deploy would.
    let mut stamp = std::time::SystemTime::now();
    let mut install = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        stamp += Duration::from_secs(1);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(stamp)
            .unwrap();
    };
    install(&std::fs::read(plugin("reset-latest")).unwrap());
    let policy = WasmResetPolicy::load(&runtime, &path).unwrap();
    let context = ResetContext {
        topic: "t".into(),
        partition: 0,
        reason: ResetReason::NoCommittedOffset,
        committed: None,
        log_start: 10,
        high_watermark: 100,
        now_ms: 0,
        group: None,
        settings: BTreeMap::new(),
    };
    use wasmkafka::policy::ResetDecision;
    assert_eq!(policy.decide(&context).unwrap(), ResetDecision::Latest);
    // Version 2 (same name, other answers) is picked up without reloading by hand.
    install(&std::fs::read(plugin("test-latest-v2")).unwrap());
    assert_eq!(policy.decide(&context).unwrap(), ResetDecision::Offset(11));
    // A broken file: version 2 keeps answering.
    install(b"not a component");
    assert_eq!(policy.decide(&context).unwrap(), ResetDecision::Offset(11));
    // A plugin that renamed itself is refused too.
    install(&std::fs::read(plugin("reset-earliest")).unwrap());
    assert_eq!(policy.decide(&context).unwrap(), ResetDecision::Offset(11));
    assert_eq!(policy.name(), "latest");
    // Back to version 1.
    install(&std::fs::read(plugin("reset-latest")).unwrap());
    assert_eq!(policy.decide(&context).unwrap(), ResetDecision::Latest);
}

/// A plugin built against the frozen contract 0.1.0 still runs, and sees a truncated log as
/// out of range; a 0.2.0 plugin sees the truncation and answers many partitions in one call.
#[test]
fn contract_versions_side_by_side() {
    use wasmkafka::policy::ResetDecision;
    let runtime = runtime(PluginLimits::default());
    let context = |reason| ResetContext {
        topic: "t".into(),
        partition: 0,
        reason,
        committed: Some(90),
        log_start: 10,
        high_watermark: 100,
        now_ms: 0,
        group: None,
        settings: BTreeMap::new(),
    };
    let truncated = ResetReason::LogTruncated {
        offset: 90,
        diverged_at: 40,
    };
    let frozen = WasmResetPolicy::load(&runtime, &plugin("contract-v0-1-0")).unwrap();
    assert_eq!(frozen.name(), "frozen");
    assert_eq!(
        frozen
            .decide(&context(ResetReason::NoCommittedOffset))
            .unwrap(),
        ResetDecision::Latest
    );
    // Out of range to a 0.1.0 plugin: its own answer for that branch.
    assert_eq!(
        frozen.decide(&context(truncated)).unwrap(),
        ResetDecision::Offset(11)
    );
    // A plugin built against the frozen 0.2.0 sees the truncation, one call or many.
    let frozen_v2 = WasmResetPolicy::load(&runtime, &plugin("contract-v0-2-0")).unwrap();
    assert_eq!(frozen_v2.name(), "frozen-v2");
    assert_eq!(
        frozen_v2.decide(&context(truncated)).unwrap(),
        ResetDecision::Offset(40)
    );
    let both: Vec<ResetDecision> = frozen_v2
        .decide_all(&[
            context(truncated),
            context(ResetReason::OutOfRange { offset: 5 }),
        ])
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(both, [ResetDecision::Offset(40), ResetDecision::Offset(12)]);
    // 0.3.0: the built-in `earliest` plugin resumes where the log diverged, like the native
    // one, and `decide-all` answers every partition in one call.
    let earliest = WasmResetPolicy::load(&runtime, &plugin("reset-earliest")).unwrap();
    let contexts = [
        context(truncated),
        context(ResetReason::NoCommittedOffset),
        context(ResetReason::OutOfRange { offset: 5 }),
    ];
    let wasm: Vec<ResetDecision> = earliest
        .decide_all(&contexts)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let native: Vec<ResetDecision> = contexts
        .iter()
        .map(|c| ResetPolicySpec::Earliest.into_policy().decide(c).unwrap())
        .collect();
    assert_eq!(wasm, native);
    assert_eq!(wasm[0], ResetDecision::Offset(40));
    // The frozen plugin answers decide_all too (one call per partition).
    assert_eq!(frozen.decide_all(&contexts).len(), 3);
}

/// Calls, failures and call times per plugin reach `/metrics`.
#[test]
fn plugin_calls_and_failures_are_counted_for_the_metrics() {
    let runtime = runtime(PluginLimits {
        deadline: Duration::from_millis(100),
        ..PluginLimits::default()
    });
    let range = WasmAssignor::load(&runtime, &plugin("assignor-range")).unwrap();
    let spin = WasmAssignor::load(&runtime, &plugin("hostile-loop")).unwrap();
    for _ in 0..3 {
        range.assign(&small_group()).unwrap();
    }
    assert!(spin.assign(&small_group()).is_err());
    let stats = runtime.plugin_stats();
    let of = |name: &str| {
        stats
            .iter()
            .find(|(path, _)| path.ends_with(name))
            .map(|(_, s)| s.clone())
            .unwrap()
    };
    // Loading asks the name and protocol once.
    assert_eq!(
        (
            of("assignor_range.wasm").calls,
            of("assignor_range.wasm").failures
        ),
        (4, 0)
    );
    assert_eq!(
        (
            of("hostile_loop.wasm").calls,
            of("hostile_loop.wasm").failures
        ),
        (2, 1)
    );
    assert!(of("hostile_loop.wasm").time.sum() >= 0.1);
    // A Rust plugin's instance holds its one memory: a few pages, well under the cap.
    let peak = of("assignor_range.wasm").memory_peak_bytes;
    assert!(peak > 0 && peak < 16 << 20, "{peak}");
    let metrics = wasmkafka::metrics::Metrics::new();
    metrics.watch_plugins(runtime.clone());
    let text = metrics.encode();
    let range_path = plugin("assignor-range").display().to_string();
    for line in [
        format!("wasmkafka_plugin_calls_total{{plugin=\"{range_path}\"}} 4"),
        format!("wasmkafka_plugin_failures_total{{plugin=\"{range_path}\"}} 0"),
        format!("wasmkafka_plugin_call_seconds_count{{plugin=\"{range_path}\"}} 4"),
        format!("wasmkafka_plugin_call_seconds_bucket{{le=\"+Inf\",plugin=\"{range_path}\"}} 4"),
        format!("wasmkafka_plugin_memory_peak_bytes{{plugin=\"{range_path}\"}} {peak}"),
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
}

#[test]
fn a_memory_bomb_hits_the_cap() {
    let runtime = runtime(PluginLimits {
        memory_bytes: 16 * 1024 * 1024,
        ..PluginLimits::default()
    });
    let hog = WasmAssignor::load(&runtime, &plugin("hostile-memory")).unwrap();
    let message = failure_of(hog.assign(&small_group()));
    assert!(
        message.contains("memory") && message.contains("16777216"),
        "{message}"
    );
}

#[test]
fn a_panic_is_a_trap_and_repeated_failures_quarantine_the_plugin() {
    let runtime = runtime(PluginLimits::default());
    let panics = WasmAssignor::load(&runtime, &plugin("hostile-panic")).unwrap();
    for _ in 0..3 {
        let message = failure_of(panics.assign(&small_group()));
        assert!(message.contains("trapped"), "{message}");
    }
    // A quarantined plugin is not run: the answer is the quarantine's, not another trap.
    let message = failure_of(panics.assign(&small_group()));
    assert!(
        message.contains("skipped") && !message.contains("trapped"),
        "{message}"
    );
}

#[test]
fn invalid_assignments_are_caught_by_validation() {
    let runtime = runtime(PluginLimits::default());
    let group = small_group();
    for (mode, expected) in [
        ("duplicate", "Duplicate"),
        ("unknown-member", "UnknownMember"),
        ("unsubscribed", "NotSubscribed"),
    ] {
        let invalid = WasmAssignor::load(&runtime, &plugin("hostile-invalid"))
            .unwrap()
            .with_settings(vec![("mode".into(), mode.into())]);
        let assignment = invalid.assign(&group).unwrap();
        let error: InvalidAssignment = validate(&group, &assignment, false).unwrap_err();
        assert!(
            format!("{error:?}").starts_with(expected),
            "{mode}: {error:?}"
        );
    }
}

#[test]
fn contract_version_and_imports_are_checked_before_compiling() {
    let runtime = runtime(PluginLimits::default());
    let error = WasmResetPolicy::load(&runtime, &plugin("hostile-wrong-version")).unwrap_err();
    assert_eq!(
        error.failure,
        PluginFailure::Contract(ContractError::UnsupportedVersion {
            found: "9.9.0".into(),
            supported: "0.3.0, 0.2.0, 0.1.0".into(),
        })
    );
    assert!(
        error
            .to_string()
            .contains("runs versions 0.3.0, 0.2.0, 0.1.0"),
        "{error}"
    );

    // WASI's filesystem and sockets are linked with nothing behind them (what Python's and
    // JavaScript's runtimes import): such plugins load, and what they try fails inside.
    let snoop = WasmAssignor::load(&runtime, &plugin("hostile-filesystem")).unwrap();
    assert_eq!(snoop.name(), "snoop", "it read /etc/hostname");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let phone = WasmResetPolicy::load(&runtime, &plugin("hostile-network")).unwrap();
    let context = ResetContext {
        topic: "t".into(),
        partition: 0,
        reason: ResetReason::NoCommittedOffset,
        committed: None,
        log_start: 0,
        high_watermark: 10,
        now_ms: 1_700_000_000_000,
        group: None,
        settings: BTreeMap::from([("port".to_string(), port)]),
    };
    let decision = phone.decide(&context).unwrap();
    assert!(
        matches!(decision, ResetDecision::Fail(_)),
        "it connected: {decision:?}"
    );
    assert!(
        listener.accept().is_err(),
        "a connection reached the listener"
    );

    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm\x01\0\0\0").unwrap();
    let error = WasmAssignor::load(&runtime, &garbage).unwrap_err();
    assert!(error.to_string().contains("core module"), "{error}");
    std::fs::write(&garbage, b"not wasm at all").unwrap();
    let error = WasmAssignor::load(&runtime, &garbage).unwrap_err();
    assert!(matches!(
        error.failure,
        PluginFailure::Contract(ContractError::NotAComponent(_))
    ));

    let small = PluginRuntime::new(
        PluginLimits {
            max_file_bytes: 1024,
            ..PluginLimits::default()
        },
        None,
    )
    .unwrap();
    let error = WasmAssignor::load(&small, &plugin("assignor-range")).unwrap_err();
    assert!(
        matches!(error.failure, PluginFailure::TooLarge { .. }),
        "{error}"
    );

    let error = WasmAssignor::load(&runtime, &plugin("reset-earliest")).unwrap_err();
    assert!(error.to_string().contains("not an assignor"), "{error}");
}

#[test]
fn compiled_plugins_are_cached_on_disk() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = PluginRuntime::new(
        PluginLimits::default(),
        Some(CompileCache::new(cache.path())),
    )
    .unwrap();
    let started = Instant::now();
    WasmAssignor::load(&runtime, &plugin("assignor-sticky")).unwrap();
    let first = started.elapsed();
    let entries = std::fs::read_dir(cache.path()).unwrap().count();
    assert_eq!(entries, 1, "one compiled artifact");
    let started = Instant::now();
    let again = WasmAssignor::load(&runtime, &plugin("assignor-sticky")).unwrap();
    let second = started.elapsed();
    println!("compile {first:?}, from the cache {second:?}");
    assert!(again.assign(&small_group()).is_ok());
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
}

/// Plugin log lines, as a sink receives them.
#[derive(Default)]
struct Collected(std::sync::Mutex<Vec<wasmkafka::plugin::LogLine>>);

impl wasmkafka::plugin::LogSink for Collected {
    fn write(&self, line: &wasmkafka::plugin::LogLine) {
        self.0.lock().unwrap().push(line.clone());
    }
}

/// A plugin's `log` import (0.3.0): its lines reach the host's sink with its name, level and
/// fields; a flood is cut to the burst and the drops are counted on the next line through;
/// an oversized line is cut to 1 KiB. Logging never fails the call.
#[test]
fn a_plugins_log_lines_reach_the_host_within_bounds() {
    use wasmkafka::plugin::LogLevel;
    let runtime = runtime(PluginLimits::default());
    let lines = Arc::new(Collected::default());
    runtime.set_log_sink(lines.clone());
    let chatty = WasmAssignor::load(&runtime, &plugin("test-chatty"))
        .unwrap()
        .with_settings(vec![
            ("flood".into(), "1000".into()),
            ("long".into(), "100000".into()),
        ]);
    let group = small_group();
    assert!(
        chatty.assign(&group).is_ok(),
        "logging never fails the call"
    );
    let first = lines.0.lock().unwrap().clone();
    assert_eq!(first[0].plugin, "chatty");
    assert_eq!(first[0].level, LogLevel::Info);
    assert_eq!(first[0].message, "assigning");
    assert_eq!(
        first[0].fields,
        [
            ("members".to_string(), group.members.len().to_string()),
            ("topics".to_string(), group.topics.len().to_string()),
        ]
    );
    assert_eq!(first[1].level, LogLevel::Debug);
    // 1000 flood lines and the long one: cut to the burst of 100 (a few more refill meanwhile).
    assert!((100..120).contains(&first.len()), "{} lines", first.len());
    std::thread::sleep(Duration::from_millis(200));
    let quiet = WasmAssignor::load(&runtime, &plugin("test-chatty"))
        .unwrap()
        .with_settings(vec![("long".into(), "100000".into())]);
    // A new load is a new bucket: the long line gets through, cut.
    quiet.assign(&group).unwrap();
    let all = lines.0.lock().unwrap().clone();
    let long = all.last().unwrap();
    assert_eq!(long.level, LogLevel::Error);
    assert!(long.message.len() <= 1024 + 3, "{}", long.message.len());
    // The first plugin's next line says how many of its lines were dropped.
    chatty.assign(&group).unwrap();
    let all = lines.0.lock().unwrap().clone();
    let resumed = all
        .iter()
        .skip(first.len())
        .find(|l| l.message == "assigning" && l.dropped_before > 0)
        .expect("a line that counts the drops");
    assert_eq!(
        resumed.dropped_before as usize,
        1 + group.members.len() + 1000 + 1 - first.len(),
        "every line beyond the burst was counted"
    );
}

/// The cache entry files in `dir`.
fn cache_entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    entries.sort();
    entries
}

/// An entry edited on disk is never run: it is refused, compiled again and rewritten, and
/// the plugin works. Entries are named by a SHA-256 (64 hex digits).
#[test]
fn a_tampered_cache_entry_is_refused_and_compiled_again() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = PluginRuntime::new(
        PluginLimits::default(),
        Some(CompileCache::new(cache.path())),
    )
    .unwrap();
    WasmAssignor::load(&runtime, &plugin("assignor-range")).unwrap();
    let entries = cache_entries(cache.path());
    assert_eq!(entries.len(), 1);
    let name = entries[0]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()),
        "{name}"
    );
    let written = std::fs::read(&entries[0]).unwrap();
    // Change one byte of the compiled code, in the middle of the file.
    let mut tampered = written.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x5a;
    std::fs::write(&entries[0], &tampered).unwrap();
    let again = WasmAssignor::load(&runtime, &plugin("assignor-range")).unwrap();
    assert!(again.assign(&small_group()).is_ok());
    // (Compared without printing: the entry is megabytes.)
    assert!(
        std::fs::read(&entries[0]).unwrap() == written,
        "the tampered entry was used instead of being compiled and written again"
    );
}

/// A cache directory others may write to is not used (whoever can write it could run code
/// in the consumer): plugins still load, compiled in memory, and nothing is written there.
#[cfg(unix)]
#[test]
fn a_cache_directory_others_can_write_is_not_used() {
    use std::os::unix::fs::PermissionsExt;
    let cache = tempfile::tempdir().unwrap();
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let runtime = PluginRuntime::new(
        PluginLimits::default(),
        Some(CompileCache::new(cache.path())),
    )
    .unwrap();
    let assignor = WasmAssignor::load(&runtime, &plugin("assignor-range")).unwrap();
    assert!(assignor.assign(&small_group()).is_ok());
    assert!(cache_entries(cache.path()).is_empty());
    // A new directory is created private, and used.
    let fresh = cache.path().join("fresh");
    let runtime =
        PluginRuntime::new(PluginLimits::default(), Some(CompileCache::new(&fresh))).unwrap();
    WasmAssignor::load(&runtime, &plugin("assignor-range")).unwrap();
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert_eq!(cache_entries(&fresh).len(), 1);
}

/// The cache keeps to its size bound: the least recently used entry goes first; the one
/// just written always stays.
#[test]
fn the_cache_keeps_to_its_size_bound() {
    let cache = tempfile::tempdir().unwrap();
    let unbounded = PluginRuntime::new(
        PluginLimits::default(),
        Some(CompileCache::new(cache.path())),
    )
    .unwrap();
    WasmAssignor::load(&unbounded, &plugin("assignor-range")).unwrap();
    let first = cache_entries(cache.path());
    let one_entry = std::fs::metadata(&first[0]).unwrap().len();
    // Room for about one entry: each new one pushes the older out.
    let bounded = PluginRuntime::new(
        PluginLimits::default(),
        Some(CompileCache::new(cache.path()).with_max_bytes(one_entry + one_entry / 2)),
    )
    .unwrap();
    WasmAssignor::load(&bounded, &plugin("assignor-roundrobin")).unwrap();
    let second = cache_entries(cache.path());
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first, "the older entry went");
    WasmAssignor::load(&bounded, &plugin("assignor-sticky")).unwrap();
    let third = cache_entries(cache.path());
    assert_eq!(third.len(), 1, "{third:?}");
    assert_ne!(third, second);
}

/// A pin admits the build it names and refuses any other, naming both digests.
#[test]
fn a_pin_admits_only_the_build_it_names() {
    use wasmkafka::plugin::Sha256Digest;
    let runtime = runtime(PluginLimits::default());
    let path = plugin("assignor-range");
    let digest = Sha256Digest::of(&std::fs::read(&path).unwrap());
    let pinned = WasmAssignor::load_pinned(&runtime, &path, Some(digest)).unwrap();
    assert_eq!(pinned.name(), "range");
    let other = Sha256Digest::of(b"another build");
    let error = WasmAssignor::load_pinned(&runtime, &path, Some(other)).unwrap_err();
    assert!(
        matches!(error.failure, PluginFailure::PinMismatch { pinned, actual } if pinned == other && actual == digest),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&digest.to_string()) && message.contains(&other.to_string()),
        "{message}"
    );
    let error =
        WasmResetPolicy::load_pinned(&runtime, &plugin("reset-earliest"), Some(other)).unwrap_err();
    assert!(
        matches!(error.failure, PluginFailure::PinMismatch { .. }),
        "{error}"
    );
}

#[test]
fn example_plugins_do_what_they_say() {
    let runtime = runtime(PluginLimits::default());
    // rewind: 100 records back from the committed offset, never before the log start.
    let rewind = WasmResetPolicy::load(&runtime, &plugin("reset-rewind"))
        .unwrap()
        .with_settings(vec![("records".into(), "100".into())]);
    let context = |committed, log_start| ResetContext {
        topic: "t".into(),
        partition: 0,
        reason: ResetReason::NoCommittedOffset,
        committed: Some(committed),
        log_start,
        high_watermark: 10_000,
        now_ms: 0,
        group: None,
        settings: BTreeMap::new(),
    };
    use wasmkafka::policy::ResetDecision::Offset;
    assert_eq!(rewind.decide(&context(5_000, 0)).unwrap(), Offset(4_900));
    assert_eq!(
        rewind.decide(&context(5_000, 4_950)).unwrap(),
        Offset(4_950)
    );

    // weighted: a member announcing weight 3 gets three times the partitions.
    let heavy = WasmAssignor::load(&runtime, &plugin("assignor-weighted"))
        .unwrap()
        .with_settings(vec![("weight".into(), "3".into())]);
    let light = WasmAssignor::load(&runtime, &plugin("assignor-weighted")).unwrap();
    let mut group = small_group();
    group.members.truncate(2);
    group.members[0].user_data = heavy.user_data(&["t".into()]);
    group.members[1].user_data = light.user_data(&["t".into()]);
    group.topics.insert(
        "t".into(),
        (0..8)
            .map(|p| PartitionInfo {
                partition: p,
                racks: Vec::new(),
            })
            .collect(),
    );
    let assignment = heavy.assign(&group).unwrap();
    assert_eq!(assignment["m0"].count(), 6);
    assert_eq!(assignment["m1"].count(), 2);
}

/// A runtime for the Python plugins: their compiled form kept between runs.
fn python_runtime(limits: PluginLimits) -> Arc<PluginRuntime> {
    PluginRuntime::new(
        limits,
        Some(wasmkafka_tests::plugins::python_compile_cache()),
    )
    .unwrap()
}

/// A group carrying `settings`, for the Python hostile plugin's modes.
fn small_group_with(settings: &[(&str, &str)]) -> Group {
    Group {
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..small_group()
    }
}

/// A second guest language: the round-robin assignor written in Python (componentize-py)
/// answers what the native one answers on random groups, through the same host path.
#[test]
fn a_python_assignor_and_the_native_one_agree_on_random_groups() {
    let runtime = python_runtime(PluginLimits::default());
    let python = WasmAssignor::load(
        &runtime,
        &wasmkafka_tests::plugins::python_plugin("roundrobin"),
    )
    .unwrap();
    assert_eq!(python.name(), "py-roundrobin");
    let native = Builtin::RoundRobin.into_assignor();
    let mut random = Random(11);
    for _ in 0..150 {
        let group = random_group(&mut random);
        assert_eq!(
            python.assign(&group).unwrap(),
            native.assign(&group).unwrap(),
            "{group:?}"
        );
    }
}

/// The hostile suite, from a Python guest: what its runtime links (filesystem, sockets)
/// reaches nothing, and loops, sleeps, memory bombs, exceptions and nonsense end as they do
/// for a Rust plugin. Each mode loads the plugin anew (from the compile cache), so the
/// failures of one do not quarantine the next.
#[test]
fn a_python_plugin_meets_the_same_limits_as_a_rust_one() {
    let hostile = wasmkafka_tests::plugins::python_plugin("hostile");
    let deadline = Duration::from_millis(500);
    let runtime = python_runtime(PluginLimits {
        deadline,
        ..PluginLimits::default()
    });
    let load = || WasmAssignor::load(&runtime, &hostile).unwrap();
    // Well-behaved, it answers.
    assert!(load().assign(&small_group()).is_ok());

    for mode in ["loop", "sleep"] {
        let plugin = load();
        let started = Instant::now();
        let message = failure_of(plugin.assign(&small_group_with(&[("mode", mode)])));
        let took = started.elapsed();
        assert!(message.contains("deadline"), "{mode}: {message}");
        // `sleep` waits 60 s and `loop` forever: ending within seconds means the deadline
        // ended it. The margin is for a loaded CI machine, not for the deadline.
        assert!(took < Duration::from_secs(15), "{mode}: {took:?}");
    }
    let message = failure_of(load().assign(&small_group_with(&[("mode", "memory")])));
    assert!(
        message.contains("memory") && message.contains("67108864"),
        "{message}"
    );
    let message = failure_of(load().assign(&small_group_with(&[("mode", "raise")])));
    assert!(message.contains("trapped"), "{message}");
    // Nonsense is answered, and the leader's validation refuses it (then the fallback runs).
    let twice = small_group_with(&[("mode", "twice")]);
    let answer = load().assign(&twice).unwrap();
    let error: InvalidAssignment = validate(&twice, &answer, false).unwrap_err();
    assert!(format!("{error:?}").starts_with("Duplicate"), "{error:?}");

    let message = failure_of(load().assign(&small_group_with(&[("mode", "file")])));
    assert!(
        message.contains("could not read /etc/hostname"),
        "a file was read: {message}"
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let message = failure_of(load().assign(&small_group_with(&[
        ("mode", "socket"),
        ("port", port.as_str()),
    ])));
    assert!(
        message.contains("could not connect"),
        "connected: {message}"
    );
    assert!(
        listener.accept().is_err(),
        "a connection reached the listener"
    );
}
