use proptest::prelude::*;
use serde_json::{Value, json};

use super::{deserialised as reference, scan_chunk, string_stop};

fn text() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("")),
        Just(json!(" the")),
        Just(json!("\u{e9}\n\"q\"\\")),
        Just(json!(null)),
        Just(json!(7)),
        Just(json!(["x"])),
    ]
}

fn count() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0u64..100_000).prop_map(|n| json!(n)),
        Just(json!(u64::MAX)),
        Just(json!(null)),
        Just(json!(-1)),
        Just(json!(1.5)),
        Just(json!("3")),
    ]
}

/// Anything, for the fields the proxy does not read.
fn other() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(json!(null)),
        Just(json!(true)),
        Just(json!(-0.25e3)),
        "[a-z\"\\\\/\u{1}\u{e9}]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object holding some of `fields`, each with a value from its strategy.
fn some_of(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let each: Vec<_> = fields
        .into_iter()
        .map(|(k, v)| prop::option::of(v).prop_map(move |v| v.map(|v| (k.to_string(), v))))
        .collect();
    each.prop_map(|pairs| Value::Object(pairs.into_iter().flatten().collect()))
        .boxed()
}

pub(super) fn chunk() -> BoxedStrategy<Value> {
    let delta = prop_oneof![
        some_of(vec![
            ("role", Just(json!("assistant")).boxed()),
            ("content", text().boxed()),
            ("reasoning_content", text().boxed()),
            (
                "tool_calls",
                prop_oneof![Just(json!(null)), other()].boxed()
            ),
        ]),
        Just(json!(null)).boxed(),
        Just(json!("x")).boxed(),
    ];
    let choice = some_of(vec![
        ("index", Just(json!(0)).boxed()),
        ("delta", delta.boxed()),
        ("text", text().boxed()),
        ("finish_reason", text().boxed()),
        ("logprobs", other().boxed()),
    ]);
    let usage = prop_oneof![
        some_of(vec![
            ("prompt_tokens", count().boxed()),
            ("completion_tokens", count().boxed()),
            ("total_tokens", count().boxed()),
        ]),
        Just(json!(null)).boxed(),
        Just(json!("none")).boxed(),
    ];
    some_of(vec![
        ("id", Just(json!("chatcmpl-1")).boxed()),
        (
            "choices",
            prop_oneof![
                prop::collection::vec(choice, 0..3)
                    .prop_map(Value::from)
                    .boxed(),
                Just(json!(null)).boxed(),
            ]
            .boxed(),
        ),
        ("usage", usage.boxed()),
        ("error", prop_oneof![Just(json!(null)), other()].boxed()),
        ("model", text().boxed()),
        ("system_fingerprint", other().boxed()),
    ])
}

proptest! {
    /// On every chunk-like object, compact or pretty, the scan says what deserialising says.
    #[test]
    fn the_scan_reads_what_the_chunk_type_reads(value in chunk(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_string_pretty(&value)
        } else {
            serde_json::to_string(&value)
        }
        .unwrap();
        prop_assert_eq!(scan_chunk(text.as_bytes()), reference(text.as_bytes()), "{}", text);
    }

    /// A chunk cut anywhere is refused, as deserialising refuses it.
    #[test]
    fn a_cut_chunk_is_refused(value in chunk(), cut in any::<prop::sample::Index>()) {
        let text = serde_json::to_string(&value).unwrap();
        let cut = &text.as_bytes()[..cut.index(text.len())];
        prop_assert_eq!(scan_chunk(cut), None);
    }

    /// Any bytes: no panic, and what deserialising reads the scan reads alike.
    #[test]
    fn any_bytes_are_read_or_refused_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        prop_assert_eq!(super::check_against_chunk(&bytes), Ok(()));
    }
}

