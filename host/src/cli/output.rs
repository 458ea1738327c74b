//! Record output for `run`: one JSON object per line, raw values (optionally with the key and
//! a delimiter first), or a kcat-style format string.
//!
//! JSON fields, in this order: `topic`, `partition`, `offset`, `timestamp`, `key`, `value`,
//! `headers` (a list of `{"key", "value"}`). A key, value or header value that is valid UTF-8
//! is a string; otherwise it is `null` and a `key_base64` / `value_base64` field carries it.
//! With `--json-values`, a key or value that is itself valid JSON is embedded as JSON.
//!
//! This is the main job's hot path: records are written straight to the output, escaping
//! strings as they go, with no JSON value built per record.

use std::io::{self, Write};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use serde::de::IgnoredAny;

use crate::fetch::ConsumerRecord;

/// How each record is written.
#[derive(Debug, Clone)]
pub enum RecordWriter {
    Json {
        /// Embed keys and values that are valid JSON as JSON.
        json_values: bool,
    },
    /// The value; with a delimiter, the key, the delimiter, then the value.
    Raw { key_delimiter: Option<Vec<u8>> },
    /// A kcat-style format string, parsed once.
    Template(Vec<Piece>),
}

/// One part of a format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    Timestamp,
    Headers,
    KeyLength,
    ValueLength,
}

