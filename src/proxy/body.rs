//! The request body as the proxy reads it: only `model`, `stream` and `stream_options` are
//! read (everything else is checked for well-formedness and skipped, not built into a
//! tree), and a stream whose client did not ask for usage gets `stream_options.include_usage`
//! added — by inserting one member after the opening brace, not by re-serialising the body.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::sse::scan::{RequestFacts, scan_request};

/// The fields of a body; `None` when it is not JSON. The usual body is walked once; any
/// other is deserialised. A body that is JSON but not an object, or an object the narrow
/// reading refuses (a repeated member), is read as a whole so that every well-formed body
/// is forwarded.
pub fn read_fields(bytes: &[u8]) -> Option<RequestFacts<'_>> {
    scan_request(bytes).or_else(|| deserialised(bytes))
}

/// The fields as deserialising the body reads them: what the walk is held to, and the
/// reading of every body it leaves.
pub(crate) fn deserialised(bytes: &[u8]) -> Option<RequestFacts<'static>> {
    /// The body's fields that matter, as values.
    #[derive(Debug, Default, Deserialize)]
    struct Fields {
        #[serde(default)]
        model: Option<Value>,
        #[serde(default)]
        stream: Option<Value>,
        /// Present (even as `null`) when the client set it.
        #[serde(default, deserialize_with = "present")]
        stream_options: Option<Value>,
    }
    let object = bytes.trim_ascii_start().first() == Some(&b'{');
    let derived = if object {
        serde_json::from_slice::<Fields>(bytes).ok()
    } else {
        None
    };
    let fields = match derived {
        Some(fields) => fields,
        None => {
            let whole = serde_json::from_slice::<Value>(bytes).ok()?;
            Fields {
                model: whole.get("model").cloned(),
                stream: whole.get("stream").cloned(),
                stream_options: whole.get("stream_options").cloned(),
            }
        }
    };
    let include_usage = fields
        .stream_options
        .as_ref()
        .and_then(|o| o.get("include_usage"))
        == Some(&Value::Bool(true));
    Some(RequestFacts {
        model: match fields.model {
            Some(Value::String(model)) => Some(Cow::Owned(model)),
            _ => None,
        },
        stream: fields.stream == Some(Value::Bool(true)),
        stream_options: fields.stream_options.is_some(),
        include_usage,
    })
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The body to send upstream in place of `bytes` when it must change, which also means
/// that the usage chunk must be removed from the answer: with `inject`, a stream whose
/// client did not ask for usage is made to ask. `None`: `bytes` go as they are.
pub fn patch(bytes: &[u8], fields: &RequestFacts<'_>, inject: bool) -> Option<Vec<u8>> {
    if !(inject && fields.stream && !fields.include_usage) {
        return None;
    }
    if !fields.stream_options {
        // An object with `"stream": true` has a member, so the comma is always right.
        let brace = bytes.iter().position(|b| *b == b'{').unwrap_or(0);
        let mut patched = Vec::with_capacity(bytes.len() + INSERTED.len());
        patched.extend_from_slice(&bytes[..=brace]);
        patched.extend_from_slice(INSERTED);
        patched.extend_from_slice(&bytes[brace + 1..]);
        return Some(patched);
    }
    // The client set other stream options (or null): merge into them.
    let mut request = serde_json::from_slice::<Value>(bytes).ok()?;
    match request
        .get_mut("stream_options")
        .and_then(Value::as_object_mut)
    {
        Some(options) => {
            options.insert("include_usage".into(), Value::Bool(true));
        }
        None => request["stream_options"] = json!({"include_usage": true}),
    }
    serde_json::to_vec(&request).ok()
}

