//! Many rows in one statement: a sink's `INSERT … VALUES (…) [ON CONFLICT …]` is rewritten to
//! `VALUES (…), (…), …` with its placeholders renumbered, so that a batch of rows costs one
//! round trip per chunk instead of one per row.
//!
//! Only a statement whose `VALUES` group is nothing but placeholders, each used once, and
//! whose other parts use none (`ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name`, MySQL's
//! `ON DUPLICATE KEY UPDATE name = VALUES(name)`) is rewritten; any other statement runs once
//! per row, as written. The rows of a chunk keep their order, so MySQL's upserts and plain
//! inserts mean the same as row by row. PostgreSQL refuses an `ON CONFLICT DO UPDATE` that
//! touches one key twice in one statement (SQLSTATE 21000): the connection then runs that
//! chunk row by row (see `postgres.rs`), which gives the last row the last word, as before.

/// How a database writes placeholders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placeholders {
    /// PostgreSQL's `$1, $2, …`.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Numbered,
    /// MySQL's `?`.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    Question,
}

/// At most this many rows per statement (and never more than 65 535 placeholders, the
/// protocol limit of both databases).
const MAX_ROWS: usize = 1000;

/// A statement split around its `VALUES` group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MultiRow {
    /// Up to and including `VALUES`.
    head: String,
    /// The group's placeholders in order, as parameter numbers (PostgreSQL `$n`: `n`; MySQL
    /// `?`: its position).
    group: Vec<usize>,
    /// After the group.
    tail: String,
    placeholders: Placeholders,
}

impl MultiRow {
    /// `sql` split for rewriting, or `None` when it is not a plain multi-row-able `INSERT`.
    pub(crate) fn parse(sql: &str, placeholders: Placeholders) -> Option<MultiRow> {
        let trimmed = sql.trim_start();
        if !trimmed
            .get(..6)
            .is_some_and(|w| w.eq_ignore_ascii_case("insert"))
        {
            return None;
        }
        let upper = sql.to_ascii_uppercase();
        let at = find_word(&upper, "VALUES")?;
        let after = at + "VALUES".len();
        let rest = &sql[after..];
        let open = after + (rest.len() - rest.trim_start().len());
        if sql.as_bytes().get(open) != Some(&b'(') {
            return None;
        }
        let close = open + sql[open..].find(')')?;
        let inside = &sql[open + 1..close];
        if inside.contains(['(', '\'', '"', '`']) || sql[..open].contains(['\'', '$', '?']) {
            return None;
        }
        let tail = &sql[close + 1..];
        if tail.contains(['$', '?']) {
            return None; // a placeholder outside the group: it would be repeated per row
        }
        let mut group = Vec::new();
        for (i, token) in inside.split(',').map(str::trim).enumerate() {
            let n = match placeholders {
                Placeholders::Numbered => token.strip_prefix('$')?.parse::<usize>().ok()?,
                Placeholders::Question if token == "?" => i + 1,
                Placeholders::Question => return None,
            };
            group.push(n);
        }
        // Each of 1..=k exactly once.
        let mut sorted = group.clone();
        sorted.sort_unstable();
        if sorted != (1..=group.len()).collect::<Vec<_>>() {
            return None;
        }
        Some(MultiRow {
            head: sql[..open].to_owned(),
            group,
            tail: tail.to_owned(),
            placeholders,
        })
    }

    /// Parameters per row.
    pub(crate) fn width(&self) -> usize {
        self.group.len()
    }

    /// Rows per statement.
    pub(crate) fn rows_per_statement(&self) -> usize {
        MAX_ROWS.min(65_535 / self.width().max(1)).max(1)
    }

    /// Whether PostgreSQL may refuse a chunk that touches one key twice.
    #[cfg(any(feature = "postgres", test))]
    pub(crate) fn may_touch_a_key_twice(&self) -> bool {
        let tail = self.tail.to_ascii_uppercase();
        find_word(&tail, "CONFLICT").is_some() && find_word(&tail, "UPDATE").is_some()
    }

