//! `Dataset.show()`'s text, character for character: Spark's `showString` with `truncate = 20`.
//!
//! A cell longer than `truncate` characters keeps its first `truncate - 3` and ends in `...`
//! (its first `truncate` when `truncate < 4`); columns are at least 3 wide; header and cells
//! are right-aligned; widths count East Asian wide characters as 2, as Spark's
//! `Utils.stringHalfWidth` does; more rows than `n` end with `only showing top n rows`.

use super::Value;

/// The text Spark's `show(n, truncate)` prints for these columns and rows.
///
/// # Examples
///
/// ```
/// use sluice::sql::{show_string, Value};
/// let rows = vec![vec![Value::Str("a".into())], vec![Value::Null]];
/// // Widths come from the rows shown, as Spark's: `null` is not among them here.
/// assert_eq!(show_string(&["x".to_owned()], &rows, 1, 20), "+---+\n|  x|\n+---+\n|  a|\n+---+\nonly showing top 1 row\n");
/// ```
pub fn show_string(columns: &[String], rows: &[Vec<Value>], n: usize, truncate: usize) -> String {
    let shown: Vec<Vec<String>> = rows
        .iter()
        .take(n)
        .map(|r| {
            r.iter()
                .map(|v| cut(&v.to_spark_string(), truncate))
                .collect()
        })
        .collect();
    let header: Vec<String> = columns.iter().map(|c| cut(c, truncate)).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| half_width(h).max(3)).collect();
    for row in &shown {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(half_width(cell));
            }
        }
    }
    let line: String = {
        let mut l = String::from("+");
        for w in &widths {
            l.push_str(&"-".repeat(*w));
            l.push('+');
        }
        l.push('\n');
        l
    };
    let render = |cells: &[String]| {
        let mut l = String::from("|");
        for (cell, w) in cells.iter().zip(&widths) {
            l.push_str(&" ".repeat(w.saturating_sub(half_width(cell))));
            l.push_str(cell);
            l.push('|');
        }
        l.push('\n');
        l
    };
    let mut out = line.clone();
    out.push_str(&render(&header));
    out.push_str(&line);
    for row in &shown {
        out.push_str(&render(row));
    }
    out.push_str(&line);
    if rows.len() > n {
        let noun = if n == 1 { "row" } else { "rows" };
        out.push_str(&format!("only showing top {n} {noun}\n"));
    }
    out
}

fn cut(s: &str, truncate: usize) -> String {
    let chars = s.chars().count();
    if truncate == 0 || chars <= truncate {
        return s.to_owned();
    }
    if truncate < 4 {
        s.chars().take(truncate).collect()
    } else {
        let mut t: String = s.chars().take(truncate - 3).collect();
        t.push_str("...");
        t
    }
}

/// Display width: East Asian wide and full-width characters count 2.
fn half_width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let c = c as u32;
            let wide = matches!(c,
                0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF
                | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6);
            if wide { 2 } else { 1 }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_cells_are_cut_as_spark_cuts_them_and_wide_characters_count_twice() {
        let rows = vec![vec![
            Value::Str("abcdefghijklmnopqrstuvwxyz".into()),
            Value::Str("手机".into()),
        ]];
        let out = show_string(&["long".into(), "category".into()], &rows, 20, 20);
        assert_eq!(
            out,
            "+--------------------+--------+\n|                long|category|\n+--------------------+--------+\n|abcdefghijklmnopq...|    手机|\n+--------------------+--------+\n"
        );
    }

    #[test]
    fn an_empty_table_prints_its_header() {
        assert_eq!(
            show_string(&["a".into()], &[], 20, 20),
            "+---+\n|  a|\n+---+\n+---+\n"
        );
    }
}
