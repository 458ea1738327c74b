//! Packaging: the man pages and shell completions the binary prints, the archives
//! `scripts/release.sh` makes (names, contents, SHA256SUMS, reproducible bytes, binaries that
//! run), the static musl build consuming from Apache Kafka through Wasm plugins, and the
//! Dockerfile's image assembled by its own commands and started in an empty root, as `scratch`
//! starts it.
//!
//! The glibc archive is made once per test process with the dev profile (the release profile
//! changes nothing these tests look at, and would double the suite's compile time). The musl
//! tests build what a release ships (the release profile, for a target whose dependencies are
//! all compiled anew: the longest build of the suite), so they run only with
//! `WASMKAFKA_TEST_MUSL=1`; otherwise they print `SKIPPED` and why to the terminal (past the
//! test harness's capture) and pass. With it, a machine without the musl rustup target or
//! musl-gcc fails them (scripts/setup.sh installs both). The Dockerfile built whole in
//! containers (its build stage on the stand-in base image scripts/rust-base-image.sh makes)
//! compiles the release once more, so it takes `WASMKAFKA_TEST_CONTAINER_BUILD=1` as well.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use clap::CommandFactory;
use wasmkafka::cli::Cli;
use wasmkafka_tests::bounded::BoundedOutput;
use wasmkafka_tests::cli_member::CliMember;
use wasmkafka_tests::kafka::Kafka;
use wasmkafka_tests::plugins::plugin;

const GNU: &str = "x86_64-unknown-linux-gnu";
const MUSL: &str = "x86_64-unknown-linux-musl";
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// A cold build of every dependency for the musl target, on a busy 2-core machine.
const BUILD_BOUND: Duration = Duration::from_secs(45 * 60);
/// The same build inside a container (crates downloaded anew, nothing cached), plus the image.
const CONTAINER_BUILD_BOUND: Duration = Duration::from_secs(60 * 60);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
}

fn succeeded(what: &str, output: &Output) -> String {
    assert!(
        output.status.success(),
        "{what}: {:?}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Says on the terminal itself, not into the captured output of a passing test, that a test
/// did not do its work.
fn skipped(test: &str, reason: &str) {
    let _ = writeln!(std::io::stderr(), "\nSKIPPED {test}: {reason}\n");
}

/// Whether the musl tests were asked for; says SKIPPED when not.
fn musl_asked(test: &str) -> bool {
    let asked = std::env::var_os("WASMKAFKA_TEST_MUSL").is_some_and(|v| v == "1");
    if !asked {
        skipped(
            test,
            "the static musl build is tested only with WASMKAFKA_TEST_MUSL=1 \
             (a release build of every dependency for x86_64-unknown-linux-musl)",
        );
    } else if let Some(reason) = musl_missing() {
        panic!("WASMKAFKA_TEST_MUSL=1, but {reason}: scripts/setup.sh installs it");
    }
    asked
}

/// Why this machine cannot build for musl (what scripts/release.sh checks), or None.
fn musl_missing() -> Option<String> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc runs");
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if !Path::new(&sysroot).join("lib/rustlib").join(MUSL).is_dir() {
        return Some(format!("the rustup target {MUSL} is not installed"));
    }
    let gcc = Command::new("sh")
        .args(["-c", "command -v musl-gcc"])
        .output()
        .expect("sh runs");
    (!gcc.status.success()).then(|| "musl-gcc is not installed".to_string())
}

/// `scripts/release.sh ARGS --out DIR` into a fresh DIR; returns DIR.
fn run_release(dir: PathBuf, args: &[&str]) -> PathBuf {
    let _ = std::fs::remove_dir_all(&dir);
    let output = Command::new(repo().join("scripts/release.sh"))
        .args(args)
        .arg("--out")
        .arg(&dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .output_within(BUILD_BOUND)
        .unwrap();
    succeeded(&format!("scripts/release.sh {args:?}"), &output);
    dir
}

/// Held by every test that builds the glibc binary or runs it from the target directory: a
/// build links the binary anew there, and for a moment it is missing.
fn target_binary_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The glibc archive (`--profile dev`), made once per process.
fn gnu_release() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        run_release(
            target_dir().join("packaging-test/gnu"),
            &["--profile", "dev", "--target", GNU],
        )
    })
}

