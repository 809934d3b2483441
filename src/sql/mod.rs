//! SQL on every batch, with DataFusion (the course's §6: Spark SQL inside `foreachRDD`).
//!
//! [`DStream::sql`] registers each batch of a stream (any stream: a batch's records, a
//! window's, the running state of `update_state_by_key`) as a table with an Arrow schema, runs
//! one query on it, and gives a stream with one [`Table`] per batch: the result's column names
//! and rows. [`Table::show`] prints it exactly as Spark's `Dataset.show()` does.
//! [`DStream::foreach_sql`] hands the result over as Arrow record batches instead.
//!
//! - Records become rows through `serde`: a struct's fields are the table's columns, by name
//!   (arrow-json's serde bridge); the schema says their SQL types.
//! - The query is planned once when the dataflow is built: a syntax error, an unknown column or
//!   function is a configuration error before any batch runs (exit 2), not a failed batch.
//! - Values come in as parameters (`$1`, `$2`, … with [`SqlQuery::param`]), never by pasting
//!   data into the SQL text.
//! - Everything DataFusion's SQL has works, window functions included
//!   (`row_number() over (partition by … order by …)`).
//! - A batch runs on worker 0 with the whole batch, as Spark's driver collects a `show()`; a
//!   query that fails on the data (a cast of a bad value, say) fails the job with the batch
//!   and DataFusion's message, since its output cannot be exact.

mod show;
mod value;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;

pub use datafusion::arrow;
pub use show::show_string;
pub use value::Value;

use crate::dstream::{DStream, Data};
use crate::error::SluiceError;
use crate::time::Time;

/// A query with its parameters.
///
/// # Examples
///
/// ```
/// use sluice::sql::{SqlQuery, Value};
/// let q = SqlQuery::new("select word from words where n > $1").param(Value::Int(2));
/// assert_eq!(q.params().len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct SqlQuery {
    sql: String,
    params: Vec<Value>,
}

impl SqlQuery {
    /// A query without parameters.
    pub fn new(sql: impl Into<String>) -> Self {
        SqlQuery {
            sql: sql.into(),
            params: Vec::new(),
        }
    }

    /// Adds the value of the next placeholder (`$1`, then `$2`, …).
    pub fn param(mut self, value: Value) -> Self {
        self.params.push(value);
        self
    }

    /// The parameters, in order.
    pub fn params(&self) -> &[Value] {
        &self.params
    }
}

impl From<&str> for SqlQuery {
    fn from(sql: &str) -> Self {
        SqlQuery::new(sql)
    }
}

impl From<String> for SqlQuery {
    fn from(sql: String) -> Self {
        SqlQuery::new(sql)
    }
}

/// The result of a query on one batch: column names and rows.
///
/// # Examples
///
/// ```
/// use sluice::sql::{Table, Value};
/// let t = Table { columns: vec!["word".into(), "n".into()], rows: vec![vec![Value::Str("a".into()), Value::Int(2)]], input_rows: 3 };
/// assert_eq!(t.show(20), "+----+---+\n|word|  n|\n+----+---+\n|   a|  2|\n+----+---+\n");
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Table {
    /// The result's column names.
    pub columns: Vec<String>,
    /// Its rows.
    pub rows: Vec<Vec<Value>>,
    /// How many rows the batch's input table had (Spark's `rdd.isEmpty()` guard reads it).
    pub input_rows: u64,
}

impl Table {
    /// The first `n` rows as Spark's `Dataset.showString(n)` renders them (cells right-aligned,
    /// at most 20 characters, `null` for nulls, "only showing top n rows" when there are more);
    /// `Dataset.show` prints this with `println`, so an empty line follows it on the console.
    pub fn show(&self, n: usize) -> String {
        show_string(&self.columns, &self.rows, n, 20)
    }
}

/// One batch's query, kept by worker 0 from batch to batch.
struct Session {
    ctx: SessionContext,
    runtime: tokio::runtime::Runtime,
    table: String,
    schema: SchemaRef,
    query: SqlQuery,
}

