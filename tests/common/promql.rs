//! The metric names a PromQL expression selects, found by a small tokenizer
//! (not a parser): enough to check that alert rules and dashboard queries
//! only name metrics the node exports. Strings, label matchers, range and
//! subquery brackets, numbers, durations and Grafana variables are skipped;
//! so are keywords, aggregations, functions and the label lists of `by`,
//! `without`, `on`, `ignoring`, `group_left` and `group_right`.

use std::collections::BTreeSet;

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "inf",
    "nan",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn skip_string(chars: &[char], mut i: usize) -> usize {
    let quote = chars[i];
    i += 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// Skips from an opening bracket to just past its matching closing one,
/// stepping over strings.
fn skip_group(chars: &[char], mut i: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = skip_string(chars, i);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// The metric names a PromQL expression selects: identifiers that are not
/// functions, keywords, label names or Grafana variables.
pub fn metric_names_in(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let ident_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '{' {
            i = skip_group(&chars, i, '{', '}');
        } else if c == '[' {
            i = skip_group(&chars, i, '[', ']');
        } else if c == '$' {
            // A Grafana variable: $name or ${name}.
            i += 1;
            if i < chars.len() && chars[i] == '{' {
                i = skip_group(&chars, i, '{', '}');
            } else {
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() || c == '.' {
            // Numbers and durations (5m, 1e3, 0.5).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if ident_start(c) {
            let start = i;
            while i < chars.len() && ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let next = chars.get(j).copied();
            let lower = word.to_ascii_lowercase();
            if LABEL_LIST_KEYWORDS.contains(&lower.as_str()) {
                if next == Some('(') {
                    i = skip_group(&chars, j, '(', ')');
                }
            } else if KEYWORDS.contains(&lower.as_str()) || next == Some('(') {
                // A keyword, an aggregation or a function.
            } else {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::metric_names_in;

    /// (expression, the names it selects)
    const CASES: &[(&str, &[&str])] = &[
        ("up", &["up"]),
        (
            "rate(cdn_node_requests_total[5m])",
            &["cdn_node_requests_total"],
        ),
        // Aggregations and their label lists, either side of the body.
        ("sum by (pop, instance) (a)", &["a"]),
        ("sum(b) without (le)", &["b"]),
        ("SUM(c) BY (pop)", &["c"]),
        // Vector matching: the label lists are no metrics.
        ("d / on(pop) group_left(instance) e", &["d", "e"]),
        ("f * ignoring (le) group_right g", &["f", "g"]),
        // Label matchers, with strings holding braces, quotes and names.
        (r#"h{job="cdn-node", le=~"0.5|1"}"#, &["h"]),
        (r#"i{a="}", b='x"y', c=`z`}"#, &["i"]),
        (
            r#"label_replace(j, "dst", "$1", "src", "(other_name)")"#,
            &["j"],
        ),
        // Ranges, offsets, numbers and durations.
        ("k[1h:5m] offset 10m", &["k"]),
        ("l > 1e3 and m < 0.5", &["l", "m"]),
        ("n > Inf or o == NaN", &["n", "o"]),
        // Grafana variables, bare and braced.
        (r#"rate(p{pop=~"$pop"}[$__rate_interval])"#, &["p"]),
        ("q{instance=~\"${instance}\"} > $threshold", &["q"]),
        // Recording rule names hold colons.
        ("job:r:rate5m unless s", &["job:r:rate5m", "s"]),
        ("t > bool 1", &["t"]),
        (
            "histogram_quantile(0.9, sum by (le) (rate(u_bucket[5m])))",
            &["u_bucket"],
        ),
        ("vector(1)", &[]),
        ("", &[]),
    ];

    #[test]
    fn each_expression_yields_exactly_its_metric_names() {
        for (expr, want) in CASES {
            let got: Vec<String> = metric_names_in(expr).into_iter().collect();
            let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            want.sort();
            assert_eq!(got, want, "{expr}");
        }
    }

    #[test]
    fn an_unclosed_string_or_bracket_ends_the_expression() {
        for (expr, want) in [
            (r#"a{job="cdn"#, vec!["a"]),
            ("b[5m", vec!["b"]),
            ("c + 'd", vec!["c"]),
            ("sum by (pop", vec![]),
        ] {
            let got: Vec<String> = metric_names_in(expr).into_iter().collect();
            assert_eq!(got, want, "{expr}");
        }
    }
}
