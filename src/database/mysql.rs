//! MySQL and MariaDB through the `mysql` crate (blocking), TLS through native-tls.

use mysql::prelude::Queryable;

use super::{Connection, DbError, SqlValue, Transaction};

pub(crate) struct MyConnection {
    conn: mysql::Conn,
}

impl MyConnection {
    /// Connects. `sslmode` in the URL asks for TLS, as MySQL's `--ssl-mode`: `required`
    /// (encrypted, the certificate not checked) or `verify_identity` (checked against the
    /// system's roots); the server must offer TLS. Other parameters are the `mysql` crate's.
    pub(crate) fn connect(url: &str) -> Result<Self, DbError> {
        let (url, ssl) = take_ssl_mode(url)?;
        let opts = mysql::Opts::from_url(&url).map_err(DbError::permanent)?;
        let opts = mysql::OptsBuilder::from_opts(opts).ssl_opts(ssl);
        let conn = mysql::Conn::new(opts).map_err(classify)?;
        Ok(MyConnection { conn })
    }
}

/// Removes `sslmode=…` from the URL's query and says which TLS it asks for.
fn take_ssl_mode(url: &str) -> Result<(String, Option<mysql::SslOpts>), DbError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    let mut ssl = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("sslmode" | "ssl-mode" | "ssl_mode", mode)) => {
                ssl = match mode.to_ascii_lowercase().as_str() {
                    "disabled" | "disable" => None,
                    "required" | "require" => Some(
                        mysql::SslOpts::default()
                            .with_danger_accept_invalid_certs(true)
                            .with_danger_skip_domain_validation(true),
                    ),
                    "verify_identity" | "verify-full" | "verify_ca" | "verify-ca" => {
                        Some(mysql::SslOpts::default())
                    }
                    other => {
                        return Err(DbError::permanent(format!(
                            "sslmode `{other}` is not one of disabled, required, verify_identity"
                        )));
                    }
                };
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, ssl))
}

/// Server errors that waiting may cure: too many connections, lock wait timeout, deadlock,
/// server shutting down, connection killed, query interrupted.
const TRANSIENT_CODES: [u16; 7] = [1040, 1205, 1213, 1053, 1927, 1317, 2006];

/// Transient: connection trouble (I/O, codec, driver, TLS) and the server codes above.
/// Permanent: everything the statement or the data got wrong, and access denied.
fn classify(e: mysql::Error) -> DbError {
    match &e {
        mysql::Error::MySqlError(server) => {
            let message = format!("{} ({}): {}", server.code, server.state, server.message);
            if TRANSIENT_CODES.contains(&server.code) {
                DbError::transient(message)
            } else {
                DbError::permanent(message)
            }
        }
        mysql::Error::DriverError(mysql::DriverError::TlsNotSupported) => DbError::permanent(
            "the server does not offer TLS but the URL asks for it (sslmode)".to_owned(),
        ),
        mysql::Error::DriverError(mysql::DriverError::MismatchedStmtParams(..))
        | mysql::Error::UrlError(_)
        | mysql::Error::FromValueError(_)
        | mysql::Error::FromRowError(_) => DbError::permanent(e.to_string()),
        _ => DbError::transient(e.to_string()),
    }
}

fn params(row: &[SqlValue]) -> Vec<mysql::Value> {
    row.iter()
        .map(|v| match v {
            SqlValue::Text(s) => mysql::Value::from(s.as_str()),
            SqlValue::Int(i) => mysql::Value::from(*i),
            SqlValue::Null => mysql::Value::NULL,
        })
        .collect()
}

impl Connection for MyConnection {
    fn execute_batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.conn.query_drop(sql).map_err(classify)
    }

    fn transaction(&mut self) -> Result<Box<dyn Transaction + '_>, DbError> {
        let tx = self
            .conn
            .start_transaction(mysql::TxOpts::default())
            .map_err(classify)?;
        Ok(Box::new(MyTransaction(tx)))
    }
}

struct MyTransaction<'a>(mysql::Transaction<'a>);

impl Transaction for MyTransaction<'_> {
    fn query_i64(&mut self, sql: &str, row: &[SqlValue]) -> Result<Option<i64>, DbError> {
        let Some(found) = self
            .0
            .exec_first::<mysql::Row, _, _>(sql, params(row))
            .map_err(classify)?
        else {
            return Ok(None);
        };
        let column = found
            .columns_ref()
            .first()
            .map_or("?".to_owned(), |c| c.name_str().into_owned());
        match found.get_opt::<i64, _>(0) {
            Some(Ok(v)) => Ok(Some(v)),
            Some(Err(e)) => Err(DbError::permanent(format!(
                "column `{column}` of `{sql}` is not a BIGINT ({e})"
            ))),
            None => Err(DbError::permanent(format!("`{sql}` returned no column"))),
        }
    }

    fn execute_rows(&mut self, sql: &str, rows: &[Vec<SqlValue>]) -> Result<(), DbError> {
        if rows.is_empty() {
            return Ok(());
        }
        // Many rows per statement keep MySQL's meaning: rows apply in order, so an upsert that
        // touches a key twice leaves the last row's values, as row by row.
        if let Some(multi) =
            super::multi_row::MultiRow::parse(sql, super::multi_row::Placeholders::Question)
                .filter(|_| rows.len() > 1)
        {
            let per = multi.rows_per_statement();
            let mut full: Option<mysql::Statement> = None;
            for chunk in rows.chunks(per) {
                let statement = match &full {
                    Some(s) if chunk.len() == per => s.clone(),
                    _ => {
                        let s = self
                            .0
                            .prep(multi.statement(chunk.len()))
                            .map_err(classify)?;
                        if chunk.len() == per {
                            full = Some(s.clone());
                        }
                        s
                    }
                };
                self.0
                    .exec_drop(&statement, params(&chunk.concat()))
                    .map_err(classify)?;
            }
            return Ok(());
        }
        let statement = self.0.prep(sql).map_err(classify)?;
        for row in rows {
            self.0
                .exec_drop(&statement, params(row))
                .map_err(classify)?;
        }
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), DbError> {
        self.0.commit().map_err(classify)
    }
}
