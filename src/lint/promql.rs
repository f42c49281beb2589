//! Checks over one parsed PromQL expression (promql-parser's AST).

use std::collections::HashSet;
use std::time::Duration;

use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Call, Expr, LabelModifier, MatrixSelector, VectorSelector,
};

use super::names::{Known, check_name, is_cumulative, is_fraction, is_gauge};
use super::{Issue, QueryKind};
use crate::findings::Severity;

/// Parses `expr` with promql-parser after replacing each regex matcher by an equality
/// matcher (`a=~"p"` by `a="x"`): the parser compiles a regex per matcher, which was most of
/// the time linting a big dashboard, and the checks never read a regex matcher. Each distinct
/// pattern is still checked for valid syntax, once: `valid` remembers those seen.
pub fn parse(expr: &str, valid: &mut HashSet<String>) -> Result<Expr, String> {
    let (plain, patterns) = without_regexes(expr);
    for pattern in patterns {
        if valid.contains(&pattern) {
            continue;
        }
        let unquoted = promql_parser::util::unquote_string(&pattern)?;
        regex_syntax::Parser::new()
            .parse(&unquoted)
            .map_err(|e| format!("invalid regular expression {pattern}: {e}"))?;
        valid.insert(pattern);
    }
    promql_parser::parser::parse(&plain)
}

/// `expr` with every `=~`/`!~` matcher made `="x"`/`!="x"`, and the patterns (quoted).
fn without_regexes(expr: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(expr.len());
    let mut patterns = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find(['"', '\'', '`']) {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let quote = from.as_bytes()[0];
        let end = quoted_end(from, quote);
        let literal = &from[..end];
        let operator = before.trim_end();
        if let Some(kept) = operator.strip_suffix("=~").or(operator.strip_suffix("!~")) {
            // `=~` becomes `=`, `!~` becomes `!=`; the spaces before the pattern stay.
            out.truncate(out.len() - before.len() + kept.len());
            out.push_str(if operator.ends_with("=~") { "=" } else { "!=" });
            out.push_str(&before[operator.len()..]);
            out.push_str("\"x\"");
            patterns.push(literal.to_string());
        } else {
            out.push_str(literal);
        }
        rest = &from[end..];
    }
    out.push_str(rest);
    (out, patterns)
}

/// The length of the quoted literal at the start of `text` (to the closing quote, or the
/// end when it is not closed).
fn quoted_end(text: &str, quote: u8) -> usize {
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote != b'`' => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// What the checks need besides the expression.
pub struct Context<'a> {
    pub known: &'a Known,
    /// The longest scrape interval of the scrape configs linted, or the assumed one.
    pub scrape_interval: Duration,
    /// Where `scrape_interval` comes from, for messages.
    pub interval_from: &'a str,
    pub kind: QueryKind,
}

/// The context of one expression's walk: the caller's, and every name the expression
/// selects (an old name beside its replacement bridges versions).
struct Scope<'a> {
    ctx: &'a Context<'a>,
    selected: Vec<&'a str>,
}