/// The musl archive as a release makes it, once per process.
fn musl_release() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        run_release(
            target_dir().join("packaging-test/musl"),
            &["--target", MUSL],
        )
    })
}

fn archive_name(target: &str) -> String {
    format!("wasmkafka-{VERSION}-{target}.tar.gz")
}

/// Unpacks an archive into a fresh directory; returns it and the archive's top directory.
fn unpack(archive: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    succeeded(
        "tar -x",
        &Command::new("tar")
            .arg("-xzf")
            .arg(archive)
            .arg("-C")
            .arg(dir.path())
            .output()
            .unwrap(),
    );
    let name = archive.file_name().unwrap().to_str().unwrap();
    let top = dir.path().join(name.trim_end_matches(".tar.gz"));
    (dir, top)
}

/// The subcommands a user can type, nested ones as `groups-list`.
fn subcommands() -> Vec<String> {
    fn walk(prefix: &str, command: &clap::Command, into: &mut Vec<String>) {
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = format!("{prefix}{}", sub.get_name());
            into.push(name.clone());
            walk(&format!("{name}-"), sub, into);
        }
    }
    let mut names = Vec::new();
    walk("", &Cli::command(), &mut names);
    names
}

#[test]
fn man_pages_cover_every_subcommand_and_its_flags() {
    let _binary = target_binary_lock();
    gnu_release();
    let dir = tempfile::tempdir().unwrap();
    let binary = env!("CARGO_BIN_EXE_wasmkafka");
    succeeded(
        "wasmkafka man --out-dir",
        &Command::new(binary)
            .arg("man")
            .arg("--out-dir")
            .arg(dir.path())
            .bounded_output()
            .unwrap(),
    );
    let page = |name: &str| {
        std::fs::read_to_string(dir.path().join(name))
            .unwrap_or_else(|error| panic!("{name}: {error}"))
    };
    let main = page("wasmkafka.1");
    assert!(main.contains(".TH wasmkafka 1"), "{main}");
    assert!(main.contains(&format!("wasmkafka {VERSION}")), "{main}");
    let names = subcommands();
    for name in ["run", "groups-list", "offsets-plan", "completions", "man"] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    for name in &names {
        let sub = page(&format!("wasmkafka-{name}.1"));
        assert!(sub.contains(&format!(".TH wasmkafka-{name} 1")), "{sub}");
        if !name.contains('-') {
            assert!(main.contains(&format!("wasmkafka\\-{name}(1)")), "{name}");
        }
    }
    let run = page("wasmkafka-run.1");
    for flag in ["topic", "group", "max\\-records", "format\\-string"] {
        assert!(run.contains(&format!("\\-\\-{flag}")), "--{flag}:\n{run}");
    }
    // Without --out-dir: the main page on stdout.
    let stdout = succeeded(
        "wasmkafka man",
        &Command::new(binary).arg("man").bounded_output().unwrap(),
    );
    assert!(stdout.starts_with(".ie \\n(.g .ds Aq"), "{stdout}");
    assert!(stdout.contains(".TH wasmkafka 1"), "{stdout}");
}

