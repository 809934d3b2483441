//! `windowed-wordcount`: the course's window job (seed §5.4): every `--slide`, the word counts of
//! the last `--window`, `reduceByKeyAndWindow(_ + _, windowDuration, slideDuration)`. By default
//! the window is 3 batch intervals and the slide 2, as in the course.

use sluice::{Result, StreamingContext};

use crate::common::{CommonArgs, LineSourceArgs};

/// Flags of `sluice run windowed-wordcount`.
#[derive(Clone, Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[command(flatten)]
    pub source: LineSourceArgs,
    /// Window length, a multiple of --batch (default: 3 batch intervals).
    #[arg(long, value_name = "DURATION")]
    pub window: Option<String>,
    /// Slide interval, a multiple of --batch (default: 2 batch intervals).
    #[arg(long, value_name = "DURATION")]
    pub slide: Option<String>,
    /// Use Spark's incremental form with an inverse function (counts of words that left the
    /// window drop to 0 and are then removed, like countByValueAndWindow).
    #[arg(long)]
    pub inverse: bool,
}

impl crate::Dataflow for Args {
    fn run(self: Box<Self>, common: &CommonArgs) -> Result<()> {
        let args = *self;
        let config = common.config()?;
        let batch = std::time::Duration::from_millis(config.batch_ms());
        let window = match &args.window {
            Some(w) => sluice::time::parse_duration(w)?,
            None => batch * 3,
        };
        let slide = match &args.slide {
            Some(s) => sluice::time::parse_duration(s)?,
            None => batch * 2,
        };
        let source = args.source.source()?;
        let (print, inverse) = (common.print, args.inverse);
        StreamingContext::new(config).run(move |job| {
            let ones = source.word_ones(job);
            if inverse {
                ones.reduce_by_key_and_window_inv(
                    |a, b| a + b,
                    |a, b| a - b,
                    window,
                    slide,
                    Some(|(_, n): &(sluice::CompactString, u64)| *n > 0),
                )
                .print(print);
            } else {
                ones.reduce_by_key_and_window(|a, b| a + b, window, slide)
                    .print(print);
            }
        })
    }
}
