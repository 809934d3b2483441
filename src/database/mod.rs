//! One SQL layer for PostgreSQL and MySQL/MariaDB, shared by the SQL sinks
//! ([`sink::sql`](crate::sink::sql)) and the SQL offset store
//! ([`offsets::sql`](crate::offsets::sql)).
//!
//! - [`connect`] opens a [`Connection`] from a URL (`postgres://…` or `mysql://…`); TLS when the
//!   URL asks for it (`?sslmode=require` for PostgreSQL, `?sslmode=required` for MySQL).
//! - A [`Dialect`] holds the few statements sluice itself runs (create, lock, select and
//!   upsert of the offsets table), written once per database.
//! - Statements are always parameterized ([`SqlValue`]); never SQL built from strings. A sink's
//!   `INSERT … VALUES (…)` is run for many rows at once, its `VALUES` group repeated
//!   ([`multi_row`]).
//! - Every failure is a [`DbError`] that says whether it is **transient** (the server is down,
//!   the connection dropped, a deadlock or lock timeout: retry) or **permanent** (a syntax
//!   error, a constraint violation, a type mismatch, access denied: fail with the server's
//!   message), for the [retry policy](crate::retry).

mod dialect;
pub(crate) mod multi_row;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;

pub(crate) use dialect::Dialect;

use crate::error::BoxError;
use crate::retry::Failure;

/// One parameter of a statement.
///
/// # Examples
///
/// ```
/// use sluice::sink::SqlValue;
/// let row = vec![SqlValue::from("alice"), SqlValue::from(42i64), SqlValue::Null];
/// assert_eq!(row[1], SqlValue::Int(42));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SqlValue {
    /// Text.
    Text(String),
    /// An integer; PostgreSQL gets it as the column's integer type (`SMALLINT`, `INT`,
    /// `BIGINT`) or as text, with an error naming the parameter if it does not fit.
    Int(i64),
    /// NULL.
    Null,
}

impl From<&str> for SqlValue {
    fn from(s: &str) -> Self {
        SqlValue::Text(s.to_owned())
    }
}

impl From<String> for SqlValue {
    fn from(s: String) -> Self {
        SqlValue::Text(s)
    }
}

impl From<i64> for SqlValue {
    fn from(i: i64) -> Self {
        SqlValue::Int(i)
    }
}

/// A database failure, transient or permanent (see the module docs). Its text is the
/// driver's message with every cause under it (`error connecting to server: Connection
/// refused (os error 111)`), so that the reason reaches the person running the job.
#[derive(Debug, thiserror::Error)]
#[error("{}", with_causes(source.as_ref()))]
pub struct DbError {
    transient: bool,
    source: BoxError,
}

/// `e`'s message followed by each of its causes' that it does not already contain.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

impl DbError {
    /// A failure that waiting may cure.
    pub(crate) fn transient(source: impl Into<BoxError>) -> Self {
        DbError {
            transient: true,
            source: source.into(),
        }
    }

    /// A failure that waiting never cures.
    pub(crate) fn permanent(source: impl Into<BoxError>) -> Self {
        DbError {
            transient: false,
            source: source.into(),
        }
    }

    /// Whether retrying may help.
    pub fn is_transient(&self) -> bool {
        self.transient
    }

    /// For the retry policy.
    pub(crate) fn into_failure(self) -> Failure<DbError> {
        if self.transient {
            Failure::Transient(self)
        } else {
            Failure::Permanent(self)
        }
    }
}

/// A connection to one database.
pub(crate) trait Connection: Send {
    /// Runs `sql` (one or more statements without parameters), outside any transaction.
    fn execute_batch(&mut self, sql: &str) -> Result<(), DbError>;
    /// Starts a transaction.
    fn transaction(&mut self) -> Result<Box<dyn Transaction + '_>, DbError>;
}

/// A transaction; dropped without [`commit`](Transaction::commit), it rolls back.
pub(crate) trait Transaction {
    /// The first column of the first row of `sql`, read as a `BIGINT` (`None`: no row).
    fn query_i64(&mut self, sql: &str, params: &[SqlValue]) -> Result<Option<i64>, DbError>;
    /// Runs `sql` once per row of `rows`, prepared once.
    fn execute_rows(&mut self, sql: &str, rows: &[Vec<SqlValue>]) -> Result<(), DbError>;
    /// Commits.
    fn commit(self: Box<Self>) -> Result<(), DbError>;
}

/// Opens a connection to `url` (`postgres://user@host:port/db`, `mysql://user@host:port/db`).
pub(crate) fn connect(url: &str) -> Result<Box<dyn Connection>, DbError> {
    match Dialect::of_url(url).map_err(DbError::permanent)? {
        #[cfg(feature = "postgres")]
        Dialect::Postgres => Ok(Box::new(postgres::PgConnection::connect(url)?)),
        #[cfg(feature = "mysql")]
        Dialect::MySql => Ok(Box::new(mysql::MyConnection::connect(url)?)),
    }
}
