//! [`Value`]: one cell of a result row, and Arrow arrays to rows.

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::scalar::ScalarValue;

/// One cell of a SQL result (or a query parameter).
///
/// # Examples
///
/// ```
/// use sluice::sql::Value;
/// assert_eq!(Value::Float(2.0).to_spark_string(), "2.0");
/// assert_eq!(Value::Null.to_spark_string(), "null");
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A boolean.
    Bool(bool),
    /// Any signed integer type.
    Int(i64),
    /// Any unsigned integer type.
    UInt(u64),
    /// `FLOAT`/`DOUBLE`.
    Float(f64),
    /// Text.
    Str(String),
    /// Any other type (dates, decimals, lists), as DataFusion displays it.
    Other(String),
}

impl Value {
    /// The text Spark shows for the value (`show()`, `toString`): `null`, `true`, `2.0`,
    /// `1.0E10` (Java's `Double.toString`).
    pub fn to_spark_string(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::UInt(u) => u.to_string(),
            Value::Float(f) => java_double(*f),
            Value::Str(s) | Value::Other(s) => s.clone(),
        }
    }

    pub(crate) fn to_scalar(&self) -> ScalarValue {
        match self {
            Value::Null => ScalarValue::Null,
            Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
            Value::Int(i) => ScalarValue::Int64(Some(*i)),
            Value::UInt(u) => ScalarValue::UInt64(Some(*u)),
            Value::Float(f) => ScalarValue::Float64(Some(*f)),
            Value::Str(s) | Value::Other(s) => ScalarValue::Utf8(Some(s.clone())),
        }
    }

    fn from_scalar(s: ScalarValue) -> Value {
        use ScalarValue::*;
        if s.is_null() {
            return Value::Null;
        }
        match s {
            Boolean(Some(b)) => Value::Bool(b),
            Int8(Some(i)) => Value::Int(i.into()),
            Int16(Some(i)) => Value::Int(i.into()),
            Int32(Some(i)) => Value::Int(i.into()),
            Int64(Some(i)) => Value::Int(i),
            UInt8(Some(i)) => Value::UInt(i.into()),
            UInt16(Some(i)) => Value::UInt(i.into()),
            UInt32(Some(i)) => Value::UInt(i.into()),
            UInt64(Some(i)) => Value::UInt(i),
            Float32(Some(f)) => Value::Float(f.into()),
            Float64(Some(f)) => Value::Float(f),
            Utf8(Some(s)) | LargeUtf8(Some(s)) | Utf8View(Some(s)) => Value::Str(s),
            other => Value::Other(other.to_string()),
        }
    }
}

/// Java's `Double.toString`: plain between 10⁻³ and 10⁷ (with at least one decimal), else
/// `d.dddE±n`.
fn java_double(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let a = f.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        let s = format!("{f}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_owned()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exp}")
    }
}

/// Appends the rows of `batch` to `rows`.
pub(crate) fn append_rows(
    batch: &RecordBatch,
    rows: &mut Vec<Vec<Value>>,
) -> datafusion::error::Result<()> {
    for r in 0..batch.num_rows() {
        let mut row = Vec::with_capacity(batch.num_columns());
        for c in batch.columns() {
            row.push(Value::from_scalar(ScalarValue::try_from_array(c, r)?));
        }
        rows.push(row);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::java_double;

    #[test]
    fn doubles_print_as_java_prints_them() {
        for (f, s) in [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (1e10, "1.0E10"),
            (1.5e-5, "1.5E-5"),
            (0.0, "0.0"),
            (1234567.0, "1234567.0"),
        ] {
            assert_eq!(java_double(f), s);
        }
    }
}