#[test]
fn repeated_fields_trailing_text_and_deep_nesting_are_refused_as_deserialising_refuses_them() {
    for text in [
        r#"{"usage":{},"usage":{}}"#,
        r#"{"choices":[{"text":"a","text":"b"}]}"#,
        r#"{"choices":[]} x"#,
        r#"{"choices":[],}"#,
        r#"{"a":01}"#,
        r#"{"a":"\x"}"#,
        r#"{"model":"a\u00e9"}"#,
        r#"{"\u0075sage":{"prompt_tokens":3}}"#,
    ] {
        assert_eq!(
            scan_chunk(text.as_bytes()),
            reference(text.as_bytes()),
            "{text}"
        );
    }
    // Found by fuzzing: a control character (and a byte that is not UTF-8) in generated
    // text, which deserialising takes as bytes and so accepts.
    let raw_text = b"{\"choices\":[{\"delta\":{\"content\":\" t\x90\x00\"}}]}";
    assert_eq!(super::check_against_chunk(raw_text), Ok(()));
    assert!(scan_chunk(raw_text).unwrap().content);
    // Found by fuzzing: a key that is not UTF-8 is an unknown field, not a refusal.
    let odd_key = b"{\"c\xff\\\\x\":1,\"usage\":{\"completion_tokens\":8}}";
    assert_eq!(super::check_against_chunk(odd_key), Ok(()));
    assert_eq!(scan_chunk(odd_key).unwrap().completion_tokens, Some(8));
    // Found by fuzzing: a choice written as a list of its fields' values, which
    // deserialising takes.
    let listed = br#"{"choices":[[], [{"content":"x"}, null, "stop"]],"model":"m"}"#;
    assert_eq!(super::check_against_chunk(listed), Ok(()));
    assert_eq!(
        scan_chunk(listed).unwrap().finish_reason.as_deref(),
        Some("stop")
    );
    let deep = format!("{{\"x\":{}{}}}", "[".repeat(200), "]".repeat(200));
    assert_eq!(scan_chunk(deep.as_bytes()), None);
}

#[test]
fn a_vllm_stream_reads_as_the_proxy_needs_it() {
    let role = br#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#;
    let token =
        br#"{"id":"c","choices":[{"index":0,"delta":{"content":" the"},"finish_reason":null}]}"#;
    let last = br#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#;
    let usage = br#"{"id":"c","choices":[],"usage":{"prompt_tokens":32,"completion_tokens":16,"total_tokens":48}}"#;
    let facts = |b: &'static [u8]| scan_chunk(b).unwrap();
    assert!(!facts(role).content && facts(role).model.as_deref() == Some("m"));
    assert!(facts(token).content);
    assert_eq!(facts(last).finish_reason.as_deref(), Some("length"));
    let usage = facts(usage);
    assert_eq!(
        (
            usage.choices,
            usage.usage,
            usage.prompt_tokens,
            usage.completion_tokens
        ),
        (0, true, Some(32), Some(16))
    );
}

proptest! {
    /// The word-at-a-time search stops where a byte-by-byte search does, at every length
    /// and position, with control characters stopping it or not.
    #[test]
    fn string_stop_is_the_first_quote_backslash_or_control(
        bytes in proptest::collection::vec(
            prop_oneof![Just(b'"'), Just(b'\\'), 0u8..0x20, 0x20u8..0x80, 0x80u8..=0xff, Just(b'a')],
            0..40,
        ),
        controls in any::<bool>(),
    ) {
        let expected = bytes
            .iter()
            .position(|c| *c == b'"' || *c == b'\\' || (controls && *c < 0x20));
        prop_assert_eq!(string_stop(&bytes, controls), expected);
    }
}

/// Bytes for a chunk's text: quotes, backslashes and escapes' letters, control and
/// non-ASCII bytes among plain ones, so that most replacements break the string somewhere.
pub(super) fn text_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b'"'),
            Just(b'\\'),
            Just(b'n'),
            Just(b'u'),
            Just(b'0'),
            Just(b'\n'),
            Just(0xc3u8),
            Just(0xa9u8),
            Just(b'}'),
            Just(b' '),
            b'a'..=b'z',
        ],
        0..12,
    )
}

