use proptest::prelude::*;
use serde_json::Value;

use super::super::tests::{chunk, text_bytes};
use super::super::{Cursor, walk, walk_from};
use super::{Holes, Templates, read_by};

/// Where the walk notes holes in `data`.
fn holes_of(data: &[u8]) -> Vec<(usize, usize)> {
    let mut c = Cursor::at(data, 0);
    c.holes = Some(Holes::default());
    if walk_from(&mut c).is_none() {
        return Vec::new();
    }
    let holes = c.holes.as_ref().and_then(Holes::noted).unwrap_or_default();
    holes.iter().map(|h| (h.start, h.end)).collect()
}

/// `data` with its holes' values replaced by `values` in turn (kept where they run out).
fn refilled(data: &[u8], holes: &[(usize, usize)], values: &[Vec<u8>]) -> Vec<u8> {
    let (mut out, mut at) = (Vec::new(), 0);
    for (i, &(start, end)) in holes.iter().enumerate() {
        out.extend_from_slice(&data[at..start]);
        out.extend_from_slice(values.get(i).map_or(&data[start..end], Vec::as_slice));
        at = end;
    }
    out.extend_from_slice(&data[at..]);
    out
}

/// Values a hole may be given: strings of every kind of byte, counts, other numbers, and
/// values of other kinds, which the hole's reader must refuse or read as the walk does.
fn hole_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        text_bytes().prop_map(|body| [&b"\""[..], &body, b"\""].concat()),
        (0u64..100_000).prop_map(|n| n.to_string().into_bytes()),
        Just(b"null".to_vec()),
        Just(b"-1.5e3".to_vec()),
        Just(b"01".to_vec()),
        Just(b"18446744073709551616".to_vec()),
        Just(b" 7".to_vec()),
        Just(b"true".to_vec()),
        Just(b"{}".to_vec()),
        Just(b"[\"x\"]".to_vec()),
        Just(br#""a\u00e9\n""#.to_vec()),
        Just(Vec::new()),
    ]
}

fn write(value: &Value, pretty: bool) -> Vec<u8> {
    if pretty {
        serde_json::to_vec_pretty(value)
    } else {
        serde_json::to_vec(value)
    }
    .unwrap()
}

proptest! {
    /// A chunk with another's form (its holes given other values), or of another form,
    /// reads by the templates as the walk reads it.
    #[test]
    fn a_chunk_read_by_a_template_reads_as_the_walk_reads_it(
        first in chunk(),
        other in chunk(),
        pretty in any::<bool>(),
        values in prop::collection::vec(hole_value(), 0..32),
    ) {
        let first = write(&first, pretty);
        let templates = Templates::default();
        prop_assert_eq!(templates.read_or_walk(&first, &mut 0), walk(&first));
        let next = refilled(&first, &holes_of(&first), &values);
        {
            // A chunk kept as a template reads by it.
            let learnt = templates.learnt.lock().unwrap();
            if !learnt.is_empty() {
                prop_assert_eq!(read_by(&learnt, &first, &mut 0), walk(&first), "its own template");
            }
        }
        prop_assert_eq!(
            templates.read_or_walk(&next, &mut 0),
            walk(&next),
            "{}",
            String::from_utf8_lossy(&next)
        );
        let other = write(&other, pretty);
        prop_assert_eq!(templates.read_or_walk(&other, &mut 0), walk(&other));
    }
}

/// A second stream of the captured llama.cpp answer: another id, time and text.
fn second_stream(first: &str) -> Vec<String> {
    first
        .replace(
            "chatcmpl-30NIu5TfuQiUPDDC6Ortb3CjsXJT1EnR",
            "chatcmpl-other",
        )
        .replace("17958139", "17958140")
        .replace(r#""content":"<""#, r#""content":"a \"quoted\" word""#)
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(str::to_string)
        .collect()
}

#[test]
fn a_second_stream_reads_by_the_templates_its_first_learnt() {
    let captured = include_str!("../../../../tests/fixtures/llamacpp/sse.txt");
    let first: Vec<&str> = captured
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .collect();
    let (templates, mut next) = (Templates::default(), 0);
    for chunk in &first {
        let read = templates.read_or_walk(chunk.as_bytes(), &mut next);
        assert_eq!(read, walk(chunk.as_bytes()));
    }
    let second = second_stream(captured);
    assert_eq!(second.len(), first.len());
    let learnt = templates.learnt.lock().unwrap();
    // Each chunk is read at once by the template after the one before's.
    let mut next = 0;
    for chunk in &second {
        let at = next;
        let read = read_by(&learnt, chunk.as_bytes(), &mut next);
        assert!(read.is_some(), "no template read {chunk}");
        assert!(
            next == at + 1 || at > 0 && next == at,
            "{at} then {next}: {chunk}"
        );
        assert_eq!(read, walk(chunk.as_bytes()), "{chunk}");
    }
}

#[test]
fn a_vllm_stream_s_chunks_of_each_kind_read_by_templates_with_their_own_values() {
    let role = br#"{"id":"a","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
    let finish = br#"{"id":"a","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"length"}]}"#;
    let usage = br#"{"id":"a","choices":[],"usage":{"prompt_tokens":32,"completion_tokens":16,"total_tokens":48}}"#;
    let templates = Templates::default();
    for chunk in [&role[..], finish, usage] {
        templates.read_or_walk(chunk, &mut 0);
    }
    let next_finish = br#"{"id":"bb","created":22,"model":"n","choices":[{"index":0,"delta":{"content":"y"},"finish_reason":"stop"}]}"#;
    let next_usage = br#"{"id":"bb","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":null,"total_tokens":7}}"#;
    let learnt = templates.learnt.lock().unwrap();
    let (facts, _) = read_by(&learnt, next_finish, &mut 0).unwrap();
    assert_eq!(facts.finish_reason.as_deref(), Some("stop"));
    assert_eq!(facts.model.as_deref(), Some("n"));
    let (facts, text) = read_by(&learnt, next_usage, &mut 0).unwrap();
    assert_eq!(
        (facts.prompt_tokens, facts.completion_tokens),
        (Some(7), None)
    );
    assert!(facts.usage && text.is_none());
    // Another value's kind in a hole, or other bytes around them, is no fit.
    let error = br#"{"id":"bb","choices":[],"usage":{"prompt_tokens":7.5,"completion_tokens":null,"total_tokens":7}}"#;
    let reordered = br#"{"created":22,"id":"bb","model":"n","choices":[{"index":0,"delta":{"content":"y"},"finish_reason":"stop"}]}"#;
    assert_eq!(read_by(&learnt, error, &mut 0), None);
    assert_eq!(read_by(&learnt, reordered, &mut 0), None);
}

#[test]
fn a_chunk_with_reasoning_or_too_many_holes_is_not_kept() {
    let reasoning = br#"{"choices":[{"delta":{"reasoning_content":"think"}}]}"#;
    let many = format!(
        r#"{{"choices":[{{"delta":{{"content":"x"}}}}],"extra":[{}]}}"#,
        vec!["1"; 40].join(",")
    );
    let templates = Templates::default();
    templates.read_or_walk(reasoning, &mut 0);
    templates.read_or_walk(many.as_bytes(), &mut 0);
    assert!(templates.learnt.lock().unwrap().is_empty());
}
