//! `wasmkafka plugin new`: the crates it makes build as they are, pass their own tests and
//! `wasmkafka plugin check`, and the config their README shows runs as it stands against
//! Apache Kafka.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wasmkafka_tests::bounded::BoundedOutput;
use wasmkafka_tests::kafka::Kafka;

fn wasmkafka(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmkafka"))
        .args(args)
        .bounded_output()
        .unwrap()
}

/// Runs cargo in `dir` with a target folder shared by these tests (dependencies build once).
fn cargo(dir: &Path, args: &[&str]) {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-new");
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", &target)
        // A cold build of the SDK's dependencies for wasm32 takes minutes on 2 cores.
        .output_within(std::time::Duration::from_secs(1800))
        .unwrap();
    assert!(
        output.status.success(),
        "cargo {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The TOML block of a README.
fn readme_config(readme: &str) -> String {
    let start = readme.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = start + readme[start..].find("```").expect("the block ends");
    readme[start..end].to_string()
}

/// Runs `wasmkafka run` in `dir` with the config the README of the crate there shows, as a
/// user who copied it would (the plugin where `cargo build` in that folder puts it).
fn run_readme_config(dir: &Path, wasm: &Path, extra: &[&str]) -> Output {
    let built = dir.join("target/wasm32-wasip2/release");
    std::fs::create_dir_all(&built).unwrap();
    std::fs::copy(wasm, built.join(wasm.file_name().unwrap())).unwrap();
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    std::fs::write(dir.join("wasmkafka.toml"), readme_config(&readme)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_wasmkafka"))
        .args(["run", "--config", "wasmkafka.toml", "--format", "json"])
        .args(extra)
        .env("WASMKAFKA_LOG", "info")
        .current_dir(dir)
        .bounded_output()
        .unwrap()
}

#[test]
fn new_plugins_build_test_and_pass_the_check() {
    let broker = Kafka::shared();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(broker.create_topic("scaffolded", 2, &[]))
        .unwrap();
    let produced = wasmkafka(&[
        "produce",
        "--brokers",
        &broker.addr(),
        "--topic",
        "scaffolded",
        "--count",
        "20",
    ]);
    assert!(produced.status.success(), "{produced:?}");
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_str().unwrap();
    for (kind, name, expect) in [
        ("reset-policy", "my-policy", "smoke:    no committed offset"),
        ("assignor", "my-assignor", "log debug assigning members=3"),
    ] {
        let output = wasmkafka(&["plugin", "new", kind, name, "--path", base]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let crate_dir = dir.path().join(name);
        for file in ["Cargo.toml", "src/lib.rs", "README.md", ".gitignore"] {
            assert!(crate_dir.join(file).exists(), "{file}");
        }
        cargo(&crate_dir, &["test", "--quiet"]);
        cargo(
            &crate_dir,
            &["build", "--release", "--quiet", "--target", "wasm32-wasip2"],
        );
        let wasm = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("plugin-new/wasm32-wasip2/release")
            .join(format!("{}.wasm", name.replace('-', "_")));
        let output = wasmkafka(&["plugin", "check", wasm.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains(&format!("name:     {name}")), "{stdout}");
        assert!(stdout.contains(expect), "{stdout}");
        assert!(stdout.contains("smoke:"), "{stdout}");
        // The README's config, as it stands, in a group on Apache Kafka.
        let group = format!("scaffolded-{name}");
        let brokers = broker.addr();
        let mut args = vec![
            "--brokers",
            &brokers,
            "--topic",
            "scaffolded",
            "--group",
            &group,
        ];
        if kind == "assignor" {
            args.extend(["--from", "earliest", "--max-records", "20"]);
        } else {
            // The scaffold's policy starts a new group at the end: nothing to read.
            args.push("--exit-at-end");
        }
        let ran = run_readme_config(&crate_dir, &wasm, &args);
        let log = String::from_utf8_lossy(&ran.stderr);
        assert!(ran.status.success(), "{kind}: {log}");
        if kind == "assignor" {
            // The group chose the plugin: the README names it first.
            assert!(log.contains(&format!("protocol_name={name}")), "{log}");
            assert_eq!(String::from_utf8_lossy(&ran.stdout).lines().count(), 20);
            two_members_share_the_topic_through_the_plugin(&crate_dir, &brokers, &group, name);
        } else {
            assert!(log.contains("reset-policy plugin loaded"), "{log}");
        }
    }
    // The same name again, and a name cargo would refuse.
    let output = wasmkafka(&["plugin", "new", "assignor", "my-assignor", "--path", base]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("exists already"));
    let output = wasmkafka(&["plugin", "new", "assignor", "My Plugin", "--path", base]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a usable crate name"));
}

#[test]
fn plugin_test_compares_recorded_cases_and_fails_on_a_difference() {
    let dir = tempfile::tempdir().unwrap();
    let reset = dir.path().join("rewind.toml");
    std::fs::write(
        &reset,
        r#"
[[case]]
name = "rewind 5 before the committed offset"
reason = "no-committed-offset"
committed = 50
log_start = 10
high_watermark = 100
settings = { records = "5" }
expect = "offset:45"

[[case]]
name = "out of range: 5 before the end"
reason = "out-of-range:3"
log_start = 10
high_watermark = 100
settings = { records = "5" }
expect = "offset:95"
"#,
    )
    .unwrap();
    let rewind = wasmkafka_tests::plugins::plugin("reset-rewind");
    let output = wasmkafka(&[
        "plugin",
        "test",
        rewind.to_str().unwrap(),
        "--scenario",
        reset.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("2 passed, 0 failed"), "{stdout}");

    // An assignor, from a folder, with one case that expects the wrong thing.
    let cases = dir.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    std::fs::write(
        cases.join("range.toml"),
        r#"
[[case]]
name = "two members share six partitions"
topics = ["t:6"]
members = [{ id = "a" }, { id = "b" }]
expect = { a = ["t:0", "t:1", "t:2"], b = ["t:3", "t:4", "t:5"] }

[[case]]
name = "a wrong expectation"
topics = ["t:2"]
members = [{ id = "a" }, { id = "b" }]
expect = { a = ["t:0", "t:1"] }
"#,
    )
    .unwrap();
    let range = wasmkafka_tests::plugins::plugin("assignor-range");
    let output = wasmkafka(&[
        "plugin",
        "test",
        range.to_str().unwrap(),
        "--scenario",
        cases.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stdout.contains("pass  two members share six partitions"),
        "{stdout}"
    );
    assert!(stdout.contains("FAIL  a wrong expectation"), "{stdout}");
    assert!(stdout.contains("1 passed, 1 failed"), "{stdout}");
}

/// The assignor that plugins/README.md shows how to write, copied as a reader would: its
/// Cargo.toml lines and src/lib.rs in a crate under `plugins/assignors/`, next to the SDK. It
/// builds for wasm32-wasip2 without a warning and passes `wasmkafka plugin check`.
#[test]
fn the_plugin_readme_example_builds_and_passes_the_check() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(repo.join("plugins/README.md")).unwrap();
    let section = &readme[readme.find("## Writing an assignor").expect("the section")..];
    let block = |fence: &str| {
        let start = section.find(fence).expect("a block") + fence.len();
        let end = start + section[start..].find("```").expect("the block ends");
        section[start..end].to_string()
    };
    let manifest = block("```toml\n");
    let lib = block("```rust\n");
    // The block's path is relative to plugins/assignors/<crate>: point it at the SDK.
    let sdk = repo.join("plugins/sdk").canonicalize().unwrap();
    assert!(manifest.contains("path = \"../../sdk\""), "{manifest}");
    let manifest = manifest.replace("../../sdk", sdk.to_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("plugins/assignors/topic-per-member");
    std::fs::create_dir_all(crate_dir.join("src")).unwrap();
    std::fs::write(
        crate_dir.join("Cargo.toml"),
        format!("[package]\nname = \"topic-per-member\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n{manifest}"),
    )
    .unwrap();
    std::fs::write(crate_dir.join("src/lib.rs"), lib).unwrap();
    // Warnings in the example itself are errors (its dependencies build as usual).
    cargo(
        &crate_dir,
        &[
            "rustc",
            "--release",
            "--quiet",
            "--target",
            "wasm32-wasip2",
            "--",
            "-D",
            "warnings",
        ],
    );
    let wasm = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("plugin-new/wasm32-wasip2/release/topic_per_member.wasm");
    let output = wasmkafka(&["plugin", "check", wasm.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("name:     topic-per-member"), "{stdout}");
    assert!(stdout.contains("valid; 9 assigned"), "{stdout}");
}

/// Two members run with the README's config in one group (the first read everything and
/// committed): the group's assignor is the plugin for both, and each holds one of the two
/// partitions.
fn two_members_share_the_topic_through_the_plugin(
    crate_dir: &Path,
    brokers: &str,
    group: &str,
    name: &str,
) {
    use std::time::Duration;
    use wasmkafka_tests::cli_member::CliMember;
    let binary = Path::new(env!("CARGO_BIN_EXE_wasmkafka"));
    let args = [
        "--config",
        "wasmkafka.toml",
        "--brokers",
        brokers,
        "--topic",
        "scaffolded",
        "--group",
        group,
    ];
    let chose_plugin = format!("protocol_name={name}");
    let holds_one = |member: &CliMember| {
        member
            .log()
            .lines()
            .rev()
            .find(|l| l.contains("partitions assigned") || l.contains("partitions revoked"))
            .is_some_and(|l| l.contains("partitions assigned"))
            && member.log().contains(&chose_plugin)
    };
    let mut first =
        CliMember::start_in("first", binary, Some(crate_dir), &args, (0, Duration::ZERO));
    first.wait_for_log("partitions assigned", Duration::from_secs(60));
    let mut second = CliMember::start_in(
        "second",
        binary,
        Some(crate_dir),
        &args,
        (0, Duration::ZERO),
    );
    second.wait_until("a share through the plugin", Duration::from_secs(60), |m| {
        holds_one(m)
    });
    // The first gave one partition up in the new round (eager: all, then one back).
    first.wait_until("its share of the new round", Duration::from_secs(60), |m| {
        m.log_count("partitions assigned") >= 2 && holds_one(m)
    });
    let second_log = second.stop_cleanly(Duration::from_secs(20)).log;
    let first_log = first.stop_cleanly(Duration::from_secs(20)).log;
    for log in [&first_log, &second_log] {
        assert!(log.contains(&chose_plugin), "{log}");
        let last = log
            .lines()
            .rev()
            .find(|l| l.contains("partitions assigned"))
            .unwrap();
        assert_eq!(
            last.matches("topic: \"scaffolded\"").count(),
            1,
            "one partition each: {last}"
        );
    }
}
