//! `/api/v1/overview` over a fleet of fixture targets: filtering, grouping, sorting and paging
//! happen on the server, pages neither overlap nor skip, missing values sort last, and a bad
//! parameter is a 400 that says what is allowed.

use std::collections::HashMap;

use serde_json::Value;

use crate::up::{Up, eventually, get, start_up};
use crate::util::{Canned, fixture, serve};

/// Six fixture targets of four engines, `service=chat` or `service=batch`, and one without a
/// service label.
fn fleet() -> (Up, Vec<crate::util::CannedServer>) {
    let captures = [
        ("vllm-0.33.txt", "chat"),
        ("vllm-0.10.txt", "batch"),
        ("tgi-3.3.txt", "chat"),
        ("sglang-0.5.23.txt", "batch"),
        ("vllm-0.33-dp2.txt", "chat"),
        ("vllm-v0.txt", ""),
    ];
    let mut servers = Vec::new();
    let mut args = Vec::new();
    for (i, (capture, service)) in captures.iter().enumerate() {
        let body = std::fs::read_to_string(fixture(&format!("reconstructed/{capture}"))).unwrap();
        let server = serve(HashMap::from([("/metrics", Canned::ok(body))]));
        let label = if service.is_empty() {
            String::new()
        } else {
            format!(",service={service}")
        };
        args.push(format!("--target={},name=t{i}{label}", server.base));
        servers.push(server);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let up = start_up("[scrape]\ninterval = \"200ms\"\n", &args);
    eventually(10, || {
        let v = overview(&up, "");
        (v["health"]["up"].as_u64() == v["rows_total"].as_u64()
            && v["rows_total"].as_u64() >= Some(6))
        .then_some(())
    });
    (up, servers)
}

fn overview(up: &Up, query: &str) -> Value {
    let (status, body) = get(&format!("{}/api/v1/overview?window=1m&{query}", up.base));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn names(v: &Value) -> Vec<String> {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["target"].as_str().unwrap(),
                r["model"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

#[test]
fn the_overview_is_filtered_grouped_sorted_and_paged_on_the_server() {
    let (up, _servers) = fleet();
    let all = overview(&up, "limit=1000");
    let total = all["rows_total"].as_u64().unwrap() as usize;
    assert_eq!(all["matching"].as_u64(), Some(total as u64));
    let everyone = names(&all);
    let mut sorted = everyone.clone();
    sorted.sort();
    assert_eq!(everyone, sorted, "by target, then model, by default");

    // Pages of two cover every row once, in order.
    let mut paged = Vec::new();
    for offset in (0..total).step_by(2) {
        let page = overview(&up, &format!("limit=2&offset={offset}"));
        assert!(page["rows"].as_array().unwrap().len() <= 2);
        paged.extend(names(&page));
    }
    assert_eq!(paged, everyone);

    // Sorted by requests running, most first; engines without the gauge last.
    let by_running = overview(&up, "sort=load.0&limit=1000");
    assert_eq!(by_running["sort"], "load.0");
    assert_eq!(by_running["order"], "desc");
    let running: Vec<Option<f64>> = by_running["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cells"][6][0]["now"].as_f64())
        .collect();
    let present: Vec<f64> = running.iter().flatten().copied().collect();
    assert!(present.windows(2).all(|w| w[0] >= w[1]), "{running:?}");
    let first_missing = running
        .iter()
        .position(Option::is_none)
        .unwrap_or(running.len());
    assert!(
        running[first_missing..].iter().all(Option::is_none),
        "{running:?}"
    );
    let ascending = overview(&up, "sort=load.0&order=asc&limit=1000");
    let up_first: Vec<f64> = ascending["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["cells"][6][0]["now"].as_f64())
        .collect();
    assert!(up_first.windows(2).all(|w| w[0] <= w[1]), "{up_first:?}");

    // A label filter, and a filter on the engine.
    let batch = overview(&up, "filter=SERVICE%3Dbatch&limit=1000");
    assert!(batch["matching"].as_u64().unwrap() >= 2);
    assert!(
        batch["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["labels"]["service"] == "batch"),
        "{batch}"
    );
    let tgi = overview(&up, "filter=tgi");
    assert!(
        tgi["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["engine"] == "tgi")
    );
    let nothing = overview(&up, "filter=no-such-thing");
    assert_eq!(
        (nothing["matching"].as_u64(), nothing["rows_total"].as_u64()),
        (Some(0), Some(total as u64))
    );

    // Grouped by service: groups in order, the unlabelled target last.
    let grouped = overview(&up, "group=service&limit=1000");
    assert_eq!(grouped["labels"], serde_json::json!(["service"]));
    let groups: Vec<Option<String>> = grouped["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["group"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        groups.first(),
        Some(&Some("batch".to_string())),
        "{groups:?}"
    );
    assert_eq!(groups.last(), Some(&None), "{groups:?}");
    let mut ordered = groups.clone();
    ordered.sort_by_key(|g| (g.is_none(), g.clone()));
    assert_eq!(groups, ordered);

    // Bad parameters say what is allowed.
    for (query, says) in [
        ("sort=nonsense", "ttft.2"),
        ("sort=ttft.7", "not `target` or a column"),
        ("order=up", "`asc` or `desc`"),
        ("window=7h", "at most 360 min"),
    ] {
        let (status, body) = get(&format!("{}/api/v1/overview?{query}", up.base));
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(says), "{query}: {body}");
    }
}