/// The member added to a stream's body.
const INSERTED: &[u8] = br#""stream_options":{"include_usage":true},"#;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A member's value as JSON text: the usual ones, other types, escapes, and text that
    /// is not JSON or that only one of the readings takes.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("\"sim-vllm\"".to_string()),
            Just("\"caf\\u00e9\"".to_string()),
            Just("\"\\ud800\"".to_string()),
            Just("\"a\u{1}b\"".to_string()),
            Just("null".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            Just("tru".to_string()),
            Just("16".to_string()),
            Just("1e999".to_string()),
            Just("[{\"role\":\"user\",\"content\":\"hi\"}]".to_string()),
            Just("[1,]".to_string()),
            Just("{\"include_usage\":true}".to_string()),
            Just("{\"include_usage\":false,\"include_usage\":true}".to_string()),
            Just("{\"include_usage\":true,\"include_usage\":false}".to_string()),
            Just("{\"include_usage\":null}".to_string()),
            Just("{\"include_\\u0075sage\":true}".to_string()),
            Just("{\"continuous_usage_stats\":true,\"include_usage\":true}".to_string()),
            Just("{}".to_string()),
        ]
    }

    /// A body: members (names may repeat) with any of those values, blanks or not.
    fn body() -> impl Strategy<Value = String> {
        let name = prop_oneof![
            Just("model"),
            Just("stream"),
            Just("stream_options"),
            Just("messages"),
            Just("max_tokens"),
            Just("mod\\u0065l"),
        ];
        let members = prop::collection::vec((name, value()), 0..6);
        (members, any::<bool>()).prop_map(|(members, blanks)| {
            let gap = if blanks { " \n" } else { "" };
            let members: Vec<String> = members
                .iter()
                .map(|(name, value)| format!("{gap}\"{name}\"{gap}:{gap}{value}"))
                .collect();
            format!("{gap}{{{}}}{gap}", members.join(","))
        })
    }

    /// A body as clients send it: the walk reads it (it does not fall to deserialising).
    fn usual_body() -> impl Strategy<Value = String> {
        let options = prop_oneof![
            Just(None),
            Just(Some("null")),
            Just(Some("{\"include_usage\":true}")),
            Just(Some("{\"include_usage\": false}")),
        ];
        ("[a-z0-9/._-]{1,20}", any::<bool>(), options, "[a-z .,]{0,80}").prop_map(
            |(model, stream, options, prompt)| {
                let options = options.map_or(String::new(), |o| format!(",\"stream_options\":{o}"));
                format!(
                    "{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"{prompt}\"}}],\"max_tokens\":16,\"stream\":{stream}{options}}}"
                )
            },
        )
    }

    proptest! {
        /// What the walk reads of a body is what deserialising reads, and a body the walk
        /// leaves is read by deserialising, so the reading of no body changed.
        #[test]
        fn the_walk_reads_what_deserialising_reads(body in body()) {
            let walked = scan_request(body.as_bytes());
            let reference = deserialised(body.as_bytes());
            if walked.is_some() {
                prop_assert_eq!(&walked, &reference);
            }
            prop_assert_eq!(read_fields(body.as_bytes()), reference);
        }

        #[test]
        fn usual_bodies_are_walked(body in usual_body()) {
            let walked = scan_request(body.as_bytes());
            prop_assert!(walked.is_some());
            prop_assert_eq!(walked, deserialised(body.as_bytes()));
        }

        /// Any bytes, a body cut short, and a body with a byte that is not UTF-8 (in a key,
        /// a string, or between them).
        #[test]
        fn any_bytes_or_a_broken_body_read_as_deserialising_reads_them(
            bytes in prop::collection::vec(any::<u8>(), 0..48),
            body in usual_body(),
            at in any::<prop::sample::Index>(),
        ) {
            let cut = &body.as_bytes()[..at.index(body.len())];
            let mut broken = body.clone().into_bytes();
            broken.insert(at.index(body.len()), 0xff);
            for input in [&bytes[..], cut, &broken] {
                prop_assert_eq!(read_fields(input), deserialised(input));
            }
        }
    }

    fn patched(body: Value, inject: bool) -> (Option<Value>, bool) {
        let bytes = body.to_string().into_bytes();
        let fields = read_fields(&bytes).unwrap();
        let sent = patch(&bytes, &fields, inject);
        let strip = sent.is_some();
        (
            sent.map(|sent| serde_json::from_slice(&sent).unwrap()),
            strip,
        )
    }

    #[test]
    fn usage_is_asked_for_on_streams_that_did_not() {
        let (sent, strip) = patched(json!({"model": "m", "stream": true}), true);
        let sent = sent.unwrap();
        assert_eq!(sent["stream_options"]["include_usage"], true);
        assert_eq!(
            (sent["model"].as_str(), sent["stream"].as_bool()),
            (Some("m"), Some(true))
        );
        assert!(strip);
        let (sent, strip) = patched(
            json!({"stream": true, "stream_options": {"include_usage": true}}),
            true,
        );
        assert!(sent.is_none() && !strip, "the client asked: left as sent");
        let (sent, strip) = patched(json!({"stream": false}), true);
        assert!(sent.is_none() && !strip, "not streamed");
        let (sent, strip) = patched(json!({"stream": true}), false);
        assert!(sent.is_none() && !strip, "switched off");
        let (sent, _) = patched(json!({"stream": true, "stream_options": {"x": 1}}), true);
        assert_eq!(
            sent.unwrap()["stream_options"],
            json!({"x": 1, "include_usage": true})
        );
        let (sent, strip) = patched(json!({"stream": true, "stream_options": null}), true);
        assert_eq!(
            sent.unwrap()["stream_options"],
            json!({"include_usage": true})
        );
        assert!(strip);
    }

    #[test]
    fn the_inserted_member_keeps_the_body_valid_json() {
        let body = b"  \n{\"stream\" : true ,\"messages\":[{\"role\":\"user\"}]}";
        let fields = read_fields(body).unwrap();
        let sent: Value = serde_json::from_slice(&patch(body, &fields, true).unwrap()).unwrap();
        assert_eq!(sent["stream_options"]["include_usage"], true);
        assert_eq!(sent["messages"][0]["role"], "user");
    }

    #[test]
    fn every_well_formed_body_is_read_and_others_are_not() {
        let model = |body: &[u8]| read_fields(body).unwrap().model.map(Cow::into_owned);
        assert_eq!(model(br#"{"model":"a","model":"b"}"#).as_deref(), Some("b"));
        assert_eq!(model(b"[1, 2]"), None);
        assert_eq!(model(br#"{"model": 5}"#), None);
        assert_eq!(
            model(br#"{"mod\u0065l": "e\u0301"}"#).as_deref(),
            Some("e\u{301}")
        );
        assert!(read_fields(b"{\"model\": ").is_none());
        assert!(read_fields(b"").is_none());
    }
}
