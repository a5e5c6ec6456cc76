//! Data-driven test: every `tests/data/config/NAME.toml` (at the repository root) is parsed and
//! its diagnostics, one `NAME.toml:LINE:COL: message` per line, must equal `NAME.expected`
//! byte for byte (empty for a valid file). `UPDATE_GOLDEN=1 cargo test -p millwright --test
//! config_golden` rewrites the `.expected` files; review the diff before committing.

use std::fs;
use std::path::{Path, PathBuf};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/config")
}

fn render(source: &str, name: &str) -> String {
    match millwright::config_registry().parse(source, name) {
        Ok(_) => String::new(),
        Err(d) => format!("{d}\n"),
    }
}

#[test]
fn golden_config_diagnostics() {
    let dir = cases_dir();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut inputs: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 10,
        "expected at least 10 cases in {}, found {}",
        dir.display(),
        inputs.len()
    );

    let mut failures = Vec::new();
    let mut valid = 0;
    for input in &inputs {
        let name = input
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 file name");
        let source = fs::read_to_string(input).expect("read case");
        let actual = render(&source, name);
        valid += usize::from(actual.is_empty());
        let expected_path = input.with_extension("expected");
        if update {
            fs::write(&expected_path, &actual).expect("write .expected");
            continue;
        }
        match fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "--- {name}: expected\n{expected}--- actual\n{actual}"
            )),
            Err(e) => failures.push(format!(
                "--- {name}: cannot read {} ({e}); run with UPDATE_GOLDEN=1",
                expected_path.display()
            )),
        }
    }
    // every .expected has its input
    for entry in fs::read_dir(&dir).expect("read dir") {
        let p = entry.expect("directory entry").path();
        if p.extension().is_some_and(|e| e == "expected") && !p.with_extension("toml").exists() {
            failures.push(format!("--- orphan {}", p.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden case(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        valid >= 1 && valid < inputs.len(),
        "need both valid and invalid cases ({valid} of {} valid)",
        inputs.len()
    );
}
