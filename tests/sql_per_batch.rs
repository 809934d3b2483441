//! SQL on every batch (`DStream::sql`) against a naive model: the course's top-3 query with
//! `row_number()` over random batches and random worker counts; parameters; a query that is
//! wrong refused before the first batch; a query that fails on the data failing the job.
#![cfg(feature = "sql")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use sluice::sql::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use sluice::sql::{SqlQuery, Table, Value};
use sluice::{CollectedBatches, StreamingConfig, StreamingContext};

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Sales {
    category: String,
    brand: String,
    sales: i64,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("category", DataType::Utf8, false),
        Field::new("brand", DataType::Utf8, false),
        Field::new("sales", DataType::Int64, false),
    ]))
}

const TOP3: &str = "select t.category, t.brand, t.sales, t.rank from (
  select category, brand, sales,
    row_number() over (partition by category order by sales desc, brand) as rank
  from sales_table) t
where t.rank < 4 order by t.category, t.rank";

/// The model: per category, brands by sales descending then brand, the first three.
fn top3(batch: &[Sales]) -> Vec<Vec<Value>> {
    let mut by: BTreeMap<&str, Vec<&Sales>> = BTreeMap::new();
    for s in batch {
        by.entry(&s.category).or_default().push(s);
    }
    let mut rows = Vec::new();
    for (category, mut v) in by {
        v.sort_by(|a, b| b.sales.cmp(&a.sales).then(a.brand.cmp(&b.brand)));
        for (i, s) in v.iter().take(3).enumerate() {
            rows.push(vec![
                Value::Str(category.into()),
                Value::Str(s.brand.clone()),
                Value::Int(s.sales),
                Value::UInt(i as u64 + 1),
            ]);
        }
    }
    rows
}

fn run(
    batches: Vec<Vec<Sales>>,
    workers: usize,
    query: SqlQuery,
) -> sluice::Result<Vec<Vec<Table>>> {
    let n = batches.len() as u64;
    let config = StreamingConfig::new(Duration::from_secs(1))?
        .as_fast_as_possible(workers)
        .first_batch_ms(1000)
        .max_batches(n);
    let queue = sluice::source::BatchQueue::from_batches(batches);
    let out = CollectedBatches::new();
    let o = out.clone();
    StreamingContext::new(config).run(move |job| {
        job.queue_stream(&queue)
            .sql("sales_table", schema(), query.clone())
            .collect_into(&o)
    })?;
    Ok(out.values())
}

fn sales() -> impl Strategy<Value = Sales> {
    (0..3u8, 0..6u8, 0..5i64).prop_map(|(c, b, s)| Sales {
        category: format!("c{c}"),
        brand: format!("b{b}"),
        sales: s,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn top3_per_category_is_the_models(batches in proptest::collection::vec(proptest::collection::vec(sales(), 0..25), 1..4), workers in 1usize..3) {
        // Distinct (category, brand) per batch, as the state of the course's job has.
        let batches: Vec<Vec<Sales>> = batches.into_iter().map(|b| {
            let mut seen = std::collections::BTreeSet::new();
            b.into_iter().filter(|s| seen.insert((s.category.clone(), s.brand.clone()))).collect()
        }).collect();
        let got = run(batches.clone(), workers, SqlQuery::new(TOP3)).unwrap();
        prop_assert_eq!(got.len(), batches.len());
        for (tables, batch) in got.iter().zip(&batches) {
            prop_assert_eq!(tables.len(), 1);
            prop_assert_eq!(&tables[0].columns, &["category", "brand", "sales", "rank"]);
            prop_assert_eq!(&tables[0].rows, &top3(batch));
            prop_assert_eq!(tables[0].input_rows, batch.len() as u64);
        }
    }
}

fn sale(c: &str, b: &str, s: i64) -> Sales {
    Sales {
        category: c.into(),
        brand: b.into(),
        sales: s,
    }
}

#[test]
fn parameters_are_values_never_sql_text() {
    let batch = vec![
        sale("phone", "x'; drop table t; --", 5),
        sale("phone", "mi", 1),
    ];
    let q = SqlQuery::new("select brand from sales_table where sales >= $1 and brand <> $2")
        .param(Value::Int(2))
        .param(Value::Str("mi".into()));
    let got = run(vec![batch], 1, q).unwrap();
    assert_eq!(
        got[0][0].rows,
        vec![vec![Value::Str("x'; drop table t; --".into())]]
    );
}

#[test]
fn a_wrong_query_is_refused_before_the_first_batch() {
    for (query, says) in [
        ("select nosuchcolumn from sales_table", "nosuchcolumn"),
        ("selec brand from sales_table", "selec"),
    ] {
        let e = run(vec![vec![]], 1, SqlQuery::new(query)).unwrap_err();
        assert!(e.is_user_error(), "{e}");
        let text = e.to_string();
        assert!(
            text.contains(says) && text.contains("category Utf8"),
            "{text}"
        );
    }
}

#[test]
fn a_query_failing_on_the_data_fails_the_job_with_the_batch() {
    let batch = vec![sale("phone", "not-a-number", 1)];
    let e = run(
        vec![batch],
        1,
        SqlQuery::new("select cast(brand as bigint) from sales_table"),
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("sql on `sales_table`") && text.contains("batch 1000 ms"),
        "{text}"
    );
}
