//! The records `sluice feed --generate` makes, in the formats of the course's jobs: generated
//! from a seed, so the same command sends the same records.

use rand::{RngExt, SeedableRng};

/// What to generate.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Lines of 10 words from a vocabulary of 1 000 (`network-wordcount`, `kafka-wordcount`…).
    Wordcount,
    /// `name,orderid` with increasing ids (`kafka-to-postgres`, `kafka-to-mysql`).
    Orders,
    /// The 15-field `<<<!>>>` records of the online ETL (`kafka-etl`); one in 50 malformed.
    Etl,
    /// `ip##time##request##status##bytes` access-log lines (`blacklist-filter`).
    AccessLog,
    /// `id brand category` sales of 1 000 brands in 20 categories (`category-top3`).
    Sales,
}

/// An endless, seeded stream of records of one [`Kind`].
pub struct Generator {
    kind: Kind,
    rng: rand::rngs::SmallRng,
    n: u64,
}

impl Generator {
    pub fn new(kind: Kind, seed: u64) -> Self {
        Generator {
            kind,
            rng: rand::rngs::SmallRng::seed_from_u64(seed),
            n: 0,
        }
    }

    /// The next record.
    pub fn next_record(&mut self) -> String {
        let n = self.n;
        self.n += 1;
        match self.kind {
            Kind::Wordcount => {
                let words: Vec<String> = (0..10)
                    .map(|_| format!("w{}", self.rng.random_range(0..1000u32)))
                    .collect();
                words.join(" ")
            }
            Kind::Orders => format!("name{n},{n}"),
            Kind::Sales => {
                let brand = self.rng.random_range(0..1000u32);
                format!("{n} brand{brand} category{}", brand % 20)
            }
            Kind::Etl => {
                if n % 50 == 49 {
                    return format!("malformed record {n}");
                }
                let ip = |r: &mut rand::rngs::SmallRng| {
                    format!(
                        "{}.{}.{}.{}",
                        r.random_range(1..224u8),
                        r.random_range(0..=255u8),
                        r.random_range(0..=255u8),
                        r.random_range(1..255u8)
                    )
                };
                let client = ip(&mut self.rng);
                let server = ip(&mut self.rng);
                let stamp = jiff::tz::TimeZone::get("Asia/Shanghai")
                    .unwrap_or(jiff::tz::TimeZone::UTC)
                    .to_datetime(jiff::Timestamp::now())
                    .strftime("%Y%m%d%H%M%S")
                    .to_string();
                let host = format!("www.site{}.com", self.rng.random_range(0..100u32));
                let f = [
                    (3000 + n % 1000).to_string(),
                    self.rng.random_range(1..10_000u32).to_string(),
                    stamp,
                    client,
                    server,
                    self.rng.random_range(1024..65535u32).to_string(),
                    "80".into(),
                    host.clone(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    format!("http://{host}/page{}.html", n % 37),
                    self.rng.random_range(1..u32::MAX).to_string(),
                ];
                f.iter()
                    .map(|f| format!("<<<!>>>{f}<<<!>>>"))
                    .collect::<Vec<_>>()
                    .join(",")
            }
            Kind::AccessLog => {
                let ip = format!(
                    "10.0.{}.{}",
                    self.rng.random_range(0..4u8),
                    self.rng.random_range(1..20u8)
                );
                let stamp = jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M:%S");
                let status = [200, 200, 200, 304, 404, 500][self.rng.random_range(0..6usize)];
                format!(
                    "{ip}##{stamp}##GET /item/{} HTTP/1.1##{status}##{}",
                    n % 100,
                    self.rng.random_range(100..10_000u32)
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_etl_records_are_what_the_etl_job_cleans() {
        let zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let mut g = Generator::new(Kind::Etl, 7);
        let results: Vec<bool> = (0..100)
            .map(|_| crate::kafka_etl::clean::clean(&g.next_record(), &zone).is_ok())
            .collect();
        assert_eq!(results.iter().filter(|ok| !**ok).count(), 2);
    }

    #[test]
    fn the_same_seed_gives_the_same_records() {
        let mut a = Generator::new(Kind::Wordcount, 1);
        let mut b = Generator::new(Kind::Wordcount, 1);
        for _ in 0..10 {
            assert_eq!(a.next_record(), b.next_record());
        }
        assert_eq!(Generator::new(Kind::Orders, 0).next_record(), "name0,0");
    }
}