/// Asks bash's completion function for the words after `line`, as a user's TAB does.
fn bash_completes(script: &Path, line: &str) -> Vec<String> {
    let program = r#"source "$1"
COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}
read -r -a COMP_WORDS <<< "$COMP_LINE"
[[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
_wasmkafka wasmkafka "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}""#;
    let output = Command::new("bash")
        .args(["-c", program, "bash"])
        .arg(script)
        .arg(line)
        .bounded_output()
        .unwrap();
    succeeded(&format!("completing `{line}`"), &output)
        .lines()
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn shell_completions_complete_real_subcommands_and_flags() {
    let (_dir, top) = unpack(&gnu_release().join(archive_name(GNU)));
    let bash = top.join("completions/wasmkafka.bash");
    let top_level = bash_completes(&bash, "wasmkafka ");
    for name in ["run", "metadata", "produce", "groups", "offsets", "man"] {
        assert!(top_level.iter().any(|w| w == name), "{name}: {top_level:?}");
    }
    assert_eq!(bash_completes(&bash, "wasmkafka gr"), ["groups"]);
    let run_flags = bash_completes(&bash, "wasmkafka run --to");
    assert_eq!(run_flags, ["--topic", "--topic-pattern"]);
    let groups = bash_completes(&bash, "wasmkafka groups ");
    for name in ["list", "describe", "delete", "delete-offsets"] {
        assert!(groups.iter().any(|w| w == name), "{name}: {groups:?}");
    }
    // zsh and fish: their own formats, naming every top-level subcommand.
    let zsh = std::fs::read_to_string(top.join("completions/_wasmkafka")).unwrap();
    let fish = std::fs::read_to_string(top.join("completions/wasmkafka.fish")).unwrap();
    assert!(zsh.starts_with("#compdef wasmkafka"), "{zsh}");
    for name in subcommands().iter().filter(|n| !n.contains('-')) {
        assert!(zsh.contains(&format!("'{name}:")), "zsh: {name}");
        assert!(fish.contains(&format!("-a \"{name}\"")), "fish: {name}");
    }
}

/// The README's install line runs as written, with `--debug` (the dev profile the rest of the
/// suite builds) and a temporary `--root`: it installs a binary that runs.
#[test]
fn the_readme_cargo_install_line_installs_a_working_binary() {
    let _binary = target_binary_lock();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with("cargo install "))
        .expect("the README's install line");
    let command = line.split('#').next().unwrap().trim();
    assert_eq!(command, "cargo install --locked --path host");
    let root = tempfile::tempdir().unwrap();
    let script = format!("{command} --debug --root {}", root.path().display());
    succeeded(
        &script,
        &Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(repo())
            .env("CARGO_TARGET_DIR", target_dir())
            .output_within(BUILD_BOUND)
            .unwrap(),
    );
    let version = succeeded(
        "the installed wasmkafka --version",
        &Command::new(root.path().join("bin/wasmkafka"))
            .arg("--version")
            .bounded_output()
            .unwrap(),
    );
    assert!(
        version.starts_with(&format!("wasmkafka {VERSION} ")),
        "{version}"
    );
}

/// What every archive holds: the binary, the README, the completions, a page per command.
fn expected_entries(top: &str) -> Vec<String> {
    let mut entries: Vec<String> = [
        "",
        "README.md",
        "completions/",
        "completions/_wasmkafka",
        "completions/wasmkafka.bash",
        "completions/wasmkafka.fish",
        "man/",
        "man/wasmkafka.1",
        "wasmkafka",
    ]
    .iter()
    .map(|e| e.to_string())
    .collect();
    if repo().join("LICENSE").exists() {
        entries.push("LICENSE".to_string());
    }
    entries.extend(subcommands().iter().map(|n| format!("man/wasmkafka-{n}.1")));
    let mut entries: Vec<String> = entries.iter().map(|e| format!("{top}/{e}")).collect();
    entries.sort();
    entries
}

/// SHA256SUMS names exactly the archives of `targets` and `sha256sum -c` accepts it; each
/// archive holds what [`expected_entries`] lists, and its binary prints the version.
fn check_archives(dir: &Path, targets: &[&str]) {
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let listed: Vec<&str> = sums
        .lines()
        .map(|l| l.split_once("  ").expect("sha256sum's format").1)
        .collect();
    let names: Vec<String> = targets.iter().map(|t| archive_name(t)).collect();
    assert_eq!(listed, names);
    succeeded(
        "sha256sum -c SHA256SUMS",
        &Command::new("sha256sum")
            .args(["-c", "--strict", "SHA256SUMS"])
            .current_dir(dir)
            .bounded_output()
            .unwrap(),
    );
    for target in targets {
        let archive = dir.join(archive_name(target));
        let listing = succeeded(
            "tar -t",
            &Command::new("tar")
                .arg("-tzf")
                .arg(&archive)
                .bounded_output()
                .unwrap(),
        );
        let mut entries: Vec<String> = listing
            .lines()
            .map(|l| l.trim_end_matches('/').to_string())
            .collect();
        entries.sort();
        let top = format!("wasmkafka-{VERSION}-{target}");
        let expected: Vec<String> = expected_entries(&top)
            .iter()
            .map(|e| e.trim_end_matches('/').to_string())
            .collect();
        assert_eq!(entries, expected, "{target}");
        let (_dir, unpacked) = unpack(&archive);
        let version = succeeded(
            "wasmkafka --version",
            &Command::new(unpacked.join("wasmkafka"))
                .arg("--version")
                .bounded_output()
                .unwrap(),
        );
        assert!(
            version.starts_with(&format!("wasmkafka {VERSION} (plugin contracts")),
            "{target}: {version}"
        );
    }
}

#[test]
fn release_archive_verifies_holds_the_docs_and_its_binary_runs() {
    let _binary = target_binary_lock();
    check_archives(gnu_release(), &[GNU]);
    // The same sources make the same bytes (sorted entries, fixed owner and times, gzip -n).
    let again = run_release(
        target_dir().join("packaging-test/gnu-again"),
        &["--profile", "dev", "--target", GNU],
    );
    let bytes = |dir: &Path| std::fs::read(dir.join(archive_name(GNU))).unwrap();
    assert!(bytes(&again) == bytes(gnu_release()), "not reproducible");
}

#[test]
fn musl_release_archive_verifies_and_its_binary_runs() {
    if musl_asked("musl_release_archive_verifies_and_its_binary_runs") {
        check_archives(musl_release(), &[MUSL]);
    }
}

/// The program headers of an ELF executable: true when one asks for a dynamic loader.
fn asks_for_a_loader(binary: &Path) -> bool {
    let elf = std::fs::read(binary).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    (0..count).any(|i| {
        let at = phoff + i * size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == PT_INTERP
    })
}

/// The musl archive's binary, unpacked, or None (said loudly) when not asked for.
fn musl_binary(test: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    if !musl_asked(test) {
        return None;
    }
    let (dir, top) = unpack(&musl_release().join(archive_name(MUSL)));
    Some((dir, top.join("wasmkafka")))
}

/// A group member's config as scripts/demo.sh writes it: the weighted assignor plugin with
/// this member's weight, and the rewind reset policy (start 50 records before the end).
fn demo_member_config(dir: &Path, member: &str, weight: u32) -> PathBuf {
    let config = dir.join(format!("{member}.toml"));
    std::fs::write(
        &config,
        format!(
            r#"[consumer]
heartbeat_interval_ms = 500
[plugins]
[[plugins.assignors]]
path = "{}"
settings = {{ weight = "{weight}" }}
[plugins.reset_policy]
path = "{}"
settings = {{ records = "50" }}
"#,
            plugin("assignor-weighted").display(),
            plugin("reset-rewind").display()
        ),
    )
    .unwrap();
    config
}

/// The last `partitions assigned` line of a member's log.
fn last_assignment(log: &str) -> String {
    log.lines()
        .rev()
        .find(|l| l.contains("partitions assigned") || l.contains("partitions revoked"))
        .unwrap_or_default()
        .to_string()
}

/// The demo with the static musl binary: produce, read every partition, check both plugins,
/// then a group of two whose Wasm assignor gives the member of weight 3 three of the four
/// partitions and whose Wasm reset policy starts each 50 records before its end.
#[tokio::test(flavor = "multi_thread")]
async fn musl_binary_is_static_and_runs_the_demo_on_apache_kafka() {
    let test = "musl_binary_is_static_and_runs_the_demo_on_apache_kafka";
    let Some((_dir, binary)) = tokio::task::spawn_blocking(move || musl_binary(test))
        .await
        .unwrap()
    else {
        return;
    };
    assert!(!asks_for_a_loader(&binary), "the musl binary is dynamic");
    let broker = Kafka::shared();
    let topic = "packaging-musl-demo";
    broker.create_topic(topic, 4, &[]).await.unwrap();
    let brokers = broker.addr();
    let musl = |args: &[&str]| {
        let output = Command::new(&binary).args(args).bounded_output().unwrap();
        succeeded(&format!("{args:?}"), &output)
    };
    // 100 records to each partition: batches of 100 go to the partitions in turn.
    musl(&[
        "produce",
        "--brokers",
        &brokers,
        "--topic",
        topic,
        "--count",
        "400",
        "--batch",
        "100",
    ]);
    let all = musl(&[
        "run",
        "--brokers",
        &brokers,
        "--topic",
        topic,
        "--from",
        "earliest",
        "--max-records",
        "400",
        "--format",
        "json",
        "--no-progress",
    ]);
    assert_eq!(all.lines().count(), 400);
    for (name, kind) in [
        ("assignor-weighted", "assignor"),
        ("reset-rewind", "reset-policy"),
    ] {
        let checked = musl(&["plugin", "check", plugin(name).to_str().unwrap()]);
        assert!(checked.contains(kind), "{checked}");
        assert!(checked.contains("smoke:"), "{checked}");
    }

    let config = tempfile::tempdir().unwrap();
    let member_args = |member: &str, weight: u32| {
        let path = demo_member_config(config.path(), member, weight);
        vec![
            "--config".to_string(),
            path.to_str().unwrap().to_string(),
            "--brokers".to_string(),
            brokers.clone(),
            "--topic".to_string(),
            topic.to_string(),
            "--group".to_string(),
            "packaging-musl-demo-g".to_string(),
        ]
    };
    let (heavy, light) = (member_args("heavy", 3), member_args("light", 1));
    let bin = binary.clone();
    let (heavy, light) = tokio::task::spawn_blocking(move || {
        let owns = |member: &CliMember, partitions: usize| {
            let last = last_assignment(&member.log());
            last.contains("partitions assigned")
                && last.matches(&format!("topic: \"{topic}\"")).count() == partitions
        };
        let mut heavy = CliMember::start("heavy", &bin, &heavy, (0, Duration::ZERO));
        heavy.wait_until("all four partitions", Duration::from_secs(60), |m| {
            owns(m, 4)
        });
        // Alone, it read the last 50 records of each partition (the rewind policy).
        heavy.wait_for_printed(200, Duration::from_secs(60));
        let mut light = CliMember::start("light", &bin, &light, (0, Duration::ZERO));
        light.wait_until("one partition", Duration::from_secs(60), |m| owns(m, 1));
        heavy.wait_until("three partitions", Duration::from_secs(60), |m| owns(m, 3));
        (
            heavy.stop_cleanly(Duration::from_secs(20)),
            light.stop_cleanly(Duration::from_secs(20)),
        )
    })
    .await
    .unwrap();
    for finished in [&heavy, &light] {
        assert!(finished.status.success(), "{}", finished.log);
        assert!(
            finished.log.contains("protocol_name=weighted"),
            "{}",
            finished.log
        );
    }
    let mut printed = heavy.printed.clone();
    printed.sort();
    let expected: Vec<(i64, i64)> = (0..4)
        .flat_map(|p| (50..100).map(move |o| (p, o)))
        .collect();
    assert_eq!(printed, expected, "the last 50 of each partition, once");
    assert!(
        light.printed.is_empty(),
        "its partition was committed at its end"
    );
}

/// The Dockerfile's commands from `COPY . .` on, run here as the build stage runs them (in
/// this checkout, with a temporary /dist and /image), then the image's entry point started in
/// that root alone with `chroot` (what `FROM scratch` + `COPY --from=build /image /` gives a
/// container), then the runtime stage built and run as an image with buildah, and with
/// WASMKAFKA_TEST_CONTAINER_BUILD=1 as well the whole Dockerfile built in containers by buildah.
#[test]
fn dockerfile_builds_the_image_from_the_release_archive_and_it_starts_alone() {
    let test = "dockerfile_builds_the_image_from_the_release_archive_and_it_starts_alone";
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let build_stage = dockerfile
        .split("\nFROM ")
        .find(|stage| stage.contains("AS build"))
        .expect("a build stage");
    // The prerequisites scripts/release.sh names for musl, installed before the sources arrive.
    let (setup, after_copy) = build_stage.split_once("COPY . .").expect("COPY . .");
    assert!(setup.contains("musl-tools") && setup.contains(&format!("rustup target add {MUSL}")));
    let runs: Vec<String> = after_copy
        .split("\nRUN ")
        .skip(1)
        .map(|run| run.replace("\\\n", " "))
        .map(|run| run.lines().next().unwrap().trim().to_string())
        .collect();
    let release_line = format!("scripts/release.sh --target {MUSL} --out /dist");
    assert_eq!(runs[0], release_line, "{dockerfile}");
    let runtime = dockerfile.split("\nFROM ").last().unwrap();
    assert!(runtime.starts_with("scratch"), "{runtime}");
    assert!(runtime.contains("COPY --from=build /image /"), "{runtime}");
    assert!(runtime.contains("ENTRYPOINT [\"/wasmkafka\"]"), "{runtime}");

    if !musl_asked(test) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (dist, image) = (work.path().join("dist"), work.path().join("image"));
    let rewrite = |run: &str| {
        run.replace("/dist", dist.to_str().unwrap())
            .replace("/image", image.to_str().unwrap())
    };
    for run in &runs {
        let script = rewrite(run);
        let output = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(repo())
            .env("CARGO_TARGET_DIR", target_dir())
            .output_within(BUILD_BOUND)
            .unwrap();
        succeeded(&script, &output);
    }
    let mut files: Vec<String> = walk(&image)
        .iter()
        .map(|p| p.strip_prefix(&image).unwrap().display().to_string())
        .collect();
    files.sort();
    assert_eq!(files, ["etc/ssl/certs/ca-certificates.crt", "wasmkafka"]);
    assert!(!asks_for_a_loader(&image.join("wasmkafka")));
    let am_root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if !am_root {
        let _ = writeln!(
            std::io::stderr(),
            "\nSKIPPED the chroot part of {test}: chroot needs root\n"
        );
        return;
    }
    // As the image runs it: the entry point, nobody's ids, HOME=/tmp, nothing else there.
    let output = Command::new("chroot")
        .args(["--userspec=65534:65534"])
        .arg(&image)
        .args(["/wasmkafka", "--version"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/tmp")
        .bounded_output()
        .unwrap();
    let version = succeeded("chroot IMAGE /wasmkafka --version", &output);
    assert!(version.starts_with(&format!("wasmkafka {VERSION} (plugin contracts")));
    if image_of_the_runtime_stage(test, runtime, work.path()) {
        image_of_the_whole_dockerfile(test);
    }
}

/// The Dockerfile's runtime stage, as written but with the build stage's `/image` taken from
/// `work/image`, built into an OCI image by buildah (no daemon; the build stage's base image is
/// the only thing a registry would have to give) and started by `buildah run`: its user, its
/// environment, its entry point and its default command. False when buildah is missing.
fn image_of_the_runtime_stage(test: &str, runtime: &str, work: &Path) -> bool {
    if Command::new("buildah").arg("--version").output().is_err() {
        let _ = writeln!(
            std::io::stderr(),
            "\nSKIPPED the image part of {test}: buildah not found (Debian: apt install buildah)\n"
        );
        return false;
    }
    let containerfile =
        format!("FROM {runtime}").replace("COPY --from=build /image /", "COPY image /");
    std::fs::write(work.join("Containerfile"), &containerfile).unwrap();
    let tag = format!("localhost/wasmkafka-test-{}", std::process::id());
    let buildah = |args: &[&str]| {
        let output = Command::new("buildah")
            .args(["--storage-driver", "vfs"])
            .args(args)
            .current_dir(work)
            .bounded_output()
            .unwrap();
        succeeded(&format!("buildah {}", args.join(" ")), &output)
    };
    buildah(&[
        "bud",
        "--isolation",
        "chroot",
        "-t",
        &tag,
        "-f",
        "Containerfile",
        ".",
    ]);
    let config = buildah(&["inspect", "--type", "image", "--format", "{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.Cmd}} {{.OCIv1.Config.Env}}", &tag]);
    assert!(
        config.starts_with("65534:65534 [/wasmkafka] [--help]"),
        "{config}"
    );
    assert!(config.contains("HOME=/tmp"), "{config}");
    let container = buildah(&["from", &tag]).trim().to_string();
    // The default command: the image starts and prints its help.
    let help = buildah(&[
        "run",
        "--isolation",
        "chroot",
        &container,
        "--",
        "/wasmkafka",
        "--help",
    ]);
    let version = buildah(&[
        "run",
        "--isolation",
        "chroot",
        &container,
        "--",
        "/wasmkafka",
        "--version",
    ]);
    let _ = buildah(&["rm", &container]);
    let _ = buildah(&["rmi", &tag]);
    assert!(help.contains("Usage: wasmkafka"), "{help}");
    assert!(
        version.starts_with(&format!("wasmkafka {VERSION} (plugin contracts")),
        "{version}"
    );
    true
}

/// The whole Dockerfile as written, both stages run by buildah in containers, with the build
/// stage's base image made by scripts/rust-base-image.sh (`--build-arg RUST_IMAGE`: no registry
/// needed), then the image started. Only with WASMKAFKA_TEST_CONTAINER_BUILD=1: it compiles
/// the release again, in the container.
fn image_of_the_whole_dockerfile(test: &str) {
    let asked = std::env::var_os("WASMKAFKA_TEST_CONTAINER_BUILD").is_some_and(|v| v == "1");
    if !asked {
        skipped(
            &format!("the container build of {test}"),
            "the Dockerfile's build stage runs in a container only when asked \
             (set WASMKAFKA_TEST_CONTAINER_BUILD=1; it compiles the release inside a container, \
             ~15 minutes on 2 cores)",
        );
        return;
    }
    // The README's command, as a user copies it (the stand-in base image made by the script
    // inside it), tagged `wasmkafka`.
    let readme = wasmkafka_tests::readme::readme();
    let command = readme
        .lines()
        .map(|line| line.trim().trim_matches('`'))
        .find(|line| line.starts_with("buildah ") && line.contains("RUST_IMAGE="))
        .expect("the README's buildah command for the whole Dockerfile")
        .to_string();
    assert!(command.ends_with(" -t wasmkafka ."), "{command}");
    let built = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &command])
        .current_dir(repo())
        .output_within(CONTAINER_BUILD_BOUND)
        .unwrap();
    succeeded(&command, &built);
    let tag = "localhost/wasmkafka";
    let buildah = |args: &[&str], bound: Duration| {
        let output = Command::new("buildah")
            .args(["--storage-driver", "vfs"])
            .args(args)
            .current_dir(repo())
            .output_within(bound)
            .unwrap();
        succeeded(&format!("buildah {}", args.join(" ")), &output)
    };
    let bound = Duration::from_secs(60);
    let container = buildah(&["from", tag], bound).trim().to_string();
    let version = buildah(
        &[
            "run",
            "--isolation",
            "chroot",
            &container,
            "--",
            "/wasmkafka",
            "--version",
        ],
        bound,
    );
    let _ = buildah(&["rm", &container], bound);
    let _ = buildah(&["rmi", tag], bound);
    assert!(
        version.starts_with(&format!("wasmkafka {VERSION} (plugin contracts")),
        "{version}"
    );
}

/// Every file (not directory) under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
