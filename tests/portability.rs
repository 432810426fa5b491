//! The scripts a platform user runs on a Mac (examples/ci/*.sh, the kind-up and kind-down
//! recipes and the hack scripts they call) must run with macOS's bash 3.2 and BSD tools. No
//! bash 3.2 or BSD userland is at hand here, so this reads them for the constructs that fail
//! there; the Linux-only hack/testenv scripts instead refuse other hosts (tested below).

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A construct that fails on macOS, and why.
struct Rule {
    why: &'static str,
    hit: fn(&str) -> bool,
}

fn words(line: &str) -> Vec<&str> {
    line.split(|c: char| c.is_whitespace() || c == ';' || c == '|' || c == '(' || c == '`')
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether any leading option argument of a `tool` invocation in the line satisfies `hit`.
fn tool_option(line: &str, tools: &[&str], hit: impl Fn(&str) -> bool) -> bool {
    let w = words(line);
    w.iter().enumerate().any(|(i, t)| {
        tools.contains(t)
            && w[i + 1..]
                .iter()
                .take_while(|a| a.starts_with('-'))
                .any(|a| hit(a))
    })
}

/// `tool` with the short flag `-c`, alone or in a cluster (`-oP`).
fn tool_flag(line: &str, tool: &str, flag: char) -> bool {
    tool_option(line, &[tool], |a| {
        !a.starts_with("--") && a[1..].contains(flag)
    })
}

/// `sed -i` (or a cluster ending in i, `-Ei`) with no suffix attached; `-i.bak` works on both.
fn sed_in_place_without_suffix(line: &str) -> bool {
    tool_option(line, &["sed"], |a| {
        a == "--in-place" || (!a.starts_with("--") && a.ends_with('i'))
    })
}

/// declare/local/typeset with the attribute `flag` (-A associative, -n nameref).
fn declare_flag(line: &str, flag: char) -> bool {
    tool_option(line, &["declare", "local", "typeset"], |a| a.contains(flag))
}

const RULES: &[Rule] = &[
    Rule {
        why: "mapfile/readarray are bash 4",
        hit: |l| {
            words(l)
                .iter()
                .any(|w| *w == "mapfile" || *w == "readarray")
        },
    },
    Rule {
        why: "associative arrays (declare -A) are bash 4",
        hit: |l| declare_flag(l, 'A'),
    },
    Rule {
        why: "namerefs (declare -n) are bash 4.3",
        hit: |l| declare_flag(l, 'n'),
    },
    Rule {
        why: "case conversion ${v,,} ${v^^} is bash 4",
        hit: |l| {
            l.contains(",,}")
                || l.contains("^^}")
                || l.contains("@Q}")
                || l.contains("@U}")
                || l.contains("@L}")
        },
    },
    Rule {
        why: "|& and &>> are bash 4",
        hit: |l| l.contains("|&") || l.contains("&>>"),
    },
    Rule {
        why: "coproc, EPOCHSECONDS, inherit_errexit, globstar and lastpipe are bash 4+",
        hit: |l| {
            [
                "coproc ",
                "EPOCHSECONDS",
                "EPOCHREALTIME",
                "inherit_errexit",
                "globstar",
                "lastpipe",
            ]
            .iter()
            .any(|s| l.contains(s))
        },
    },
    Rule {
        why: "wait -n is bash 4.3",
        hit: |l| {
            l.split([';', '|', '&', '('])
                .any(|c| c.trim_start().starts_with("wait -n"))
        },
    },
    Rule {
        why: "case fall-through ;& and ;;& are bash 4",
        hit: |l| l.contains(";;&") || l.trim_end().ends_with(";&"),
    },
    Rule {
        why: "negative array subscripts are bash 4.3",
        hit: |l| l.contains("[-1]}"),
    },
    Rule {
        why: "BSD sed -i needs a suffix argument: write sed -i.bak and remove the backup",
        hit: sed_in_place_without_suffix,
    },
    Rule {
        why: "date %N (nanoseconds, %3N) is GNU",
        hit: |l| l.contains("date") && (l.contains("%N") || l.contains("%3N")),
    },
    Rule {
        why: "timeout, realpath, sha256sum and tac are not on macOS",
        hit: |l| {
            words(l)
                .iter()
                .any(|w| matches!(*w, "timeout" | "realpath" | "sha256sum" | "tac"))
        },
    },
];

/// GNU-only flags: (tool, flag, why).
const GNU_FLAGS: &[(&str, char, &str)] = &[
    ("sed", 'r', "sed -r is GNU (use -E)"),
    (
        "readlink",
        'f',
        "readlink -f is GNU (use cd \"$(dirname ...)\" && pwd)",
    ),
    ("grep", 'P', "grep -P is GNU"),
    ("stat", 'c', "stat -c is GNU (BSD: stat -f)"),
    ("xargs", 'r', "xargs -r is GNU"),
    ("base64", 'w', "base64 -w is GNU"),
    ("sort", 'V', "sort -V is GNU"),
];

/// Every construct in `text` that fails on macOS, as `line: why`.
fn findings(text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with('#'))
        .flat_map(|(n, l)| {
            let rules = RULES.iter().filter(|r| (r.hit)(l)).map(|r| r.why);
            let flags = GNU_FLAGS
                .iter()
                .filter(|(tool, flag, _)| tool_flag(l, tool, *flag))
                .map(|(_, _, why)| *why);
            rules
                .chain(flags)
                .map(move |why| format!("{}: {why} ({})", n + 1, l.trim()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The recipe lines of a Makefile target.
fn recipe<'a>(makefile: &'a str, target: &str) -> Vec<&'a str> {
    let head = format!("{target}:");
    makefile
        .lines()
        .skip_while(|l| !l.starts_with(&head))
        .skip(1)
        .take_while(|l| l.starts_with('\t'))
        .collect()
}

/// What a Mac user runs: examples/ci/*.sh, the kind targets' recipes, and each repository
/// script those name.
fn mac_scripts() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let ci = Path::new(ROOT).join("examples/ci");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&ci)
        .expect("examples/ci")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    let makefile = std::fs::read_to_string(Path::new(ROOT).join("Makefile")).expect("Makefile");
    for target in ["kind-up", "kind-down"] {
        let lines = recipe(&makefile, target);
        assert!(!lines.is_empty(), "no recipe for make {target}");
        for l in &lines {
            for w in words(l) {
                if (w.starts_with("hack/") || w.starts_with("examples/ci/"))
                    && Path::new(ROOT).join(w).is_file()
                {
                    files.push(Path::new(ROOT).join(w));
                }
            }
        }
        out.push((format!("Makefile ({target})"), lines.join("\n")));
    }
    assert!(files.iter().any(|f| f.ends_with("pr-environment.sh")));
    for f in files {
        let text = std::fs::read_to_string(&f).expect("script");
        out.push((f.display().to_string(), text));
    }
    out
}

#[test]
fn the_scripts_a_mac_user_runs_use_nothing_bash_3_2_or_bsd_tools_lack() {
    let bad: Vec<String> = mac_scripts()
        .iter()
        .flat_map(|(name, text)| {
            findings(text)
                .into_iter()
                .map(move |f| format!("{name}:{f}"))
        })
        .collect();
    assert!(bad.is_empty(), "not portable to macOS:\n{}", bad.join("\n"));
}

#[test]
fn the_check_catches_each_construct() {
    let bad = [
        "mapfile -t lines < f",
        "declare -A seen",
        "local -n ref=$1",
        "echo ${name,,}",
        "make 2>&1 |& tee",
        "wait -n",
        "sed -i 's/a/b/' f",
        "sed -i -e 's/a/b/' f",
        "sed -Ei 's/a/b/' f",
        "x=$(date +%s%3N)",
        "here=$(readlink -f \"$0\")",
        "grep -oP '\\d+' f",
        "stat -c %s f",
        "ls | xargs -r rm",
        "base64 -w0 f",
        "sort -V",
        "timeout 5 curl x",
        "sha256sum f",
    ];
    for line in bad {
        assert!(!findings(line).is_empty(), "not caught: {line}");
    }
    let good = [
        "sed -i.bak 's/a/b/' f && rm f.bak",
        "sed -E 's/a/b/' f",
        "here=$(cd \"$(dirname \"$0\")\" && pwd)",
        "grep -qx parity",
        "printf '%s' \"$v\" | tr '[:upper:]' '[:lower:]'",
        "# mapfile in a comment",
        "date +%s",
    ];
    for line in good {
        assert!(
            findings(line).is_empty(),
            "flagged: {line}: {:?}",
            findings(line)
        );
    }
}

/// hack/testenv needs Linux (namespaces, cgroups, iptables) and bash 4: every script of it
/// sources lib.sh first, which on a Mac says so before anything else, naming the alternative.
#[test]
fn the_linux_only_testenv_refuses_another_host_with_the_reason() {
    let out = Command::new("bash")
        .args([
            "-c",
            "uname() { echo Darwin; }; source hack/testenv/lib.sh; echo sourced",
        ])
        .current_dir(ROOT)
        .output()
        .expect("bash");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && out.stdout.is_empty(),
        "hack/testenv/lib.sh accepted a Darwin host: {err}"
    );
    assert!(
        err.contains("needs Linux") && err.contains("Darwin") && err.contains("make kind-up"),
        "{err}"
    );
    // And on this Linux host with its bash it is quiet.
    let ok = Command::new("bash")
        .args(["-c", "source hack/testenv/lib.sh && echo sourced"])
        .current_dir(ROOT)
        .output()
        .expect("bash");
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "sourced\n", "{ok:?}");
}