    /// The statement for `rows` rows; its parameters are the rows' values one row after another.
    pub(crate) fn statement(&self, rows: usize) -> String {
        let k = self.width();
        let mut sql = self.head.clone();
        for r in 0..rows {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for (i, n) in self.group.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                match self.placeholders {
                    Placeholders::Numbered => {
                        sql.push('$');
                        sql.push_str(&(n + r * k).to_string());
                    }
                    Placeholders::Question => sql.push('?'),
                }
            }
            sql.push(')');
        }
        sql.push_str(&self.tail);
        sql
    }
}

/// The byte offset of `word` in `upper` (already upper case) as a whole word.
fn find_word(upper: &str, word: &str) -> Option<usize> {
    let bytes = upper.as_bytes();
    let boundary = |i: usize| {
        bytes
            .get(i)
            .is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
    };
    let mut from = 0;
    while let Some(i) = upper[from..].find(word) {
        let at = from + i;
        if (at == 0 || boundary(at - 1)) && boundary(at + word.len()) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG_UPSERT: &str = "INSERT INTO myorders (name, orderid) VALUES ($1, $2) ON CONFLICT (orderid) DO UPDATE SET name = EXCLUDED.name";

    #[test]
    fn postgres_placeholders_are_renumbered_per_row() {
        let m = MultiRow::parse(PG_UPSERT, Placeholders::Numbered).unwrap();
        assert_eq!(m.width(), 2);
        assert!(m.may_touch_a_key_twice());
        assert_eq!(
            m.statement(3),
            "INSERT INTO myorders (name, orderid) VALUES ($1, $2), ($3, $4), ($5, $6) ON CONFLICT (orderid) DO UPDATE SET name = EXCLUDED.name"
        );
        let swapped = MultiRow::parse(
            "insert into t (a, b) values ($2, $1)",
            Placeholders::Numbered,
        )
        .unwrap();
        assert_eq!(
            swapped.statement(2),
            "insert into t (a, b) values ($2, $1), ($4, $3)"
        );
        assert!(!swapped.may_touch_a_key_twice());
    }

    #[test]
    fn mysql_placeholders_repeat() {
        let m = MultiRow::parse(
            "INSERT INTO myorders (name, orderid) VALUES (?, ?) ON DUPLICATE KEY UPDATE name = VALUES(name)",
            Placeholders::Question,
        )
        .unwrap();
        assert_eq!(
            m.statement(2),
            "INSERT INTO myorders (name, orderid) VALUES (?, ?), (?, ?) ON DUPLICATE KEY UPDATE name = VALUES(name)"
        );
    }

    #[test]
    fn anything_else_runs_row_by_row() {
        for sql in [
            "UPDATE t SET a = $1",
            "INSERT INTO t (a) SELECT $1",
            "INSERT INTO t (a, b) VALUES ($1, now())",
            "INSERT INTO t (a, b) VALUES ($1, 'x')",
            "INSERT INTO t (a) VALUES ($1) ON CONFLICT (a) DO UPDATE SET b = $1",
            "INSERT INTO t (a, b) VALUES ($1, $1)",
            "INSERT INTO t (a, b) VALUES ($1, $3)",
            "INSERT INTO t_values (a) VALUES",
        ] {
            assert_eq!(MultiRow::parse(sql, Placeholders::Numbered), None, "{sql}");
        }
        assert_eq!(
            MultiRow::parse("INSERT INTO t VALUES ($1)", Placeholders::Question),
            None
        );
    }

    #[test]
    fn chunks_stay_under_the_placeholder_limit() {
        let m = MultiRow::parse("INSERT INTO t VALUES ($1, $2)", Placeholders::Numbered).unwrap();
        assert_eq!(m.rows_per_statement(), 1000);
        let wide = (1..=100)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let m = MultiRow::parse(
            &format!("INSERT INTO t VALUES ({wide})"),
            Placeholders::Numbered,
        )
        .unwrap();
        assert_eq!(m.rows_per_statement(), 655);
    }
}
