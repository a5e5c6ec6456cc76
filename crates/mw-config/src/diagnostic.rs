//! Diagnostics with 1-based line/column positions.

use std::fmt;

/// One problem found in a config file. `line` and `col` are 1-based; `col` counts characters,
/// not bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Diagnostic {
    /// Renders as `FILE:LINE:COL: message`.
    pub fn with_file<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        WithFile { file, diag: self }
    }
}

/// `LINE:COL: message` (see [`Diagnostic::with_file`] for the form with the file name).
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

struct WithFile<'a> {
    file: &'a str,
    diag: &'a Diagnostic,
}

impl fmt::Display for WithFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.diag)
    }
}

/// Every problem found in one file, in source order. Never empty when returned as an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics {
    pub file: String,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }
}

/// One `FILE:LINE:COL: message` per line, no trailing newline.
impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}", d.with_file(&self.file))?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Maps byte offsets to 1-based (line, character column).
pub(crate) struct LineIndex<'s> {
    src: &'s str,
    /// Byte offset of the start of each line.
    starts: Vec<usize>,
}

impl<'s> LineIndex<'s> {
    pub(crate) fn new(src: &'s str) -> Self {
        let starts = std::iter::once(0)
            .chain(src.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { src, starts }
    }

    /// 1-based line and column of a byte offset (clamped into the text).
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.src.len());
        while !self.src.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset); // ≥ 1 since starts[0] == 0
        let start = self.starts[line - 1];
        let mut prefix = &self.src[start..offset];
        if line == 1 {
            // A byte-order mark is not a column.
            prefix = prefix.strip_prefix('\u{feff}').unwrap_or(prefix);
        }
        (line, prefix.chars().count() + 1)
    }

    pub(crate) fn line(&self, offset: usize) -> usize {
        self.line_col(offset).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let idx = LineIndex::new("ab\nné = 1\r\n\nx");
        assert_eq!(idx.line_col(0), (1, 1));
        assert_eq!(idx.line_col(2), (1, 3));
        assert_eq!(idx.line_col(3), (2, 1));
        // "é" is two bytes but one column
        assert_eq!(idx.line_col(3 + "né".len()), (2, 3));
        assert_eq!(idx.line_col(100), (4, 2), "clamped to the end");
        assert_eq!(
            idx.line_col(5),
            (2, 2),
            "inside a char: moved back to its start"
        );
        assert_eq!(LineIndex::new("\u{feff}a").line_col(3), (1, 1));
    }

    #[test]
    fn display_forms() {
        let d = Diagnostics {
            file: "plant.toml".into(),
            items: vec![
                Diagnostic {
                    line: 3,
                    col: 7,
                    message: "first".into(),
                },
                Diagnostic {
                    line: 9,
                    col: 1,
                    message: "second".into(),
                },
            ],
        };
        assert_eq!(
            d.to_string(),
            "plant.toml:3:7: first\nplant.toml:9:1: second"
        );
        assert_eq!(d.items[0].to_string(), "3:7: first");
        assert_eq!(
            d.items[1].with_file("x.toml").to_string(),
            "x.toml:9:1: second"
        );
    }
}
