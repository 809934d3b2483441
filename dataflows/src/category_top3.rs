//! `category-top3`: the course's Spark SQL job (seed §6, `StreamingIntegerationSQL`): sales
//! lines `id brand category` from a socket, running sales per `category_brand` with
//! `updateStateByKey`, then on every batch the course's SQL with `row_number()` keeping the top
//! three brands of each category, printed with `show()`.
//!
//! Three things differ from the course's listing, all on purpose: its query lacks a comma
//! (`t.sales t.rank` would alias `sales` as `rank`); its result has no order (Spark's depends on
//! the shuffle), while here ties in sales are broken by brand and the result is ordered by
//! category and rank, so the output is the same on every run and any number of workers; and it
//! keys the running sales by the string `category_brand`, split again at the first `_`, so that
//! `c_d` of brand `b` and `c` of brand `d_b` become one row `c | d_b` with both sales. Here the
//! key is the pair `(category, brand)`. A line that is not three fields is counted and set aside
//! (`--dead-letter FILE` keeps it), not silently dropped as the course's `filter` does.

use std::sync::Arc;

use sluice::source::{DeadLetters, Malformed};
use sluice::sql::arrow::datatypes::{DataType, Field, Schema};
use sluice::{Result, StreamingContext};

use crate::common::{CommonArgs, LineSourceArgs};

/// The course's query, with its missing comma and an order added (see the module docs).
pub const TOP3: &str = "select t.category, t.brand, t.sales, t.rank from (
  select category, brand, sales,
    row_number() over (partition by category order by sales desc, brand) as rank
  from tmp_category_brand_sales
) t
where t.rank < 4
order by t.category, t.rank";

/// Flags of `sluice run category-top3`.
#[derive(Clone, Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[command(flatten)]
    pub source: LineSourceArgs,
    /// Rows `show()` prints per batch (Spark's default: 20).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub show: usize,
}

/// One row of the table the query reads.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Sales {
    pub category: String,
    pub brand: String,
    pub sales: i64,
}

/// `id brand category` → `((category, brand), 1)`, or the line set aside.
fn parse(line: String) -> std::result::Result<((String, String), u64), Malformed> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    match fields.as_slice() {
        [_id, brand, category] => Ok((((*category).to_owned(), (*brand).to_owned()), 1)),
        _ => Err(Malformed {
            source: "category-top3".into(),
            position: String::new(),
            reason: format!("{} fields, not 3 (`id brand category`)", fields.len()),
            bytes: line.into_bytes(),
        }),
    }
}

/// Generated input (without --host): each generated word becomes a sale of the brand named
/// after it, in one of 4 categories chosen by the word.
fn as_sale(line: String) -> Vec<String> {
    line.split_whitespace()
        .enumerate()
        .map(|(i, w)| {
            let k = w
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
            format!("{i} {w} category{}", k % 4)
        })
        .collect()
}

impl crate::Dataflow for Args {
    fn run(self: Box<Self>, common: &CommonArgs) -> Result<()> {
        let args = *self;
        let config = common.config()?;
        let source = args.source.source()?;
        let generated = args.source.host.is_none();
        let dead = match &args.source.dead_letter {
            Some(path) => DeadLetters::to_file(path)?,
            None => DeadLetters::counting(),
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("category", DataType::Utf8, false),
            Field::new("brand", DataType::Utf8, false),
            Field::new("sales", DataType::Int64, false),
        ]));
        let show = args.show;
        StreamingContext::new(config).run(move |job| {
            let mut lines = source.lines(job);
            if generated {
                lines = lines.flat_map(as_sale);
            }
            let pairs = lines.try_map(&dead, parse);
            let totals = pairs.update_state_by_key_with(
                sluice::dstream::state::UpdateState::new(|new: Vec<u64>, old: Option<u64>| {
                    Some(new.iter().sum::<u64>() + old.unwrap_or(0))
                })
                .pure()
                // (Named anew when the key became a pair: a snapshot of the old string keys
                // is dropped with a warning, not misread.)
                .name("sales-by-category-and-brand"),
            );
            totals
                .snapshots()
                .map(
                    |((category, brand), count): ((String, String), u64)| Sales {
                        category,
                        brand,
                        sales: count as i64,
                    },
                )
                .sql("tmp_category_brand_sales", schema.clone(), TOP3)
                .show(show, true);
        })
    }
}
