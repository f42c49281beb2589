//! A name index over one parsed scrape, so signal lookups do not scan every family.

use std::collections::HashMap;

use crate::exposition::{Exposition, Sample};

/// Family-name → family lookup over an [`Exposition`].
pub struct Index<'e, 'a> {
    exp: &'e Exposition<'a>,
    by_name: HashMap<&'a str, usize>,
}

const SUFFIXES: [&str; 6] = ["_total", "_bucket", "_sum", "_count", "_created", "_info"];

impl<'e, 'a> Index<'e, 'a> {
    /// Indexes the families of `exp`.
    pub fn new(exp: &'e Exposition<'a>) -> Self {
        let by_name = exp
            .families
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name, i))
            .collect();
        Index { exp, by_name }
    }

    /// The exposition indexed.
    pub fn exposition(&self) -> &'e Exposition<'a> {
        self.exp
    }

    /// Samples whose sample name is exactly `name`, whatever family they were filed under
    /// (`foo_total` may sit in family `foo` or `foo_total`; `foo_sum` in `foo` or, when
    /// undeclared, in its own family).
    pub fn samples<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'e Sample<'a>> + 's {
        let direct = self.by_name.get(name).copied();
        let base = SUFFIXES.iter().find_map(|suffix| {
            let base = name.strip_suffix(suffix)?;
            self.by_name.get(base).copied()
        });
        let families = [direct, base.filter(|b| Some(*b) != direct)];
        families
            .into_iter()
            .flatten()
            .flat_map(move |i| self.exp.samples_of(&self.exp.families[i]).iter())
            .filter(move |s| s.name == name)
    }

    /// Whether any sample named `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.samples(name).next().is_some()
    }

    /// Whether any family (or sample) name starts with `name`, e.g. a histogram base name.
    pub fn has_family(&self, name: &str) -> bool {
        self.by_name.contains_key(name) || self.has(name)
    }
}
