//! `wasmkafka assign-sim`: the policy lab's assignor simulator, through the binary.

use std::process::{Command, Output};

use serde_json::Value;
use wasmkafka_tests::bounded::{assert_succeeded, BoundedOutput};
use wasmkafka_tests::readme::run_shell_script;

fn wasmkafka(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmkafka"))
        .args(args)
        .bounded_output()
        .unwrap()
}

fn json(args: &[&str]) -> Vec<Value> {
    let output = wasmkafka(args);
    assert_succeeded(&output, &format!("{args:?}"));
    serde_json::from_slice::<Vec<Value>>(&output.stdout).unwrap()
}

/// (moved, revoked, lost, unassigned, rounds, min, max) of each step.
fn numbers(run: &Value) -> Vec<[u64; 7]> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            [
                s["moved"].as_u64().unwrap(),
                s["revoked"].as_u64().unwrap(),
                s["lost"].as_u64().unwrap(),
                s["unassigned"].as_u64().unwrap(),
                s["rounds"].as_u64().unwrap(),
                s["balance"]["min"].as_u64().unwrap(),
                s["balance"]["max"].as_u64().unwrap(),
            ]
        })
        .collect()
}

const SMALL: [&str; 10] = [
    "assign-sim",
    "--members",
    "3",
    "--topics",
    "t:6",
    "--step",
    "join 1",
    "--step",
    "crash m001",
    "--format=json",
];

#[test]
fn range_and_cooperative_sticky_on_a_case_worked_out_by_hand() {
    let mut args = SMALL.to_vec();
    args.extend(["--assignor", "range", "--assignor", "cooperative-sticky"]);
    let runs = json(&args);
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["assignor"], "range");
    assert_eq!(runs[0]["protocol"], "eager");
    // Start: 2 each. Join: range gives m000 0-1, m001 2-3, m002 4, m003 5; everyone revokes
    // all 6 first, and only 5 changes hands. Crash of m001 (2-3): 2 lost; range over m000,
    // m002, m003 gives 0-1, 2-3, 4-5: the survivors revoke their 4, and m002's 4 moves.
    assert_eq!(
        numbers(&runs[0]),
        [
            [0, 0, 0, 0, 1, 2, 2],
            [1, 6, 0, 0, 1, 1, 2],
            [1, 4, 2, 0, 1, 2, 2]
        ]
    );
    assert_eq!(runs[1]["protocol"], "cooperative");
    let cooperative = numbers(&runs[1]);
    // Join: 2, 2, 1, 1 with one partition revoked in round one and handed over in round two.
    assert_eq!(cooperative[1], [1, 1, 0, 0, 2, 1, 2]);
    // Crash: nobody revokes; what m001 had is spread over the others.
    assert_eq!(cooperative[2][0..2], [0, 0]);
    assert_eq!(cooperative[2][4..], [1, 2, 2]);
    for step in runs[1]["steps"].as_array().unwrap() {
        let rounds = step["assign_seconds"].as_array().unwrap();
        assert_eq!(rounds.len() as u64, step["rounds"].as_u64().unwrap());
        assert!(rounds.iter().all(|s| s.as_f64().unwrap() >= 0.0));
    }
}

#[test]
fn a_scenario_file_with_racks_reports_rack_locality_per_topic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("racks.toml");
    // One replica per partition: partition p on rack r(p % 2). Members a (r0) and b (r1).
    std::fs::write(
        &path,
        r#"
racks = 2
replication = 1
steps = ["grow t:8"]
[[topics]]
name = "t"
partitions = 4
[[topics]]
name = "u"
partitions = 2
replica_racks = [["r1"], ["r1"]]
[[members]]
id = "a"
rack = "r0"
[[members]]
id = "b"
rack = "r1"
topics = ["t"]
"#,
    )
    .unwrap();
    let runs = json(&[
        "assign-sim",
        "--scenario",
        path.to_str().unwrap(),
        "--assignor",
        "range",
        "--format",
        "json",
    ]);
    let start = &runs[0]["steps"][0];
    // Range: t 0-1 to a (r0: 0 local), 2-3 to b (r1: 3 local); u 0-1 to a (both on r1,
    // remote). Local: partition 0 and 3 of 6.
    assert_eq!(start["rack_local"].as_f64().unwrap(), 2.0 / 6.0);
    assert_eq!(start["balance_per_topic"]["t"]["min"], 2);
    assert_eq!(start["balance_per_topic"]["u"]["max"], 2);
    assert_eq!(runs[0]["steps"][1]["partitions"], 10);
    // The table says the same for people.
    let table = wasmkafka(&[
        "assign-sim",
        "--scenario",
        path.to_str().unwrap(),
        "--assignor",
        "range",
    ]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains("assignor range (eager, built-in)"),
        "{table}"
    );
    assert!(table.contains("33%"), "{table}");
    assert!(table.contains("per topic: t 2-2, u 2-2"), "{table}");
}

#[test]
fn a_wasm_assignor_runs_beside_its_builtin_twin_with_the_same_numbers() {
    let plugin = wasmkafka_tests::plugins::plugin("assignor-range");
    let mut args = SMALL.to_vec();
    args.extend([
        "--assignor",
        "range",
        "--assignor",
        plugin.to_str().unwrap(),
    ]);
    let runs = json(&args);
    assert_eq!(runs.len(), 2);
    assert_eq!(numbers(&runs[0]), numbers(&runs[1]));
    assert_eq!(runs[1]["protocol"], "eager");
    assert_eq!(runs[0]["source"], "built-in");
    assert_eq!(runs[1]["source"], plugin.to_str().unwrap());
}

