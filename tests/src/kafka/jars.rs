//! The Apache Kafka jars: the broker (`kafka.Kafka`), `kafka.tools.StorageTool` and the CLI
//! tools, fetched once from Maven Central with `tests/kafka/pom.xml` into the user's cache
//! ([`crate::cache`]). The versions come from [`super::versions`] (passed to Maven as `-D`
//! properties); the cache folder is named after the Kafka version and a hash of the pom and
//! those properties, so a change to either fetches afresh.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

use super::versions::{self, KafkaVersion};
use crate::cache::{cache_dir, fill_once};

/// `tests/kafka/`: the pom, the node config template, the log4j2 configs.
pub fn kafka_files() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kafka")
}

/// The Kafka version this process runs ([`versions::selected`]: `WASMKAFKA_KAFKA_VERSION`,
/// else the default).
pub fn kafka_version() -> &'static str {
    versions::selected().kafka
}

/// The folder holding the runtime classpath (its `*.jar`) of the selected version, fetched if
/// it is not cached yet. Safe to call from several processes at once (see [`fill_once`]).
pub fn kafka_lib() -> Result<PathBuf> {
    static LIB: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    LIB.get_or_init(|| kafka_lib_of(versions::selected()).map_err(|error| format!("{error:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The classpath folder of any known version, fetched if it is not cached yet
/// (`kafka-local fetch` fetches every version).
pub fn kafka_lib_of(version: &KafkaVersion) -> Result<PathBuf> {
    let pom = kafka_files().join("pom.xml");
    let pom_text = std::fs::read(&pom).with_context(|| format!("cannot read {}", pom.display()))?;
    let properties = maven_properties(version);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    pom_text.hash(&mut hasher);
    properties.hash(&mut hasher);
    let lib = cache_dir().join(format!(
        "kafka-{}-{:08x}",
        version.kafka,
        hasher.finish() as u32
    ));
    let what = format!("the Apache Kafka {} jars (Maven Central)", version.kafka);
    fill_once(&lib, &what, |lib| {
        let output = Command::new("mvn")
            .args(["-q", "-B", "-f"])
            .arg(&pom)
            .args(&properties)
            .args(["dependency:copy-dependencies", "-DincludeScope=runtime"])
            .arg(format!("-DoutputDirectory={}", lib.display()))
            .output()
            .context(
                "cannot run `mvn` (Maven): install it (Debian: apt install maven) and Java 17",
            )?;
        if !output.status.success() {
            bail!(
                "mvn could not fetch the Kafka {} jars ({}):\n{}{}",
                version.kafka,
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        check_classpath(lib, version)
    })?;
    Ok(lib)
}

/// The `-D` properties `tests/kafka/pom.xml` takes (it names no version of its own).
fn maven_properties(version: &KafkaVersion) -> Vec<String> {
    vec![
        format!("-Dkafka.version={}", version.kafka),
        format!("-Dlog4j2.version={}", version.log4j2),
        format!("-Dlog4j2.binding={}", version.log4j_binding),
        format!("-Dslf4j.version={}", version.slf4j),
    ]
}

/// The jars the harness needs are there, of the right versions.
fn check_classpath(lib: &Path, version: &KafkaVersion) -> Result<()> {
    let names: Vec<String> = std::fs::read_dir(lib)?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    let needed = [
        format!("kafka_2.13-{}.jar", version.kafka),
        format!("kafka-tools-{}.jar", version.kafka),
        format!("{}-{}.jar", version.log4j_binding, version.log4j2),
        format!("log4j-core-{}.jar", version.log4j2),
    ];
    for needed in needed {
        if !names.contains(&needed) {
            bail!("the Kafka classpath in {} lacks {needed}", lib.display());
        }
    }
    Ok(())
}

/// `java`: `$JAVA_HOME/bin/java` when set, else the one on PATH.
pub fn java() -> PathBuf {
    std::env::var_os("JAVA_HOME")
        .map(|home| PathBuf::from(home).join("bin/java"))
        .filter(|java| java.exists())
        .unwrap_or_else(|| PathBuf::from("java"))
}

/// [`java`] with the Kafka tools' log configuration and `classpath`.
pub fn java_with_tools_log(classpath: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(java());
    command
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            kafka_files().join("tools-log4j2.properties").display()
        ))
        .arg("-cp")
        .arg(classpath);
    command
}
