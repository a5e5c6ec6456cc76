//! `parse` must never panic, whatever the input, and every diagnostic must point inside the
//! text it was given.

use proptest::prelude::*;

const VALID: &str = include_str!("../../../tests/data/config/valid_full.toml");

/// Snippets that steer mutations towards interesting TOML rather than random noise.
const SNIPPETS: &[&str] = &[
    "\"",
    "'",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    ",",
    ".",
    "\n",
    "#",
    "\\",
    "\"\"\"",
    " = 1",
    " = -1",
    " = 1e999",
    " = nan",
    " = 65535",
    " = 0x7fffffffffffffffff",
    " = \"\"",
    " = []",
    " = {}",
    "[[devices]]\n",
    "[[devices.tags]]\n",
    "[[assets]]\n",
    "[[detectors]]\n",
    "[[rul]]\n",
    "tags = [\"flow\"]\n",
    "path = \"a/b\"\n",
    "type = \"f32\"\n",
    "é",
    "\u{feff}",
    "\r\n",
    "1979-05-27T07:32:00Z",
];

#[derive(Debug, Clone)]
enum Edit {
    Delete { at: usize, len: usize },
    Insert { at: usize, snippet: usize },
    InsertText { at: usize, text: String },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), 0..SNIPPETS.len()).prop_map(|(at, snippet)| Edit::Insert { at, snippet }),
        (any::<usize>(), "\\PC{1,8}").prop_map(|(at, text)| Edit::InsertText { at, text }),
    ]
}

/// Nearest char boundary at or before `at % (len + 1)`.
fn boundary(s: &str, at: usize) -> usize {
    let mut i = at % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(mut s: String, edits: &[Edit]) -> String {
    for e in edits {
        match e {
            Edit::Delete { at, len } => {
                let start = boundary(&s, *at);
                let end = boundary(&s, (start + len).min(s.len()));
                s.replace_range(start..end.max(start), "");
            }
            Edit::Insert { at, snippet } => {
                let at = boundary(&s, *at);
                s.insert_str(at, SNIPPETS[*snippet]);
            }
            Edit::InsertText { at, text } => {
                let at = boundary(&s, *at);
                s.insert_str(at, text);
            }
        }
    }
    s
}

/// Parses and checks that the result is deterministic and every position is inside the text.
fn check(src: &str) -> Result<(), TestCaseError> {
    let first = millwright::config_registry().parse(src, "fuzz.toml");
    prop_assert_eq!(
        &first,
        &millwright::config_registry().parse(src, "fuzz.toml"),
        "parse must be deterministic"
    );
    if let Err(d) = first {
        prop_assert!(
            !d.items.is_empty(),
            "an error carries at least one diagnostic"
        );
        let lines: Vec<&str> = src.split('\n').collect();
        for item in &d.items {
            prop_assert!(
                item.line >= 1 && item.line <= lines.len(),
                "line out of range: {item}"
            );
            let width = lines[item.line - 1].chars().count();
            prop_assert!(
                item.col >= 1 && item.col <= width + 1,
                "column out of range: {item}"
            );
            prop_assert!(
                !item.message.is_empty() && !item.message.contains('\n'),
                "bad message: {item:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn the_base_config_is_valid() {
    // otherwise the mutation test below would only ever explore broken input
    millwright::config_registry()
        .parse(VALID, "valid_full.toml")
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings(src in "\\PC{0,300}") {
        check(&src)?;
    }

    #[test]
    fn toml_like_token_soup(parts in proptest::collection::vec(0..SNIPPETS.len(), 0..60)) {
        let src: String = parts.into_iter().map(|i| SNIPPETS[i]).collect();
        check(&src)?;
    }

    #[test]
    fn mutated_valid_config(edits in proptest::collection::vec(edit(), 1..6)) {
        let src = apply(VALID.to_owned(), &edits);
        check(&src)?;
    }
}
