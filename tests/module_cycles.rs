//! The top-level modules of src/ depend on each other without cycles: a module that needs
//! another's types or functions sits above it, so each can be read (and changed) knowing only
//! what is below. A `crate::x` path in module y (outside its tests) is an edge y -> x; a new
//! cycle fails here, named with a file that makes each of its edges. Known exceptions would be
//! listed in `KNOWN_CYCLES`; there are none.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Cycles tolerated for now, each as its sorted module names with the reason. Empty: keep it so.
const KNOWN_CYCLES: &[&[&str]] = &[];

/// module -> (module it uses -> a file where it does).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// The code of a file without comments and test-only code (`#[cfg(test)]` modules and
/// items): tests may use anything, the layering is about what ships.
fn shipped_code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        if t.starts_with("#[cfg(test)]") {
            // Skip the next item: up to its `;`, or its braces' end.
            let mut depth = 0i32;
            let mut opened = false;
            for next in lines.by_ref() {
                depth += next.matches('{').count() as i32 - next.matches('}').count() as i32;
                opened |= next.contains('{');
                if (opened && depth <= 0) || (!opened && next.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        // A trailing comment can name a path that is not used.
        let code = match line.find("// ") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The top-level modules a piece of code names: `crate::x::...` and `use crate::{x, y::z}`.
fn used_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level entries of the group only: `a::{b, c}` is module a.
            let mut depth = 0;
            let mut start = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.insert(ident(group[start..j].trim()));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(group[start..j].trim()));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

/// The graph of `files` (path relative to src/, text).
fn graph(files: &[(String, String)]) -> Graph {
    let tops: BTreeSet<String> = files
        .iter()
        .map(|(p, _)| top_module(p))
        .filter(|m| m != "main" && m != "lib")
        .collect();
    let mut g = Graph::new();
    for (path, text) in files {
        let from = top_module(path);
        let is_test_file = Path::new(path).file_name().is_some_and(|n| n == "tests.rs");
        if !tops.contains(&from) || is_test_file {
            continue;
        }
        for to in used_modules(&shipped_code(text)) {
            if to != from && tops.contains(&to) {
                g.entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| path.clone());
            }
        }
    }
    g
}

fn top_module(path: &str) -> String {
    let first = path.split('/').next().unwrap_or(path);
    first.strip_suffix(".rs").unwrap_or(first).to_string()
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let g = s.g;
        for w in g.get(v).into_iter().flat_map(|m| m.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// A cycle's edges with the file that makes each, for the failure message.
fn explain(g: &Graph, comp: &[String]) -> String {
    let mut lines = Vec::new();
    for a in comp {
        for (b, file) in g.get(a).into_iter().flatten() {
            if comp.contains(b) {
                lines.push(format!("  {a} -> {b} (src/{file})"));
            }
        }
    }
    format!("cycle {}:\n{}", comp.join(" <-> "), lines.join("\n"))
}

fn read_src(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            read_src(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under src");
            let text = std::fs::read_to_string(&path).expect("read file");
            out.push((rel.to_string_lossy().replace('\\', "/"), text));
        }
    }
}

#[test]
fn top_level_modules_have_no_cycles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_src(&root, &root, &mut files);
    let g = graph(&files);
    assert!(
        g.get("cli").is_some_and(|m| m.contains_key("cmd")),
        "the scan finds edges (cli -> cmd): {g:?}"
    );
    let found: Vec<String> = cycles(&g)
        .into_iter()
        .filter(|c| !KNOWN_CYCLES.iter().any(|k| k.iter().eq(c.iter())))
        .map(|c| explain(&g, &c))
        .collect();
    assert!(
        found.is_empty(),
        "import cycles between top-level modules of src/ (move the shared part into a module \
         both use, below them):\n{}",
        found.join("\n")
    );
}

/// The check itself: a cycle through a `use crate::{..}` group is found and named; test
/// code and comments make no edges.
#[test]
fn a_cycle_is_found_and_test_code_is_not_an_edge() {
    let files = vec![
        ("lib.rs".to_string(), "pub mod a; pub mod b; pub mod c;".to_string()),
        (
            "a/mod.rs".to_string(),
            "use crate::{b::{X, Y}, duration};\n// crate::c in a comment\n".to_string(),
        ),
        ("b.rs".to_string(), "fn f() { crate::c::g() }\n".to_string()),
        (
            "c.rs".to_string(),
            "pub fn g() {}\nfn h() -> crate::a::T { todo!() }\n#[cfg(test)]\nmod tests {\n    use crate::b::X;\n}\n"
                .to_string(),
        ),
        ("b/tests.rs".to_string(), "use crate::a::Z;\n".to_string()),
    ];
    let g = graph(&files);
    assert_eq!(cycles(&g), vec![vec!["a", "b", "c"]]);
    assert!(!g["c"].contains_key("b"), "test module made an edge: {g:?}");
    assert!(!g["a"].contains_key("c"), "comment made an edge: {g:?}");
    assert!(
        !g.contains_key("b") || !g["b"].contains_key("a"),
        "tests.rs made an edge"
    );
    assert!(explain(&g, &cycles(&g)[0]).contains("a -> b (src/a/mod.rs)"));
}
