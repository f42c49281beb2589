//! The request body as the proxy reads it: only `model`, `stream` and `stream_options` are
//! parsed (everything else is checked for well-formedness and skipped, not built into a
//! tree), and a stream whose client did not ask for usage gets `stream_options.include_usage`
//! added — by inserting one member after the opening brace, not by re-serialising the body.

use axum::body::Bytes;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

/// What the proxy needs of a request body.
#[derive(Debug, Default, Deserialize)]
pub struct RequestFields {
    /// The model asked for (a string when well-formed).
    #[serde(default)]
    pub model: Option<Value>,
    /// `true` for a streamed answer.
    #[serde(default)]
    stream: Option<Value>,
    /// Present (even as `null`) when the client set it.
    #[serde(default, deserialize_with = "present")]
    stream_options: Option<Value>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl RequestFields {
    /// The fields of a body; `None` when it is not JSON. A body that is JSON but not an
    /// object, or an object the narrow reading refuses (a repeated member), is read as a
    /// whole so that every well-formed body is forwarded.
    pub fn read(bytes: &[u8]) -> Option<RequestFields> {
        let object = bytes.trim_ascii_start().first() == Some(&b'{');
        if object && let Ok(fields) = serde_json::from_slice::<RequestFields>(bytes) {
            return Some(fields);
        }
        let whole = serde_json::from_slice::<Value>(bytes).ok()?;
        Some(RequestFields {
            model: whole.get("model").cloned(),
            stream: whole.get("stream").cloned(),
            stream_options: whole.get("stream_options").cloned(),
        })
    }

    /// The model's name, when it is a string.
    pub fn model(&self) -> Option<&str> {
        self.model.as_ref()?.as_str()
    }

    fn streamed(&self) -> bool {
        self.stream == Some(Value::Bool(true))
    }

    fn usage_asked(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            == Some(&Value::Bool(true))
    }
}

/// The body to send upstream and whether the usage chunk must be removed from the answer:
/// with `inject`, a stream whose client did not ask for usage is made to ask.
pub fn patch(bytes: Bytes, fields: &RequestFields, inject: bool) -> (Bytes, bool) {
    if !(inject && fields.streamed() && !fields.usage_asked()) {
        return (bytes, false);
    }
    if fields.stream_options.is_none() {
        // An object with `"stream": true` has a member, so the comma is always right.
        let brace = bytes.iter().position(|b| *b == b'{').unwrap_or(0);
        let mut patched = Vec::with_capacity(bytes.len() + INSERTED.len());
        patched.extend_from_slice(&bytes[..=brace]);
        patched.extend_from_slice(INSERTED);
        patched.extend_from_slice(&bytes[brace + 1..]);
        return (Bytes::from(patched), true);
    }
    // The client set other stream options (or null): merge into them.
    let Ok(mut request) = serde_json::from_slice::<Value>(&bytes) else {
        return (bytes, false);
    };
    match request
        .get_mut("stream_options")
        .and_then(Value::as_object_mut)
    {
        Some(options) => {
            options.insert("include_usage".into(), Value::Bool(true));
        }
        None => request["stream_options"] = json!({"include_usage": true}),
    }
    match serde_json::to_vec(&request) {
        Ok(patched) => (Bytes::from(patched), true),
        Err(_) => (bytes, false),
    }
}

/// The member added to a stream's body.
const INSERTED: &[u8] = br#""stream_options":{"include_usage":true},"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn patched(body: Value, inject: bool) -> (Option<Value>, bool) {
        let bytes = Bytes::from(body.to_string());
        let fields = RequestFields::read(&bytes).unwrap();
        let (sent, strip) = patch(bytes.clone(), &fields, inject);
        let changed = (sent != bytes).then(|| serde_json::from_slice(&sent).unwrap());
        (changed, strip)
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
        let body =
            Bytes::from_static(b"  \n{\"stream\" : true ,\"messages\":[{\"role\":\"user\"}]}");
        let fields = RequestFields::read(&body).unwrap();
        let (sent, strip) = patch(body, &fields, true);
        let sent: Value = serde_json::from_slice(&sent).unwrap();
        assert!(strip);
        assert_eq!(sent["stream_options"]["include_usage"], true);
        assert_eq!(sent["messages"][0]["role"], "user");
    }

    #[test]
    fn every_well_formed_body_is_read_and_others_are_not() {
        assert_eq!(
            RequestFields::read(br#"{"model":"a","model":"b"}"#)
                .unwrap()
                .model(),
            Some("b")
        );
        assert!(RequestFields::read(b"[1, 2]").unwrap().model().is_none());
        assert!(
            RequestFields::read(br#"{"model": 5}"#)
                .unwrap()
                .model()
                .is_none()
        );
        assert!(RequestFields::read(b"{\"model\": ").is_none());
        assert!(RequestFields::read(b"").is_none());
    }
}
