//! `applog completions SHELL` and `applog man`: made from the command line's own
//! definitions, so they name every command; the bash script parses, the man page is roff.
#![cfg(unix)]

mod common;

use std::ffi::OsStr;

use common::cli::*;

/// Every command of the tool.
const COMMANDS: [&str; 11] = [
    "append",
    "tail",
    "verify",
    "info",
    "recover",
    "copy",
    "consumers",
    "trim",
    "ship",
    "completions",
    "man",
];

#[test]
fn bash_completion_names_every_command_and_parses() {
    let script = run(&["completions", "bash"]).ok().to_string();
    for c in COMMANDS {
        assert!(script.contains(c), "{c} missing from the bash completion");
    }
    // Flags of a command too.
    assert!(script.contains("--until-seq"), "no tail flags");
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("applog.bash");
    std::fs::write(&file, &script).expect("write");
    let out = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("run bash -n");
    assert!(out.status.success(), "bash -n: {out:?}");
}

#[test]
fn zsh_and_fish_completions_name_every_command() {
    let zsh = run(&["completions", "zsh"]).ok().to_string();
    assert!(zsh.starts_with("#compdef applog"), "{zsh}");
    let fish = run(&["completions", "fish"]).ok().to_string();
    for c in COMMANDS {
        assert!(zsh.contains(c), "{c} missing from the zsh completion");
        assert!(fish.contains(c), "{c} missing from the fish completion");
    }
}

#[test]
fn completions_for_an_unknown_shell_is_a_usage_error() {
    for args in [&["completions", "tcsh"][..], &["completions"]] {
        let out = run(args);
        assert!(out.usage_error().starts_with("applog: error: "), "{out:?}");
    }
}

/// The man(7) macros and roff requests a page may use.
const ROFF_REQUESTS: [&str; 21] = [
    "TH", "SH", "SS", "TP", "IP", "PP", "LP", "P", "RS", "RE", "B", "I", "BR", "IR", "br", "sp",
    "nf", "fi", "ie", "el", "ds",
];

/// Checks that `page` is a man page in roff: a `.TH` title naming `name` first, the NAME,
/// SYNOPSIS and DESCRIPTION sections, only known requests, and escapes that are complete.
#[track_caller]
fn assert_man_page(page: &str, name: &str) {
    let controls: Vec<&str> = page.lines().filter(|l| l.starts_with('.')).collect();
    let first_macro = controls
        .iter()
        .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"))
        .expect("a macro");
    assert!(
        first_macro.starts_with(&format!(".TH {name} 1")),
        "{first_macro}"
    );
    for section in ["NAME", "SYNOPSIS", "DESCRIPTION"] {
        assert!(
            page.lines().any(|l| l == format!(".SH {section}")),
            "no {section} in {name}"
        );
    }
    for line in &controls {
        let request = line[1..].split_whitespace().next().unwrap_or("");
        assert!(
            ROFF_REQUESTS.contains(&request),
            "unknown request {line:?} in {name}"
        );
    }
    // Every font escape is closed on its line (\fB ... \fR), and no line ends in a lone \.
    for line in page.lines() {
        let opened = line.matches("\\fB").count() + line.matches("\\fI").count();
        let closed = line.matches("\\fR").count() + line.matches("\\fP").count();
        assert_eq!(opened, closed, "unbalanced fonts in {line:?} of {name}");
        assert!(
            !line.ends_with('\\') || line.ends_with("\\\\"),
            "{line:?} in {name}"
        );
    }
}

#[test]
fn man_prints_a_roff_page_naming_every_command() {
    let page = run(&["man"]).ok().to_string();
    assert_man_page(&page, "applog");
    for c in COMMANDS {
        assert!(
            page.contains(&format!("applog\\-{c}(1)")),
            "{c} missing from the man page"
        );
    }
}

#[test]
fn man_dir_writes_one_page_per_command() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = run(&[
        OsStr::new("man"),
        OsStr::new("--dir"),
        tmp.path().as_os_str(),
    ]);
    assert!(out.ok().starts_with("wrote the man pages into "), "{out:?}");
    assert_man_page(
        &std::fs::read_to_string(tmp.path().join("applog.1")).expect("applog.1"),
        "applog",
    );
    for c in COMMANDS {
        let name = format!("applog-{c}");
        let page = std::fs::read_to_string(tmp.path().join(format!("{name}.1")))
            .unwrap_or_else(|e| panic!("{name}.1: {e}"));
        assert_man_page(&page, &name);
    }
    let tail = std::fs::read_to_string(tmp.path().join("applog-tail.1")).expect("read");
    assert!(tail.contains("until\\-seq"), "{tail}");
}

#[test]
fn man_dir_that_does_not_exist_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("missing");
    let out = run(&[OsStr::new("man"), OsStr::new("--dir"), missing.as_os_str()]);
    assert!(
        out.failed().contains(&missing.display().to_string()),
        "{out:?}"
    );
}
