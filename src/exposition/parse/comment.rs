//! Text 0.0.4's comment lines: `# HELP`, `# TYPE` and `# UNIT` read leniently (any blanks
//! between tokens), `# EOF`, and free comments passed over.

use super::super::lex::{is_blank, scan_name, skip_blanks, token_end, unescape_help};
use super::{MetricType, ParseErrorKind, Parser};

impl<'a> Parser<'a> {
    /// A text 0.0.4 comment line (OpenMetrics ones go to the strict grammar).
    pub(super) fn comment(&mut self, line: &'a str) -> Result<(), (usize, ParseErrorKind)> {
        let b = line.as_bytes();
        let kw_start = skip_blanks(b, 1);
        let kw_end = token_end(b, kw_start);
        let keyword = line.get(kw_start..kw_end).unwrap_or_default();
        let which: &'static str = match keyword {
            "HELP" => "HELP",
            "TYPE" => "TYPE",
            "UNIT" => "UNIT",
            "EOF" => {
                self.exp.saw_eof = true;
                return Ok(());
            }
            _ => return Ok(()), // a free comment
        };
        let name_start = skip_blanks(b, kw_end);
        let name_end = scan_name(b, name_start);
        if name_end == name_start || (name_end < b.len() && !is_blank(b[name_end])) {
            return Err((name_start, ParseErrorKind::MalformedComment(which)));
        }
        let name = line.get(name_start..name_end).unwrap_or_default();
        let text_start = skip_blanks(b, name_end);
        let text = line.get(text_start..).unwrap_or_default();
        match which {
            "HELP" => {
                let idx = self.family_by_name(name);
                self.exp.families[idx].help = Some(unescape_help(text));
            }
            "TYPE" => {
                let kind = MetricType::from_keyword(text)
                    .ok_or((text_start, ParseErrorKind::UnknownType(text.to_string())))?;
                self.declare_type(name, kind).map_err(|k| (name_start, k))?;
            }
            _ => {
                // An empty unit is valid OpenMetrics (`# UNIT name ` with nothing after): no
                // unit.
                let idx = self.family_by_name(name);
                self.exp.families[idx].unit = (!text.is_empty()).then_some(text);
            }
        }
        Ok(())
    }
}
