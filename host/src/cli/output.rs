//! Record output for `run`: one JSON object per line, or raw values.
//!
//! JSON fields: `topic`, `partition`, `offset`, `timestamp`, `key`, `value`, `headers`. A key,
//! value or header value that is valid UTF-8 is a string; otherwise it is `null` and a
//! `key_base64` / `value_base64` (or `value_base64` in the header object) field carries it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::fetch::ConsumerRecord;

/// Puts `bytes` under `name` as a string, or `null` plus `name_base64` when not UTF-8.
fn put_bytes(object: &mut Map<String, Value>, name: &str, bytes: &Option<Bytes>) {
    match bytes {
        None => {
            object.insert(name.to_string(), Value::Null);
        }
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => {
                object.insert(name.to_string(), Value::String(text.to_string()));
            }
            Err(_) => {
                object.insert(name.to_string(), Value::Null);
                object.insert(
                    format!("{name}_base64"),
                    Value::String(BASE64.encode(bytes)),
                );
            }
        },
    }
}

/// The JSON object for one record.
pub fn record_json(record: &ConsumerRecord) -> Value {
    let mut object = Map::new();
    object.insert("topic".into(), json!(&*record.topic));
    object.insert("partition".into(), json!(record.partition));
    object.insert("offset".into(), json!(record.offset));
    object.insert("timestamp".into(), json!(record.timestamp));
    put_bytes(&mut object, "key", &record.key);
    put_bytes(&mut object, "value", &record.value);
    let headers: Vec<Value> = record
        .headers
        .iter()
        .map(|(key, value)| {
            let mut header = Map::new();
            header.insert("key".into(), json!(key));
            put_bytes(&mut header, "value", value);
            Value::Object(header)
        })
        .collect();
    object.insert("headers".into(), Value::Array(headers));
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn utf8_is_text_and_binary_is_base64() {
        let record = ConsumerRecord {
            topic: Arc::from("t"),
            partition: 2,
            offset: 7,
            timestamp: 1000,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(&[0xff, 0x00])),
            headers: vec![
                ("h".into(), Some(Bytes::from_static(b"v"))),
                ("n".into(), None),
            ],
            leader_epoch: 0,
        };
        let value = record_json(&record);
        assert_eq!(
            value,
            json!({
                "topic": "t", "partition": 2, "offset": 7, "timestamp": 1000,
                "key": "k", "value": null, "value_base64": "/wA=",
                "headers": [{"key": "h", "value": "v"}, {"key": "n", "value": null}]
            })
        );
    }
}
