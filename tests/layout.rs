//! The shape of the code, checked on every run: the request path's layers
//! point one way (no cycle among `proxy`, `slice`, `cache` and `range`),
//! every `ProxyHttp` phase fits on a screen, no source file grows past 700
//! lines, and the README stays short and links every page in `docs/`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The modules of the request path whose dependencies must not form a cycle.
const LAYERS: &[&str] = &["proxy", "slice", "cache", "range"];
const MAX_FILE_LINES: usize = 700;
const MAX_PHASE_LINES: usize = 40;
const MAX_README_LINES: usize = 250;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src"), &mut files);
    files.sort();
    assert!(files.len() > 20, "the sources were not found");
    files
}

/// The top-level module a file of `src/` belongs to (`src/cache/key.rs` and
/// `src/cache.rs` are both `cache`).
fn top_module(file: &Path) -> String {
    let rel = file
        .strip_prefix(Path::new(ROOT).join("src"))
        .expect("under src");
    let first = rel.components().next().expect("a component");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

/// The top-level modules a source text names through `crate::`, in paths
/// (`crate::cache::key`) and in grouped imports (`use crate::{cache, range}`).
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name = ident(item);
                if !name.is_empty() {
                    refs.insert(name);
                }
            }
        } else {
            refs.insert(ident(rest));
        }
    }
    refs
}

/// Whether `graph` has a cycle; the first one found, as a path.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
        }
        g
    };
    assert_eq!(find_cycle(&graph(&[("a", "b"), ("b", "c")])), None);
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let refs = crate_refs("use crate::cache::key;\nuse crate::{range, slice::X};\n");
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        ["cache", "range", "slice"]
    );
}

#[test]
fn the_request_path_layers_have_no_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in src_files() {
        let module = top_module(&file);
        if !LAYERS.contains(&module.as_str()) {
            continue;
        }
        let text = fs::read_to_string(&file).expect("readable source");
        let uses = graph.entry(module.clone()).or_default();
        for used in crate_refs(&text) {
            if used != module && LAYERS.contains(&used.as_str()) {
                uses.insert(used);
            }
        }
    }
    assert_eq!(graph.len(), LAYERS.len(), "every layer was read: {graph:?}");
    assert_eq!(find_cycle(&graph), None, "layers: {graph:?}");
}

#[test]
fn no_source_file_is_over_700_lines() {
    let long: Vec<String> = src_files()
        .iter()
        .filter_map(|f| {
            let lines = fs::read_to_string(f).expect("readable").lines().count();
            (lines > MAX_FILE_LINES).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these by concern: {long:?}");
}

/// Each method of `impl ProxyHttp for Edge`, with its length in lines.
fn phases(text: &str) -> Vec<(String, usize)> {
    let start = text
        .find("impl ProxyHttp for Edge {")
        .expect("the ProxyHttp impl");
    let mut phases = Vec::new();
    let mut open: Option<(String, usize)> = None;
    for (i, line) in text[start..].lines().enumerate().skip(1) {
        if line == "}" {
            break;
        }
        let is_head = line.starts_with("    fn ") || line.starts_with("    async fn ");
        if open.is_none() && is_head {
            let name = line
                .trim_start()
                .trim_start_matches("async ")
                .trim_start_matches("fn ")
                .split(['(', '<'])
                .next()
                .unwrap_or_default()
                .to_string();
            // Doc comments and attributes above the head are not counted.
            open = Some((name, i));
        }
        if let Some((name, from)) = &open
            && (line == "    }" || (is_head && line.ends_with('}')))
        {
            phases.push((name.clone(), i - from + 1));
            open = None;
        }
    }
    phases
}

#[test]
fn every_proxy_phase_fits_on_a_screen() {
    let text = fs::read_to_string(Path::new(ROOT).join("src/proxy/mod.rs")).expect("readable");
    let phases = phases(&text);
    assert!(
        phases.iter().any(|(n, _)| n == "request_filter")
            && phases.iter().any(|(n, _)| n == "logging"),
        "phases found: {phases:?}"
    );
    let long: Vec<_> = phases
        .iter()
        .filter(|(_, lines)| *lines >= MAX_PHASE_LINES)
        .collect();
    assert!(
        long.is_empty(),
        "hand these phases' work to a module: {long:?}"
    );
}

#[test]
fn the_readme_is_short_and_links_every_doc_page() {
    let readme = fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README.md");
    let lines = readme.lines().count();
    assert!(lines < MAX_README_LINES, "README.md has {lines} lines");
    let mut pages = Vec::new();
    for entry in fs::read_dir(Path::new(ROOT).join("docs")).expect("docs/") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".md") {
            pages.push(name);
        }
    }
    assert!(!pages.is_empty(), "docs/ has pages");
    let unlinked: Vec<_> = pages
        .iter()
        .filter(|p| !readme.contains(&format!("(docs/{p})")))
        .collect();
    assert!(unlinked.is_empty(), "README.md links no {unlinked:?}");
}
