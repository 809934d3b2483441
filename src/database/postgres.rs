//! PostgreSQL through the `postgres` crate (blocking), TLS through native-tls.

use postgres::error::SqlState;
use postgres::types::{IsNull, ToSql, Type};

use super::multi_row::{MultiRow, Placeholders};
use super::{Connection, DbError, SqlValue, Transaction};

pub(crate) struct PgConnection {
    client: postgres::Client,
}

impl PgConnection {
    /// Connects; with `sslmode=require` over TLS, encrypted but, as libpq's `require`, without
    /// checking the server's certificate.
    pub(crate) fn connect(url: &str) -> Result<Self, DbError> {
        let client = if url.contains("sslmode=require") {
            let tls = native_tls::TlsConnector::builder()
                .danger_accept_invalid_certs(true)
                .danger_accept_invalid_hostnames(true)
                .build()
                .map_err(DbError::permanent)?;
            postgres::Client::connect(url, postgres_native_tls::MakeTlsConnector::new(tls))
        } else {
            postgres::Client::connect(url, postgres::NoTls)
        }
        .map_err(classify)?;
        Ok(PgConnection { client })
    }
}

/// Transient: connection and resource failures, serialization failures and deadlocks, an
/// administrator's shutdown. Permanent: everything the statement or the data got wrong.
fn classify(e: postgres::Error) -> DbError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let transient = ["08", "40", "53", "57", "58"]
            .iter()
            .any(|class| code.starts_with(class))
            || *db.code() == SqlState::LOCK_NOT_AVAILABLE;
        let message = format!("{code}: {}", db.message());
        return if transient {
            DbError::transient(message)
        } else {
            DbError::permanent(message)
        };
    }
    let text = e.to_string();
    let transient = e.is_closed()
        || text.starts_with("error connecting")
        || text.starts_with("error communicating")
        || text.starts_with("timeout")
        || text.starts_with("unexpected EOF");
    // The error itself, so that its cause ("Connection refused") stays in the message.
    if transient {
        DbError::transient(e)
    } else {
        DbError::permanent(e)
    }
}

impl Connection for PgConnection {
    fn execute_batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.client.batch_execute(sql).map_err(classify)
    }

    fn transaction(&mut self) -> Result<Box<dyn Transaction + '_>, DbError> {
        Ok(Box::new(PgTransaction(
            self.client.transaction().map_err(classify)?,
        )))
    }
}

struct PgTransaction<'a>(postgres::Transaction<'a>);

impl PgTransaction<'_> {
    /// `sql` once per row, prepared once.
    fn row_by_row(&mut self, sql: &str, rows: &[Vec<SqlValue>]) -> Result<(), DbError> {
        if rows.is_empty() {
            return Ok(());
        }
        let statement = self.0.prepare(sql).map_err(classify)?;
        for row in rows {
            let owned = bind(row, statement.params())?;
            let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|b| b.as_ref()).collect();
            self.0.execute(&statement, &refs).map_err(classify)?;
        }
        Ok(())
    }
}

impl Transaction for PgTransaction<'_> {
    fn query_i64(&mut self, sql: &str, params: &[SqlValue]) -> Result<Option<i64>, DbError> {
        let statement = self.0.prepare(sql).map_err(classify)?;
        let owned = bind(params, statement.params())?;
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|b| b.as_ref()).collect();
        let Some(row) = self.0.query_opt(&statement, &refs).map_err(classify)? else {
            return Ok(None);
        };
        let column = row.columns().first().map_or("?", |c| c.name()).to_owned();
        row.try_get::<_, i64>(0).map(Some).map_err(|e| {
            DbError::permanent(format!(
                "column `{column}` of `{sql}` is not a BIGINT ({e})"
            ))
        })
    }

    fn execute_rows(&mut self, sql: &str, rows: &[Vec<SqlValue>]) -> Result<(), DbError> {
        let multi = MultiRow::parse(sql, Placeholders::Numbered).filter(|_| rows.len() > 1);
        let Some(multi) = multi else {
            return self.row_by_row(sql, rows);
        };
        let per = multi.rows_per_statement();
        let mut full: Option<postgres::Statement> = None;
        for chunk in rows.chunks(per) {
            if chunk.len() == 1 {
                self.row_by_row(sql, chunk)?;
                continue;
            }
            let statement = match &full {
                Some(s) if chunk.len() == per => s.clone(),
                _ => {
                    let s = self
                        .0
                        .prepare(&multi.statement(chunk.len()))
                        .map_err(classify)?;
                    if chunk.len() == per {
                        full = Some(s.clone());
                    }
                    s
                }
            };
            let values: Vec<SqlValue> = chunk.concat();
            let owned = bind(&values, statement.params())?;
            let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|b| b.as_ref()).collect();
            if !multi.may_touch_a_key_twice() {
                self.0.execute(&statement, &refs).map_err(classify)?;
                continue;
            }
            // An upsert whose chunk touches one key twice is refused as a whole (21000): undo
            // it and run the chunk row by row, in order.
            self.0
                .batch_execute("SAVEPOINT sluice_rows")
                .map_err(classify)?;
            match self.0.execute(&statement, &refs) {
                Ok(_) => self
                    .0
                    .batch_execute("RELEASE SAVEPOINT sluice_rows")
                    .map_err(classify)?,
                Err(e) if e.code() == Some(&SqlState::CARDINALITY_VIOLATION) => {
                    self.0
                        .batch_execute("ROLLBACK TO SAVEPOINT sluice_rows")
                        .map_err(classify)?;
                    self.row_by_row(sql, chunk)?;
                }
                Err(e) => return Err(classify(e)),
            }
        }
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), DbError> {
        self.0.commit().map_err(classify)
    }
}

/// NULL of any type.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    postgres::types::to_sql_checked!();
}

/// The row's values as the types the server expects for its parameters: an integer becomes a
/// `SMALLINT`, `INT`, `BIGINT`, `DOUBLE` or text as the column needs; what does not fit is a
/// permanent error naming the parameter.
fn bind(row: &[SqlValue], types: &[Type]) -> Result<Vec<Box<dyn ToSql + Sync>>, DbError> {
    if row.len() != types.len() {
        return Err(DbError::permanent(format!(
            "the statement has {} parameters but the row has {} values",
            types.len(),
            row.len()
        )));
    }
    row.iter()
        .zip(types)
        .enumerate()
        .map(
            |(i, (value, ty))| -> Result<Box<dyn ToSql + Sync>, DbError> {
                let mismatch = |what: &str| {
                    DbError::permanent(format!(
                        "parameter ${} is {what} but the statement expects {ty}",
                        i + 1
                    ))
                };
                Ok(match value {
                    SqlValue::Null => Box::new(Null),
                    SqlValue::Int(v) => match *ty {
                        Type::INT8 => Box::new(*v),
                        Type::INT4 => Box::new(
                            i32::try_from(*v).map_err(|_| mismatch(&format!("{v}, too large")))?,
                        ),
                        Type::INT2 => Box::new(
                            i16::try_from(*v).map_err(|_| mismatch(&format!("{v}, too large")))?,
                        ),
                        Type::FLOAT8 => Box::new(*v as f64),
                        Type::FLOAT4 => Box::new(*v as f32),
                        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                            Box::new(v.to_string())
                        }
                        _ => return Err(mismatch("an integer")),
                    },
                    SqlValue::Text(s) => match *ty {
                        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                            Box::new(s.clone())
                        }
                        _ => return Err(mismatch("text")),
                    },
                })
            },
        )
        .collect()
}
