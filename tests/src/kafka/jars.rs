//! The Apache Kafka jars: the broker (`kafka.Kafka`), `kafka.tools.StorageTool` and the CLI
//! tools, fetched once from Maven Central with `tests/kafka/pom.xml` into the user's cache
//! ([`crate::cache`]). The pom is the one place that pins the version; the cache folder is named
//! after that version and a hash of the pom, so a change to the pom fetches afresh.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

use crate::cache::{cache_dir, fill_once};

/// `tests/kafka/`: the pom, the node config template, the log4j2 configs.
pub fn kafka_files() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kafka")
}

/// The Kafka version the pom pins (`<kafka.version>`).
pub fn kafka_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let pom = std::fs::read_to_string(kafka_files().join("pom.xml"))
            .expect("tests/kafka/pom.xml is readable");
        pom.split("<kafka.version>")
            .nth(1)
            .and_then(|rest| rest.split("</kafka.version>").next())
            .expect("tests/kafka/pom.xml names <kafka.version>")
            .trim()
            .to_string()
    })
}

/// The folder holding the runtime classpath (its `*.jar`), fetched if it is not cached yet.
/// Safe to call from several processes at once (see [`fill_once`]).
pub fn kafka_lib() -> Result<PathBuf> {
    static LIB: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    LIB.get_or_init(|| fetch_once().map_err(|error| format!("{error:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn fetch_once() -> Result<PathBuf> {
    let pom = kafka_files().join("pom.xml");
    let pom_text = std::fs::read(&pom).with_context(|| format!("cannot read {}", pom.display()))?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    pom_text.hash(&mut hasher);
    let lib = cache_dir().join(format!(
        "kafka-{}-{:08x}",
        kafka_version(),
        hasher.finish() as u32
    ));
    let what = format!("the Apache Kafka {} jars (Maven Central)", kafka_version());
    fill_once(&lib, &what, |lib| {
        let output = Command::new("mvn")
            .args(["-q", "-B", "-f"])
            .arg(&pom)
            .args(["dependency:copy-dependencies", "-DincludeScope=runtime"])
            .arg(format!("-DoutputDirectory={}", lib.display()))
            .output()
            .context(
                "cannot run `mvn` (Maven): install it (Debian: apt install maven) and Java 17",
            )?;
        if !output.status.success() {
            bail!(
                "mvn could not fetch the Kafka jars ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        check_classpath(lib)
    })?;
    Ok(lib)
}

fn check_classpath(lib: &Path) -> Result<()> {
    let names: Vec<String> = std::fs::read_dir(lib)?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    for needed in ["kafka_2.13-", "kafka-tools-", "log4j-slf4j-impl-"] {
        if !names.iter().any(|name| name.starts_with(needed)) {
            bail!(
                "the Kafka classpath in {} lacks {needed}*.jar",
                lib.display()
            );
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