impl Session {
    fn new(
        table: &str,
        schema: SchemaRef,
        query: SqlQuery,
    ) -> Result<(Self, Vec<String>), SluiceError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SluiceError::WorkerFailed(format!("cannot start SQL's runtime: {e}")))?;
        let session = Session {
            ctx: SessionContext::new(),
            runtime,
            table: table.to_owned(),
            schema,
            query,
        };
        // Plan it once on an empty table: errors in the query show now, and the result's
        // columns are known for every batch, also the empty ones.
        let empty = RecordBatch::new_empty(session.schema.clone());
        let columns = session
            .run(empty)
            .map(|_| ())
            .and_then(|_| session.columns())
            .map_err(|e| SluiceError::InvalidConfig {
                problem: format!("the SQL query on `{table}` cannot run: {e}"),
                fix: format!(
                    "fix the query (the table `{table}` has the columns {})",
                    session
                        .schema
                        .fields()
                        .iter()
                        .map(|f| format!("{} {}", f.name(), f.data_type()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        Ok((session, columns))
    }

    fn frame(&self) -> datafusion::error::Result<datafusion::dataframe::DataFrame> {
        let params: Vec<datafusion::scalar::ScalarValue> =
            self.query.params.iter().map(Value::to_scalar).collect();
        let frame = self.runtime.block_on(self.ctx.sql(&self.query.sql))?;
        if params.is_empty() {
            Ok(frame)
        } else {
            frame.with_param_values(params)
        }
    }

    fn columns(&self) -> datafusion::error::Result<Vec<String>> {
        Ok(self
            .frame()?
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect())
    }

    /// The query on `batch` as the table: the result's rows.
    fn run(&self, batch: RecordBatch) -> datafusion::error::Result<Vec<Vec<Value>>> {
        let batches = self.run_arrow(batch)?;
        let mut rows = Vec::new();
        for b in &batches {
            value::append_rows(b, &mut rows)?;
        }
        Ok(rows)
    }

    /// The query on `batch` as the table: the result as Arrow record batches.
    fn run_arrow(&self, batch: RecordBatch) -> datafusion::error::Result<Vec<RecordBatch>> {
        self.ctx.deregister_table(self.table.as_str())?;
        self.ctx.register_batch(self.table.as_str(), batch)?;
        let frame = self.frame()?;
        self.runtime.block_on(frame.collect())
    }

    /// Records to a record batch of the table's schema.
    fn to_batch<T: serde::Serialize>(
        &self,
        records: &[T],
    ) -> datafusion::error::Result<RecordBatch> {
        let mut decoder =
            datafusion::arrow::json::ReaderBuilder::new(self.schema.clone()).build_decoder()?;
        decoder.serialize(records)?;
        Ok(decoder
            .flush()?
            .unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone())))
    }
}

impl<'s, T: Data + serde::Serialize> DStream<'s, T> {
    /// Runs `query` on every batch, with the batch as table `table` of `schema`: one
    /// [`Table`] per batch (Spark: `rdd.toDF(...).createOrReplaceTempView(table)`, then
    /// `spark.sql(query)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use sluice::sql::arrow::datatypes::{DataType, Field, Schema};
    /// #[derive(Clone, serde::Serialize, serde::Deserialize)]
    /// struct Sale { category: String, sales: i64 }
    /// let schema = Arc::new(Schema::new(vec![Field::new("category", DataType::Utf8, false), Field::new("sales", DataType::Int64, false)]));
    /// let batch = vec![Sale { category: "phone".into(), sales: 3 }, Sale { category: "tv".into(), sales: 1 }, Sale { category: "phone".into(), sales: 2 }];
    /// let out = sluice::testing::collect_batches(vec![batch], move |s| {
    ///     s.sql("sales", schema.clone(), "select category, sum(sales) as total from sales group by category order by total desc")
    /// })?;
    /// print!("{}", out[0][0].show(20));
    /// assert_eq!(out[0][0].show(20), "+--------+-----+\n|category|total|\n+--------+-----+\n|   phone|    5|\n|      tv|    1|\n+--------+-----+\n");
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn sql(
        &self,
        table: &str,
        schema: SchemaRef,
        query: impl Into<SqlQuery>,
    ) -> DStream<'s, Table> {
        let query = query.into();
        let runtime = self.ctx.runtime.clone();
        let mut session = None;
        if self.ctx.info.index == 0 {
            match Session::new(table, schema, query) {
                Ok((s, columns)) => session = Some((s, columns)),
                Err(e) => self.ctx.fail_build(e),
            }
        }
        self.transform_whole(move |time: Time, records: Vec<T>| {
            let (s, columns) = session.as_ref()?;
            let result = s.to_batch(&records).and_then(|b| s.run(b));
            match result {
                Ok(rows) => Some(Table {
                    columns: columns.clone(),
                    rows,
                    input_rows: records.len() as u64,
                }),
                Err(e) => {
                    runtime.fail(SluiceError::OutputFailed {
                        output: format!("sql on `{}`", s.table),
                        batch_ms: time.millis(),
                        source: Box::new(e),
                    });
                    None
                }
            }
        })
    }
}