#[test]
fn the_brokers_assignors_run_beside_ours_and_revoke_only_what_moves() {
    let mut args = SMALL.to_vec();
    args.extend([
        "--assignor",
        "cooperative-sticky",
        "--assignor",
        "broker-uniform",
        "--assignor",
        "broker-range",
    ]);
    let runs = json(&args);
    assert_eq!(runs.len(), 3);
    for (run, kafka) in runs[1..].iter().zip(["uniform", "range"]) {
        assert_eq!(run["assignor"], format!("broker-{kafka}"));
        assert_eq!(run["protocol"], "consumer");
        let source = run["source"].as_str().unwrap();
        assert!(source.contains(&format!("`{kafka}`")), "{source}");
    }
    // Join: cooperative-sticky needs two rebalances to move one partition; the broker moves
    // it in one target, revoking only it. Crash of m001 (2-3, lost): uniform hands them to
    // m002 and m003 without revoking anything; range recomputes 0-1, 2-3, 4-5 over m000,
    // m002, m003, so m002 revokes 4 for m003.
    assert_eq!(numbers(&runs[0])[1], [1, 1, 0, 0, 2, 1, 2]);
    assert_eq!(
        numbers(&runs[1]),
        [
            [0, 0, 0, 0, 1, 2, 2],
            [1, 1, 0, 0, 1, 1, 2],
            [0, 0, 2, 0, 1, 2, 2]
        ]
    );
    assert_eq!(
        numbers(&runs[2]),
        [
            [0, 0, 0, 0, 1, 2, 2],
            [1, 1, 0, 0, 1, 1, 2],
            [1, 1, 2, 0, 1, 2, 2]
        ]
    );
    let table = wasmkafka(&[
        "assign-sim",
        "--members",
        "2",
        "--topics",
        "t:4",
        "--assignor",
        "broker-uniform",
    ]);
    assert!(table.status.success());
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains(
            "assignor broker-uniform (consumer, broker-side: Apache Kafka's `uniform`, simulated)"
        ),
        "{table}"
    );
    assert!(table.contains("without a group-wide pause"), "{table}");
}

/// The README's line comparing cooperative-sticky with the broker's `uniform` runs as written
/// (in bash, this build's binary first on PATH), and again with `--format json` for numbers:
/// 3 members on 2 x 6 partitions, a fourth joins; both move 3 partitions, cooperative-sticky
/// in two rebalances, the broker in one target.
#[test]
fn the_readme_broker_assignor_line_runs_as_written() {
    let line = wasmkafka_tests::readme::readme_block("sh", "--assignor broker-uniform")
        .trim()
        .to_string();
    assert!(line.starts_with("wasmkafka assign-sim "), "{line}");
    let bash = |script: &str| {
        run_shell_script(
            script,
            std::path::Path::new(env!("CARGO_BIN_EXE_wasmkafka")),
            None,
        )
    };
    let table = String::from_utf8(bash(&line)).unwrap();
    assert!(
        table.contains("assignor cooperative-sticky (cooperative"),
        "{table}"
    );
    assert!(
        table.contains("assignor broker-uniform (consumer"),
        "{table}"
    );
    let runs: Vec<Value> = serde_json::from_slice(&bash(&format!("{line} --format json"))).unwrap();
    assert_eq!(runs.len(), 2);
    let join = |run: &Value| numbers(run)[1];
    assert_eq!(join(&runs[0]), [3, 3, 0, 0, 2, 3, 3]);
    assert_eq!(join(&runs[1]), [3, 3, 0, 0, 1, 3, 3]);
}

#[test]
fn bad_input_names_the_fix() {
    let failing = |args: &[&str]| {
        let output = wasmkafka(args);
        assert!(!output.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let error = failing(&[
        "assign-sim",
        "--members",
        "2",
        "--topics",
        "t:2",
        "--assignor",
        "nope",
    ]);
    assert!(error.contains("neither a built-in (range, roundrobin, sticky, cooperative-sticky)"));
    assert!(
        error.contains("the broker's (broker-uniform, broker-range)"),
        "{error}"
    );
    let error = failing(&[
        "assign-sim",
        "--members",
        "2",
        "--topics",
        "t:2",
        "--assignor",
        "uniform",
    ]);
    assert!(error.contains("simulate it as `broker-uniform`"), "{error}");
    let error = failing(&[
        "assign-sim",
        "--members",
        "2",
        "--topics",
        "t:2",
        "--step",
        "leave m7",
    ]);
    assert!(error.contains("no member `m7`"), "{error}");
    let error = failing(&["assign-sim", "--members", "2", "--topics", "t"]);
    assert!(error.contains("TOPIC:PARTITIONS"), "{error}");
    let error = failing(&["assign-sim"]);
    assert!(error.contains("--members N --topics"), "{error}");
}

/// The README's first lab line runs as written (in bash, in a directory where
/// `my_assignor.wasm` is the range assignor built as a plugin): three assignors side by side,
/// the plugin with range's numbers.
#[test]
fn the_readme_lab_line_with_a_plugin_runs_as_written() {
    let line = wasmkafka_tests::readme::readme_block("sh", "--assignor my_assignor.wasm")
        .trim()
        .to_string();
    assert!(line.starts_with("wasmkafka assign-sim "), "{line}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        wasmkafka_tests::plugins::plugin("assignor-range"),
        dir.path().join("my_assignor.wasm"),
    )
    .unwrap();
    let stdout = run_shell_script(
        &format!("{line} --format json"),
        std::path::Path::new(env!("CARGO_BIN_EXE_wasmkafka")),
        Some(dir.path()),
    );
    let runs: Vec<Value> = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[2]["source"], "my_assignor.wasm");
    assert_eq!(numbers(&runs[0]), numbers(&runs[2]));
}