impl RecordWriter {
    /// Parses a format string: `%t` topic, `%p` partition, `%o` offset, `%k` key, `%s` value,
    /// `%T` timestamp, `%h` headers (`k=v` comma separated), `%K` / `%S` key / value length
    /// (-1 for none), `%%` a percent sign; `\n`, `\t`, `\r`, `\\` escapes.
    pub fn template(format: &str) -> anyhow::Result<RecordWriter> {
        let mut pieces = Vec::new();
        let mut text = Vec::new();
        let mut chars = format.chars();
        while let Some(c) = chars.next() {
            let piece = match c {
                '%' => match chars.next() {
                    Some('t') => Piece::Topic,
                    Some('p') => Piece::Partition,
                    Some('o') => Piece::Offset,
                    Some('k') => Piece::Key,
                    Some('s') => Piece::Value,
                    Some('T') => Piece::Timestamp,
                    Some('h') => Piece::Headers,
                    Some('K') => Piece::KeyLength,
                    Some('S') => Piece::ValueLength,
                    Some('%') => {
                        text.push(b'%');
                        continue;
                    }
                    other => anyhow::bail!(
                        "--format-string: `%{}` is not a field; use %t %p %o %k %s %T %h %K %S \
                         or %% for a percent sign",
                        other.map(String::from).unwrap_or_default()
                    ),
                },
                '\\' => {
                    let escaped = match chars.next() {
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        Some('\\') => '\\',
                        Some(other) => anyhow::bail!(
                            "--format-string: `\\{other}` is not an escape; use \\n \\t \\r \\\\"
                        ),
                        None => '\\',
                    };
                    let mut buf = [0; 4];
                    text.extend_from_slice(escaped.encode_utf8(&mut buf).as_bytes());
                    continue;
                }
                other => {
                    let mut buf = [0; 4];
                    text.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                    continue;
                }
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(RecordWriter::Template(pieces))
    }

    /// Writes one record, ending with a newline (a template writes exactly what it says).
    pub fn write(&self, out: &mut impl Write, record: &ConsumerRecord) -> io::Result<()> {
        match self {
            RecordWriter::Json { json_values } => write_json(out, record, *json_values),
            RecordWriter::Raw { key_delimiter } => {
                if let Some(delimiter) = key_delimiter {
                    out.write_all(record.key.as_deref().unwrap_or_default())?;
                    out.write_all(delimiter)?;
                }
                out.write_all(record.value.as_deref().unwrap_or_default())?;
                out.write_all(b"\n")
            }
            RecordWriter::Template(pieces) => {
                for piece in pieces {
                    write_piece(out, piece, record)?;
                }
                Ok(())
            }
        }
    }
}

fn write_piece(out: &mut impl Write, piece: &Piece, record: &ConsumerRecord) -> io::Result<()> {
    let length = |bytes: &Option<Bytes>| bytes.as_ref().map_or(-1, |b| b.len() as i64);
    match piece {
        Piece::Text(text) => out.write_all(text),
        Piece::Topic => out.write_all(record.topic.as_bytes()),
        Piece::Partition => write_int(out, record.partition as i64),
        Piece::Offset => write_int(out, record.offset),
        Piece::Key => out.write_all(record.key.as_deref().unwrap_or_default()),
        Piece::Value => out.write_all(record.value.as_deref().unwrap_or_default()),
        Piece::Timestamp => write_int(out, record.timestamp),
        Piece::KeyLength => write_int(out, length(&record.key)),
        Piece::ValueLength => write_int(out, length(&record.value)),
        Piece::Headers => {
            for (index, (key, value)) in record.headers.iter().enumerate() {
                if index > 0 {
                    out.write_all(b",")?;
                }
                out.write_all(key.as_bytes())?;
                out.write_all(b"=")?;
                out.write_all(value.as_deref().unwrap_or_default())?;
            }
            Ok(())
        }
    }
}

fn write_int(out: &mut impl Write, n: i64) -> io::Result<()> {
    out.write_all(itoa::Buffer::new().format(n).as_bytes())
}

/// A JSON string, escaped as it is written.
fn write_str(out: &mut impl Write, text: &str) -> io::Result<()> {
    // Most keys and values need no escaping: copy them whole. The check has no early exit,
    // so the compiler can vectorize it.
    let needs_escape = text.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if needs_escape {
        return serde_json::to_writer(out, text).map_err(io::Error::from);
    }
    out.write_all(b"\"")?;
    out.write_all(text.as_bytes())?;
    out.write_all(b"\"")
}

/// `"name":` then the bytes as a string, JSON (with `json_values`), or `null` plus a
/// `name_base64` field.
fn write_bytes_field(
    out: &mut impl Write,
    name: &str,
    bytes: &Option<Bytes>,
    json_values: bool,
) -> io::Result<()> {
    out.write_all(b"\"")?;
    out.write_all(name.as_bytes())?;
    out.write_all(b"\":")?;
    let Some(bytes) = bytes else {
        return out.write_all(b"null");
    };
    if json_values && is_one_line_json(bytes) {
        return out.write_all(bytes);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => write_str(out, text),
        Err(_) => {
            out.write_all(b"null,\"")?;
            out.write_all(name.as_bytes())?;
            out.write_all(b"_base64\":\"")?;
            out.write_all(BASE64.encode(bytes).as_bytes())?;
            out.write_all(b"\"")
        }
    }
}

/// Valid JSON that keeps the output one record per line.
fn is_one_line_json(bytes: &[u8]) -> bool {
    !bytes.iter().any(|b| *b == b'\n' || *b == b'\r')
        && serde_json::from_slice::<IgnoredAny>(bytes).is_ok()
}

fn write_json(out: &mut impl Write, record: &ConsumerRecord, json_values: bool) -> io::Result<()> {
    out.write_all(b"{\"topic\":")?;
    write_str(out, &record.topic)?;
    out.write_all(b",\"partition\":")?;
    write_int(out, record.partition as i64)?;
    out.write_all(b",\"offset\":")?;
    write_int(out, record.offset)?;
    out.write_all(b",\"timestamp\":")?;
    write_int(out, record.timestamp)?;
    out.write_all(b",")?;
    write_bytes_field(out, "key", &record.key, json_values)?;
    out.write_all(b",")?;
    write_bytes_field(out, "value", &record.value, json_values)?;
    out.write_all(b",\"headers\":[")?;
    for (index, (key, value)) in record.headers.iter().enumerate() {
        if index > 0 {
            out.write_all(b",")?;
        }
        out.write_all(b"{\"key\":")?;
        write_str(out, key)?;
        out.write_all(b",")?;
        write_bytes_field(out, "value", value, false)?;
        out.write_all(b"}")?;
    }
    out.write_all(b"]}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::sync::Arc;

    fn record() -> ConsumerRecord {
        ConsumerRecord {
            topic: Arc::from("t\"q"),
            partition: 2,
            offset: 7,
            timestamp: 1000,
            key: Some(Bytes::from_static(b"{\"id\":1}")),
            value: Some(Bytes::from_static(&[0xff, 0x00])),
            headers: vec![
                ("h".into(), Some(Bytes::from_static(b"v\n"))),
                ("n".into(), None),
            ],
            leader_epoch: 0,
        }
    }

    fn written(writer: &RecordWriter, record: &ConsumerRecord) -> String {
        let mut out = Vec::new();
        writer.write(&mut out, record).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_escapes_them() {
        for text in [
            "",
            "plain text, 100 bytes of it",
            "quote \" and backslash \\",
            "control \u{1} \t \n \r \u{1f}",
            "unicode é ✓ \u{7f} 🦀",
        ] {
            let mut ours = Vec::new();
            write_str(&mut ours, text).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(text).unwrap()
            );
        }
    }

    #[test]
    fn utf8_is_text_and_binary_is_base64() {
        let line = written(&RecordWriter::Json { json_values: false }, &record());
        assert!(
            line.ends_with("}\n") && line.matches('\n').count() == 1,
            "{line:?}"
        );
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            value,
            json!({
                "topic": "t\"q", "partition": 2, "offset": 7, "timestamp": 1000,
                "key": "{\"id\":1}", "value": null, "value_base64": "/wA=",
                "headers": [{"key": "h", "value": "v\n"}, {"key": "n", "value": null}]
            })
        );
    }

    #[test]
    fn json_values_embed_keys_and_values_that_are_json() {
        let mut record = record();
        record.value = Some(Bytes::from_static(b"[1, 2]"));
        let value: Value =
            serde_json::from_str(&written(&RecordWriter::Json { json_values: true }, &record))
                .unwrap();
        assert_eq!(value["key"], json!({"id": 1}));
        assert_eq!(value["value"], json!([1, 2]));
        // Not JSON (or JSON over several lines): a string as before.
        record.value = Some(Bytes::from_static(b"{not json"));
        record.key = Some(Bytes::from_static(b"{\n}"));
        let value: Value =
            serde_json::from_str(&written(&RecordWriter::Json { json_values: true }, &record))
                .unwrap();
        assert_eq!(value["value"], "{not json");
        assert_eq!(value["key"], "{\n}");
    }

    #[test]
    fn a_format_string_writes_each_field() {
        let mut record = record();
        record.value = Some(Bytes::from_static(b"hello"));
        let writer = RecordWriter::template("%t|%p|%o|%k|%s|%T|%h|%K|%S|100%%\\n").unwrap();
        assert_eq!(
            written(&writer, &record),
            "t\"q|2|7|{\"id\":1}|hello|1000|h=v\n,n=|8|5|100%\n"
        );
        record.key = None;
        let writer = RecordWriter::template("%K %k.\\t").unwrap();
        assert_eq!(written(&writer, &record), "-1 .\t");
        for bad in ["%x", "%", "\\q"] {
            let error = RecordWriter::template(bad).unwrap_err().to_string();
            assert!(error.contains("--format-string"), "{error}");
        }
    }

    #[test]
    fn raw_with_a_key_delimiter() {
        let mut record = record();
        record.value = Some(Bytes::from_static(b"v"));
        let writer = RecordWriter::Raw {
            key_delimiter: Some(b"\t".to_vec()),
        };
        assert_eq!(written(&writer, &record), "{\"id\":1}\tv\n");
        let writer = RecordWriter::Raw {
            key_delimiter: None,
        };
        assert_eq!(written(&writer, &record), "v\n");
    }
}
