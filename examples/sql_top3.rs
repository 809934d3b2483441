//! The course's SQL on every batch (§6, `StreamingIntegerationSQL`) as a library program: sales
//! lines `id brand category` from a TCP server, running sales per (category, brand) with
//! `update_state_by_key`, then the top three brands of each category with `row_number()`,
//! printed as Spark's `show()` prints a `DataFrame`.
//!
//! ```text
//! cargo run --example sql_top3 --features sql -- 9999 [batches]
//! ```

use std::sync::Arc;
use std::time::Duration;

use sluice::sql::arrow::datatypes::{DataType, Field, Schema};
use sluice::{StreamingConfig, StreamingContext};

/// One row of the table the query reads.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Sales {
    category: String,
    brand: String,
    sales: i64,
}

const TOP3: &str = "select t.category, t.brand, t.sales, t.rank from (
  select category, brand, sales,
    row_number() over (partition by category order by sales desc, brand) as rank
  from tmp_category_brand_sales
) t
where t.rank < 4
order by t.category, t.rank";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().as_deref().unwrap_or("9999").parse()?;
    let batches: Option<u64> = args.next().map(|b| b.parse()).transpose()?;
    let mut config = StreamingConfig::new(Duration::from_secs(1))?;
    if let Some(n) = batches {
        config = config.max_batches(n);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("category", DataType::Utf8, false),
        Field::new("brand", DataType::Utf8, false),
        Field::new("sales", DataType::Int64, false),
    ]));
    StreamingContext::new(config).run(move |job| {
        job.socket_text_stream("127.0.0.1", port)
            // `id brand category`; other lines are left out, as the course's `filter` does.
            .flat_map(
                |line: String| match line.split_whitespace().collect::<Vec<_>>()[..] {
                    [_id, brand, category] => Some(((category.to_owned(), brand.to_owned()), 1u64)),
                    _ => None,
                },
            )
            .update_state_by_key(|new: Vec<u64>, old: Option<u64>| {
                Some(new.iter().sum::<u64>() + old.unwrap_or(0))
            })
            .snapshots()
            .map(
                |((category, brand), sales): ((String, String), u64)| Sales {
                    category,
                    brand,
                    sales: sales as i64,
                },
            )
            .sql("tmp_category_brand_sales", schema.clone(), TOP3)
            .show(20, true);
    })?;
    Ok(())
}