impl<'s, T: Data + serde::Serialize> DStream<'s, T> {
    /// Runs `query` on every batch as [`sql`](DStream::sql) does and hands the result to
    /// `f(time, batches)` as Arrow record batches, on worker 0 (an output operation: Spark's
    /// `foreachRDD { rdd => spark.sql(..).collect() }`, for code that works on Arrow: write
    /// Parquet, hand to another DataFusion plan, …).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use sluice::sql::arrow::datatypes::{DataType, Field, Schema};
    /// #[derive(Clone, serde::Serialize, serde::Deserialize)]
    /// struct Word { word: String }
    /// let schema = Arc::new(Schema::new(vec![Field::new("word", DataType::Utf8, false)]));
    /// let rows = Arc::new(Mutex::new(0));
    /// let r = rows.clone();
    /// sluice::testing::run_batches(vec![vec![Word { word: "a".into() }, Word { word: "b".into() }]], move |s| {
    ///     let r = r.clone();
    ///     s.foreach_sql("words", schema.clone(), "select word from words where word > 'a'", move |_time, batches| {
    ///         *r.lock().unwrap() += batches.iter().map(|b| b.num_rows()).sum::<usize>();
    ///     });
    /// })?;
    /// assert_eq!(*rows.lock().unwrap(), 1);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn foreach_sql(
        &self,
        table: &str,
        schema: SchemaRef,
        query: impl Into<SqlQuery>,
        mut f: impl FnMut(Time, &[RecordBatch]) + 'static,
    ) {
        let query = query.into();
        let runtime = self.ctx.runtime.clone();
        let mut session = None;
        if self.ctx.info.index == 0 {
            match Session::new(table, schema, query) {
                Ok((s, _)) => session = Some(s),
                Err(e) => self.ctx.fail_build(e),
            }
        }
        self.foreach_batch(move |time: Time, records: Vec<T>| {
            let Some(s) = session.as_ref() else {
                return;
            };
            match s.to_batch(&records).and_then(|b| s.run_arrow(b)) {
                Ok(batches) => f(time, &batches),
                Err(e) => runtime.fail(SluiceError::OutputFailed {
                    output: format!("sql on `{}`", s.table),
                    batch_ms: time.millis(),
                    source: Box::new(e),
                }),
            }
        });
    }
}

impl<'s> DStream<'s, Table> {
    /// Prints every batch's table as Spark's `Dataset.show(n)` does (an output operation):
    /// [`Table::show`]'s text followed by an empty line, since Spark prints it with `println`.
    ///
    /// With `skip_empty_input`, a batch whose input table was empty prints nothing (the
    /// course's `if (!rdd.isEmpty())` guard).
    pub fn show(&self, n: usize, skip_empty_input: bool) {
        self.foreach_batch(move |_time, tables: Vec<Table>| {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for t in tables {
                if skip_empty_input && t.input_rows == 0 {
                    continue;
                }
                // `Dataset.show` is `println(showString(n))`: the table, then an empty line.
                let _ = out.write_all(t.show(n).as_bytes());
                let _ = out.write_all(b"\n");
            }
            let _ = out.flush();
        });
    }
}