/// Every metric name `expr` selects, in order, once each.
pub fn names(expr: &Expr) -> Vec<String> {
    let mut out = Vec::new();
    selected_names(expr, &mut out);
    let mut names: Vec<String> = Vec::with_capacity(out.len());
    for name in out {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

/// Every metric name `expr` selects.
fn selected_names<'e>(expr: &'e Expr, out: &mut Vec<&'e str>) {
    match expr {
        Expr::VectorSelector(vs) => out.extend(selector_name(vs)),
        Expr::MatrixSelector(ms) => out.extend(selector_name(&ms.vs)),
        Expr::Aggregate(agg) => {
            selected_names(&agg.expr, out);
            if let Some(param) = &agg.param {
                selected_names(param, out);
            }
        }
        Expr::Unary(e) => selected_names(&e.expr, out),
        Expr::Paren(e) => selected_names(&e.expr, out),
        Expr::Subquery(e) => selected_names(&e.expr, out),
        Expr::Binary(e) => {
            selected_names(&e.lhs, out);
            selected_names(&e.rhs, out);
        }
        Expr::Call(call) => call.args.args.iter().for_each(|a| selected_names(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Where a node sits, as far as the checks care.
#[derive(Clone, Copy, Default)]
struct Position {
    /// Under a function over a range (rate, increase, *_over_time) or one that reads only
    /// presence (absent, count): a counter here is not shown as a value.
    counter_safe: bool,
}

/// Every issue in `expr`, each reported once.
pub fn check<'a>(expr: &'a Expr, ctx: &'a Context<'a>) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut scope = Scope {
        ctx,
        selected: Vec::new(),
    };
    selected_names(expr, &mut scope.selected);
    visit(expr, &scope, Position::default(), &mut issues);
    issues.dedup_by(|a, b| a.check == b.check && a.message == b.message);
    issues
}

fn visit(expr: &Expr, ctx: &Scope<'_>, at: Position, out: &mut Vec<Issue>) {
    match expr {
        Expr::VectorSelector(vs) => selected(vs, ctx, at, out),
        Expr::MatrixSelector(ms) => selected(&ms.vs, ctx, Position { counter_safe: true }, out),
        Expr::Aggregate(agg) => aggregate(agg, ctx, at, out),
        Expr::Unary(e) => visit(&e.expr, ctx, at, out),
        Expr::Paren(e) => visit(&e.expr, ctx, at, out),
        Expr::Subquery(e) => visit(&e.expr, ctx, Position { counter_safe: true }, out),
        Expr::Binary(e) => binary(e, ctx, at, out),
        Expr::Call(call) => function(call, ctx, at, out),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn selected(vs: &VectorSelector, ctx: &Scope<'_>, at: Position, out: &mut Vec<Issue>) {
    let Some(name) = selector_name(vs) else {
        return;
    };
    let kind = ctx.ctx.kind;
    out.extend(check_name(
        name,
        ctx.ctx.known,
        &ctx.selected,
        kind == QueryKind::Record,
    ));
    let shown = matches!(kind, QueryKind::Alert | QueryKind::Panel);
    if shown && !at.counter_safe && is_cumulative(name) && !ctx.ctx.known.has_rate_name(name) {
        let severity = match kind {
            QueryKind::Alert => Severity::Warning,
            _ => Severity::Info,
        };
        out.push(Issue::new(
            severity,
            "instant-counter",
            format!("{name} is a total since the process started, used here as a current value"),
            format!("use rate({name}[5m]) or increase({name}[1h]) for what is happening now"),
        ));
    }
}

/// The metric name a selector selects: its name, or an exact `__name__` matcher.
fn selector_name(vs: &VectorSelector) -> Option<&str> {
    if let Some(name) = &vs.name {
        return Some(name);
    }
    vs.matchers
        .matchers
        .iter()
        .find(|m| m.name == "__name__" && m.op.to_string() == "=")
        .map(|m| m.value.as_str())
}

fn aggregate(agg: &AggregateExpr, ctx: &Scope<'_>, at: Position, out: &mut Vec<Issue>) {
    let op = agg.op.to_string();
    let presence_only = matches!(op.as_str(), "count" | "group" | "count_values");
    let inner = Position {
        counter_safe: at.counter_safe || presence_only,
    };
    visit(&agg.expr, ctx, inner, out);
    if let Some(param) = &agg.param {
        visit(param, ctx, at, out);
    }
}

fn binary(e: &BinaryExpr, ctx: &Scope<'_>, at: Position, out: &mut Vec<Issue>) {
    let op = e.op.to_string();
    if op == "/"
        && let Some(base) = lifetime_average(&e.lhs, &e.rhs)
    {
        out.push(Issue::new(
            Severity::Warning,
            "lifetime-average",
            format!("{base}_sum / {base}_count is the average since the process started, not the current one"),
            format!("use rate({base}_sum[5m]) / rate({base}_count[5m])"),
        ));
        return;
    }
    if is_comparison(&op) {
        percent_threshold(e, out);
    }
    visit(&e.lhs, ctx, at, out);
    // `and`/`unless` read only which series exist on the right, not their values.
    let rhs_at = match op.as_str() {
        "and" | "unless" => Position { counter_safe: true },
        _ => at,
    };
    visit(&e.rhs, ctx, rhs_at, out);
}

fn is_comparison(op: &str) -> bool {
    matches!(op, ">" | "<" | ">=" | "<=" | "==" | "!=")
}

/// `X_sum / X_count` over instant vectors: the base name `X`.
fn lifetime_average(lhs: &Expr, rhs: &Expr) -> Option<String> {
    let sum = instant_name(lhs)?.strip_suffix("_sum")?.to_string();
    let count = instant_name(rhs)?.strip_suffix("_count")?.to_string();
    (sum == count).then_some(sum)
}

/// The name of an instant selector, through parentheses and aggregations.
fn instant_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::VectorSelector(vs) => selector_name(vs),
        Expr::Paren(e) => instant_name(&e.expr),
        Expr::Aggregate(agg) => instant_name(&agg.expr),
        _ => None,
    }
}

/// A 0–1 fraction compared with a number above 1: written as if it were a percentage, so
/// the comparison never holds (or always does).
fn percent_threshold(e: &BinaryExpr, out: &mut Vec<Issue>) {
    let pairs = [(&e.lhs, &e.rhs), (&e.rhs, &e.lhs)];
    for (side, other) in pairs {
        if let (Some(name), Expr::NumberLiteral(n)) = (fraction_name(side), other.as_ref())
            && n.val > 1.0
            && n.val <= 100.0
        {
            out.push(Issue::new(
                Severity::Critical,
                "percent-threshold",
                format!(
                    "{name} is a fraction from 0 to 1, compared with {}: a percentage threshold on a ratio never matches as meant",
                    n.val
                ),
                format!("compare with {}", n.val / 100.0),
            ));
        }
    }
}

/// The fraction an expression passes through unchanged in scale, if it is one.
fn fraction_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::VectorSelector(vs) => selector_name(vs).filter(|n| is_fraction(n)),
        Expr::MatrixSelector(ms) => selector_name(&ms.vs).filter(|n| is_fraction(n)),
        Expr::Paren(e) => fraction_name(&e.expr),
        Expr::Aggregate(agg) => {
            let op = agg.op.to_string();
            matches!(
                op.as_str(),
                "max" | "min" | "avg" | "quantile" | "topk" | "bottomk"
            )
            .then(|| fraction_name(&agg.expr))
            .flatten()
        }
        Expr::Call(call) => {
            let name = call.func.name;
            let keeps_scale = name.ends_with("_over_time") && name != "count_over_time"
                || matches!(name, "clamp" | "clamp_max" | "clamp_min" | "abs" | "round");
            // The series argument: quantile_over_time's first argument is the quantile.
            let first = call
                .args
                .args
                .iter()
                .find(|a| !matches!(a.as_ref(), Expr::NumberLiteral(_)))?;
            keeps_scale.then(|| fraction_name(first)).flatten()
        }
        _ => None,
    }
}

fn function(call: &Call, ctx: &Scope<'_>, at: Position, out: &mut Vec<Issue>) {
    let name = call.func.name;
    match name {
        "rate" | "irate" | "increase" => {
            if let Some(Expr::MatrixSelector(ms)) = call.args.args.first().map(AsRef::as_ref) {
                rate_of_gauge(name, ms, out);
                short_window(name, ms, ctx.ctx, out);
            }
        }
        "histogram_quantile" => {
            if let Some(buckets) = call.args.args.get(1) {
                quantile_buckets(buckets, ctx.ctx, out);
            }
        }
        _ => {}
    }
    // histogram_quantile's buckets are judged by quantile_buckets, once.
    let presence_only = matches!(
        name,
        "absent" | "timestamp" | "changes" | "resets" | "histogram_quantile"
    );
    let inner = Position {
        counter_safe: at.counter_safe || takes_range(call) || presence_only,
    };
    for arg in &call.args.args {
        visit(arg, ctx, inner, out);
    }
}

/// Whether a call reads a range (a range selector or a subquery argument): `rate`,
/// `increase`, `*_over_time` and the like.
fn takes_range(call: &Call) -> bool {
    call.args
        .args
        .iter()
        .any(|a| matches!(a.as_ref(), Expr::MatrixSelector(_) | Expr::Subquery(_)))
}

fn rate_of_gauge(function: &str, ms: &MatrixSelector, out: &mut Vec<Issue>) {
    let Some(name) = selector_name(&ms.vs) else {
        return;
    };
    if is_gauge(name) {
        out.push(Issue::new(
            Severity::Warning,
            "rate-of-gauge",
            format!("{function}() of {name}, a gauge: {function} assumes a counter and reads every fall as a reset"),
            format!("show {name} itself, avg_over_time({name}[5m]), or deriv({name}[5m]) for its trend"),
        ));
    }
}

fn short_window(function: &str, ms: &MatrixSelector, ctx: &Context<'_>, out: &mut Vec<Issue>) {
    let needed = ctx.scrape_interval * if function == "irate" { 2 } else { 4 };
    if ms.range < needed {
        let name = selector_name(&ms.vs).unwrap_or("the series");
        out.push(Issue::new(
            Severity::Warning,
            "short-rate-window",
            format!(
                "{function}({name}[{}]) spans fewer than {} scrapes at {} ({}): it is empty or jumps whenever a scrape is late",
                promql_parser::util::display_duration(&ms.range),
                needed.as_secs() / ctx.scrape_interval.as_secs().max(1),
                promql_parser::util::display_duration(&ctx.scrape_interval),
                ctx.interval_from,
            ),
            format!(
                "use a window of at least {} (in Grafana, $__rate_interval)",
                promql_parser::util::display_duration(&needed)
            ),
        ));
    }
}

/// `histogram_quantile`'s second argument: buckets must be rated, and `le` kept by every
/// aggregation on the way.
fn quantile_buckets(buckets: &Expr, ctx: &Context<'_>, out: &mut Vec<Issue>) {
    let mut node = buckets;
    loop {
        match node {
            Expr::Paren(e) => node = &e.expr,
            Expr::Aggregate(agg) => {
                if drops_le(agg.modifier.as_ref()) {
                    out.push(Issue::new(
                        Severity::Critical,
                        "quantile-without-le",
                        format!(
                            "histogram_quantile over {}(…) that drops the le label: there are no buckets left, so the result is empty",
                            agg.op
                        ),
                        "keep le in the aggregation: sum by (le, …) (rate(…_bucket[5m]))".into(),
                    ));
                    return;
                }
                node = &agg.expr;
            }
            _ => break,
        }
    }
    let mut unrated = Vec::new();
    unrated_buckets(node, false, ctx, &mut unrated);
    if let Some(name) = unrated.first() {
        out.push(Issue::new(
            Severity::Warning,
            "quantile-without-rate",
            format!("histogram_quantile over {name} without rate(): the quantile of everything since the process started, not of now"),
            format!("histogram_quantile(0.99, sum by (le) (rate({name}[5m])))"),
        ));
    }
}

fn drops_le(modifier: Option<&LabelModifier>) -> bool {
    match modifier {
        None => true,
        Some(LabelModifier::Include(labels)) => !labels.labels.iter().any(|l| l == "le"),
        Some(LabelModifier::Exclude(labels)) => labels.labels.iter().any(|l| l == "le"),
    }
}

/// `_bucket` series selected as instant vectors outside any range function.
fn unrated_buckets(expr: &Expr, rated: bool, ctx: &Context<'_>, out: &mut Vec<String>) {
    match expr {
        Expr::VectorSelector(vs) => {
            if let Some(name) = selector_name(vs)
                && name.ends_with("_bucket")
                && !rated
                && !ctx.known.has_rate_name(name)
            {
                out.push(name.to_string());
            }
        }
        Expr::Call(call) => {
            let rated = rated || takes_range(call);
            call.args
                .args
                .iter()
                .for_each(|a| unrated_buckets(a, rated, ctx, out));
        }
        Expr::Aggregate(agg) => unrated_buckets(&agg.expr, rated, ctx, out),
        Expr::Paren(e) => unrated_buckets(&e.expr, rated, ctx, out),
        Expr::Binary(e) => {
            unrated_buckets(&e.lhs, rated, ctx, out);
            unrated_buckets(&e.rhs, rated, ctx, out);
        }
        _ => {}
    }
}