proptest! {
    /// A chunk read by the shape of the one before (its text's body replaced by any bytes,
    /// or a chunk of another shape) reads as the walk reads it.
    #[test]
    fn a_chunk_read_by_the_last_ones_shape_reads_as_the_walk_reads_it(
        first in chunk(),
        other in chunk(),
        pretty in any::<bool>(),
        body in text_bytes(),
    ) {
        let write = |v: &Value| if pretty {
            serde_json::to_string_pretty(v)
        } else {
            serde_json::to_string(v)
        }
        .unwrap();
        let first = write(&first);
        let mut shape = super::ChunkShape::default();
        prop_assert_eq!(shape.scan(first.as_bytes()), scan_chunk(first.as_bytes()));
        if let Some((_, Some(text))) = super::walk(first.as_bytes()) {
            let mut next = first.as_bytes()[..text.start].to_vec();
            next.extend_from_slice(&body);
            next.extend_from_slice(&first.as_bytes()[text.end..]);
            prop_assert_eq!(
                shape.scan(&next),
                scan_chunk(&next),
                "{}",
                String::from_utf8_lossy(&next)
            );
        }
        let other = write(&other);
        prop_assert_eq!(shape.scan(other.as_bytes()), scan_chunk(other.as_bytes()));
    }
}

#[test]
fn a_vllm_stream_read_by_shape_reads_chunk_by_chunk_as_walked() {
    let stream: [&[u8]; 7] = [
        br#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
        br#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" the"},"logprobs":null,"finish_reason":null}]}"#,
        br#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" \"sea\"\n"},"logprobs":null,"finish_reason":null}]}"#,
        br#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":null}]}"#,
        br#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"x"},"logprobs":null,"finish_reason":null}],"extra":"#,
        br#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" calm"},"logprobs":null,"finish_reason":"length"}]}"#,
        br#"{"id":"c","choices":[],"usage":{"prompt_tokens":32,"completion_tokens":16,"total_tokens":48}}"#,
    ];
    let mut shape = super::ChunkShape::default();
    for chunk in stream {
        let facts = shape.scan(chunk);
        assert_eq!(
            facts,
            scan_chunk(chunk),
            "{}",
            String::from_utf8_lossy(chunk)
        );
    }
    // Read by shape, not walked: the model and finish reason come from the chunk itself.
    let token = stream[2];
    shape.scan(stream[1]);
    assert!(shape.read(stream[3], true).is_some_and(|f| !f.content));
    assert_eq!(shape.read(stream[4], true), None, "text after the object");
    assert_eq!(shape.read(stream[5], true), None, "another finish reason");
    let facts = shape.read(token, true).unwrap();
    assert!(facts.content);
    assert_eq!(facts.model.as_deref(), Some("m"));
    assert_eq!(facts.model.map(|m| m.as_ptr()), Some(token[64..].as_ptr()));
}

#[test]
fn a_chunk_read_by_shape_without_its_model_says_all_else_as_walked() {
    let role = br#"{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":""},"finish_reason":null}]}"#;
    let token = br#"{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}"#;
    let mut shape = super::ChunkShape::default();
    assert_eq!(
        shape.scan_for(role, false, None),
        scan_chunk(role),
        "a walk reads it all"
    );
    let walked = scan_chunk(token).unwrap();
    let by_shape = shape.scan_for(token, false, None).unwrap();
    assert_eq!(
        by_shape.model, None,
        "read by the shape, the model is left out"
    );
    assert_eq!(
        super::ChunkFacts {
            model: walked.model.clone(),
            ..by_shape
        },
        walked
    );
    assert_eq!(
        shape.scan_for(token, true, None),
        Some(walked),
        "asked for, it is read"
    );
}
