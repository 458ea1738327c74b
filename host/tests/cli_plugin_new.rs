//! `wasmkafka plugin new`: the crates it makes build as they are, pass their own tests and
//! `wasmkafka plugin check`, and the config their README shows runs as it stands against
//! Apache Kafka.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wasmkafka_tests::bounded::{assert_succeeded, BoundedOutput};
use wasmkafka_tests::cli_commands::produce_with_cli;
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
    produce_with_cli(
        Path::new(env!("CARGO_BIN_EXE_wasmkafka")),
        &broker.addr(),
        "scaffolded",
        &["--count", "20"],
    );
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_str().unwrap();
    for (kind, name, expect) in [
        ("reset-policy", "my-policy", "smoke:    no committed offset"),
        ("assignor", "my-assignor", "log debug assigning members=3"),
    ] {
        let output = wasmkafka(&["plugin", "new", kind, name, "--path", base]);
        assert_succeeded(&output, "");
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
            two_members_share_the_topic_through_the_plugin(
                &crate_dir,
                &brokers,
                "scaffolded",
                &group,
                name,
            );
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
    topic: &str,
    group: &str,
    name: &str,
) {
    use std::time::Duration;
    use wasmkafka_tests::cli_member::{group_member_args, CliMember};
    let binary = Path::new(env!("CARGO_BIN_EXE_wasmkafka"));
    let args = group_member_args("wasmkafka.toml", brokers, topic, group, &[]);
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
            last.matches(&format!("topic: \"{topic}\"")).count(),
            1,
            "one partition each: {last}"
        );
    }
}

/// The first ```sh block of a README.
fn readme_shell(readme: &str) -> String {
    let start = readme.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = start + readme[start..].find("```").expect("the block ends");
    readme[start..end].to_string()
}

/// `plugin new --lang python`: the README's commands, as they stand, build the component with
/// componentize-py and pass `plugin check` and `plugin test` on the scaffold's own cases; the
/// config the README shows runs the reset policy, and runs a two-member group on Apache Kafka
/// through the Python assignor. The README's `# once` line (a venv with componentize-py) is
/// the one not run as written: the harness makes that venv once, at the version the line
/// names, and links it where the line would put it.
#[test]
fn new_python_plugins_build_with_componentize_py_and_run_in_a_group() {
    let broker = Kafka::shared();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(broker.create_topic("scaffolded-py", 2, &[]))
        .unwrap();
    produce_with_cli(
        Path::new(env!("CARGO_BIN_EXE_wasmkafka")),
        &broker.addr(),
        "scaffolded-py",
        &["--count", "20"],
    );
    let componentize = wasmkafka_tests::python::componentize_py().unwrap();
    let venv = componentize.parent().unwrap().parent().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_wasmkafka")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_str().unwrap();
    for (kind, name, checked, tested) in [
        (
            "reset-policy",
            "py-policy",
            "smoke:    no committed offset",
            "2 passed, 0 failed",
        ),
        (
            "assignor",
            "py-assignor",
            "log debug assigning members=3",
            "1 passed, 0 failed",
        ),
    ] {
        let output = wasmkafka(&[
            "plugin", "new", kind, name, "--lang", "python", "--path", base,
        ]);
        assert_succeeded(&output, "");
        let project = dir.path().join(name);
        for file in [
            "app.py",
            "cases.toml",
            "wit/plugin.wit",
            "README.md",
            ".gitignore",
        ] {
            assert!(project.join(file).exists(), "{file}");
        }
        let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
        let shell = readme_shell(&readme);
        let (once, commands): (Vec<&str>, Vec<&str>) =
            shell.lines().partition(|line| line.ends_with("# once"));
        assert_eq!(once.len(), 1, "{shell}");
        let pinned = format!(
            "componentize-py=={}",
            wasmkafka::cli::scaffold::python::COMPONENTIZE_PY
        );
        assert!(once[0].contains(&pinned), "{}", once[0]);
        std::os::unix::fs::symlink(venv, project.join(".venv")).unwrap();
        let script = commands.join("\n");
        let output = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(&project)
            .env("PATH", &path)
            // componentize-py takes 15-20 s; compiling CPython's component, a minute or more
            // on 2 busy cores (cached after the first time).
            .output_within(std::time::Duration::from_secs(900))
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{script}\n{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains(&format!("name:     {name}")), "{stdout}");
        assert!(stdout.contains(checked), "{stdout}");
        assert!(stdout.contains(tested), "{stdout}");

        // The README's config, as it stands, in a group on Apache Kafka.
        std::fs::write(project.join("wasmkafka.toml"), readme_config(&readme)).unwrap();
        let group = format!("scaffolded-{name}");
        let brokers = broker.addr();
        let mut args = vec![
            "run",
            "--config",
            "wasmkafka.toml",
            "--format",
            "json",
            "--brokers",
            &brokers,
            "--topic",
            "scaffolded-py",
            "--group",
            &group,
        ];
        if kind == "assignor" {
            args.extend(["--from", "earliest", "--max-records", "20"]);
        } else {
            args.push("--exit-at-end");
        }
        let ran = Command::new(env!("CARGO_BIN_EXE_wasmkafka"))
            .args(&args)
            .env("WASMKAFKA_LOG", "info")
            .current_dir(&project)
            .output_within(std::time::Duration::from_secs(600))
            .unwrap();
        let log = String::from_utf8_lossy(&ran.stderr);
        assert!(ran.status.success(), "{kind}: {log}");
        if kind == "assignor" {
            assert!(log.contains(&format!("protocol_name={name}")), "{log}");
            assert_eq!(String::from_utf8_lossy(&ran.stdout).lines().count(), 20);
            two_members_share_the_topic_through_the_plugin(
                &project,
                &brokers,
                "scaffolded-py",
                &group,
                name,
            );
        } else {
            assert!(log.contains("reset-policy plugin loaded"), "{log}");
        }
    }
}
