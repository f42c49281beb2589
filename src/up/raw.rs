//! Re-exports engines' own series (targets with `raw = true`) after the canonical ones: each
//! family once, with every target's samples under it, each sample labelled with the target's
//! `instance` and static labels (an engine label of the same name wins, as with Prometheus'
//! `honor_labels`).

use std::collections::BTreeMap;

use crate::exposition::{self, Mode, write_family_header, write_sample};

/// One target's raw body and the labels to add.
pub struct RawView<'a> {
    /// Target name.
    pub instance: &'a str,
    /// Static labels.
    pub labels: &'a BTreeMap<String, String>,
    /// The body as scraped (it parsed strictly when scraped).
    pub text: &'a str,
}

struct Block {
    header: String,
    samples: String,
}

/// Appends the families of every view, merged by name, in first-seen order.
pub fn write_raw(out: &mut String, views: &[RawView<'_>]) {
    let mut order: Vec<String> = Vec::new();
    let mut blocks: BTreeMap<String, Block> = BTreeMap::new();
    for view in views {
        let Ok(exp) = exposition::parse(view.text, Mode::Lenient) else {
            continue;
        };
        for family in &exp.families {
            let block = blocks.entry(family.name.to_string()).or_insert_with(|| {
                order.push(family.name.to_string());
                let mut header = String::new();
                let kind = family.kind.as_text_004();
                write_family_header(&mut header, family.name, family.help.as_deref(), kind);
                Block {
                    header,
                    samples: String::new(),
                }
            });
            for sample in exp.samples_of(family) {
                let own = exp.labels_of(sample);
                let ours = [("instance", view.instance)]
                    .into_iter()
                    .chain(view.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .filter(|(name, _)| !own.iter().any(|l| l.name == *name));
                let labels = own.iter().map(|l| (l.name, l.value.as_ref())).chain(ours);
                write_sample(&mut block.samples, sample.name, labels, sample.value, None);
            }
        }
    }
    for name in order {
        if let Some(block) = blocks.get(&name) {
            out.push_str(&block.header);
            out.push_str(&block.samples);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_merge_across_targets_with_instance_added() {
        let labels = BTreeMap::from([("service".to_string(), "chat".to_string())]);
        let a = "# TYPE tgi_queue_size gauge\ntgi_queue_size 3\n";
        let b = "# HELP tgi_queue_size Queue\n# TYPE tgi_queue_size gauge\ntgi_queue_size{instance=\"own\"} 5\n";
        let mut out = String::new();
        write_raw(
            &mut out,
            &[
                RawView {
                    instance: "a",
                    labels: &labels,
                    text: a,
                },
                RawView {
                    instance: "b",
                    labels: &labels,
                    text: b,
                },
            ],
        );
        assert_eq!(
            out,
            "# TYPE tgi_queue_size gauge\n\
             tgi_queue_size{instance=\"a\",service=\"chat\"} 3\n\
             tgi_queue_size{instance=\"own\",service=\"chat\"} 5\n"
        );
        let parsed = exposition::parse(&out, Mode::Strict).unwrap();
        assert!(parsed.duplicate_series().is_empty());
    }
}
