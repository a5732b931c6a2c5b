//! Generated card transactions for `quiver dev` (the demo stream) and `quiver-bench push`:
//! skewed users (a few card holders are much busier, so hot keys show), merchants, free-text
//! notes, amounts in cents, and a sprinkle of late and anomalous rows — what the example
//! definitions in `examples/fraud.yaml` describe.

use std::time::Duration;

use quiver_common::clock::now_micros;

use quiver_proto::ingest::{PushRequest, Row};
use quiver_proto::types::value::Kind;
use quiver_proto::types::Value;

use crate::producer::Producer;

/// The columns of `transactions` rows, in the order [`Generator::transactions`] fills them.
pub const TRANSACTION_COLUMNS: [&str; 5] = ["user_id", "ts", "amount", "merchant", "note"];

/// The columns of `merchant_transactions` rows.
pub const MERCHANT_COLUMNS: [&str; 4] = ["merchant_id", "ts", "amount", "user_id"];

const NOTES: [&str; 6] = [
    "coffee",
    "groceries for the week",
    "train ticket",
    "dinner with friends at the corner bistro",
    "online subscription",
    "fuel",
];

/// One generated transaction.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// The card holder.
    pub user: i64,
    /// Event time, microseconds.
    pub at: i64,
    /// Amount, in currency units (whole cents).
    pub amount: f64,
    /// Merchant id.
    pub merchant: String,
    /// Free text.
    pub note: &'static str,
}

/// A deterministic transaction generator.
pub struct Generator {
    state: u64,
    users: u64,
    /// Out of 10,000 rows, how many are late (far behind the stream) and anomalous.
    late_per_10k: u64,
    anomalous_per_10k: u64,
}

impl Generator {
    /// `users` card holders; `seed` makes the stream repeatable.
    pub fn new(users: u64, seed: u64) -> Self {
        Self {
            state: seed,
            users: users.max(1),
            late_per_10k: 50,
            anomalous_per_10k: 20,
        }
    }

    /// Without late or anomalous rows (benchmarks measure the clean path).
    pub fn clean(mut self) -> Self {
        self.late_per_10k = 0;
        self.anomalous_per_10k = 0;
        self
    }

    fn next(&mut self) -> u64 {
        // splitmix64
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// One transaction at about `at` (microseconds).
    pub fn transaction(&mut self, at: i64) -> Transaction {
        // Skew: user = users * u^3 puts most events on the low ids.
        let u = self.unit();
        let user = (u * u * u * self.users as f64) as i64;
        let mut at = at;
        if self.next() % 10_000 < self.late_per_10k {
            at -= 2 * 3_600_000_000; // two hours behind: beyond the examples' 1h lateness
        }
        // Log-normal-ish amounts in whole cents, mostly 5..200.
        let mut amount = ((self.unit() * 3.5).exp() * 500.0).round() / 100.0 + 1.0;
        if self.next() % 10_000 < self.anomalous_per_10k {
            amount *= 200.0;
        }
        let merchant = format!("m{}", self.next() % 200);
        let note = NOTES[(self.next() % NOTES.len() as u64) as usize];
        Transaction {
            user,
            at,
            amount,
            merchant,
            note,
        }
    }
}

fn value(kind: Kind) -> Value {
    Value { kind: Some(kind) }
}

fn timestamp(micros: i64) -> Value {
    value(Kind::TimestampValue(prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }))
}

/// A `transactions` row.
pub fn transaction_row(t: &Transaction) -> Row {
    Row {
        values: vec![
            value(Kind::Int64Value(t.user)),
            timestamp(t.at),
            value(Kind::Float64Value(t.amount)),
            value(Kind::StringValue(t.merchant.clone())),
            value(Kind::StringValue(t.note.to_string())),
        ],
    }
}

/// A `merchant_transactions` row.
pub fn merchant_row(t: &Transaction) -> Row {
    Row {
        values: vec![
            value(Kind::StringValue(t.merchant.clone())),
            timestamp(t.at),
            value(Kind::Float64Value(t.amount)),
            value(Kind::Int64Value(t.user)),
        ],
    }
}

/// A push of `rows` to `source` of the `fraud` project.
pub fn request(source: &str, columns: &[&str], rows: Vec<Row>) -> PushRequest {
    PushRequest {
        project: "fraud".into(),
        source: source.into(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows,
        ..PushRequest::default()
    }
}

/// The `quiver dev` demo: backfills the last two hours, then pushes `rate` transactions a
/// second (to both sources) until the process stops. Errors are reported once and end the demo.
pub async fn run(ingest: String, rate: u32) {
    if let Err(e) = replay(&ingest, rate).await {
        eprintln!("quiver dev: the demo stream stopped: {e:#}");
    }
}

/// Pushes `batch` to both sources.
async fn push_both(
    users: &mut Producer,
    merchants: &mut Producer,
    batch: Vec<Transaction>,
) -> Result<(), tonic::Status> {
    let by_user = transaction_row;
    users
        .push(request(
            "transactions",
            &TRANSACTION_COLUMNS,
            batch.iter().map(by_user).collect(),
        ))
        .await?;
    merchants
        .push(request(
            "merchant_transactions",
            &MERCHANT_COLUMNS,
            batch.iter().map(merchant_row).collect(),
        ))
        .await?;
    Ok(())
}

async fn replay(ingest: &str, rate: u32) -> anyhow::Result<()> {
    let run = now_micros();
    let mut users = Producer::connect(ingest, format!("demo-transactions-{run}")).await?;
    let mut merchants = Producer::connect(ingest, format!("demo-merchants-{run}")).await?;
    let mut generator = Generator::new(1_000, run as u64);
    // History: two hours, 20,000 events, in time order and batches of 1,000.
    let history = 20_000i64;
    let span = 2 * 3_600_000_000i64;
    let start = now_micros() - span;
    for chunk in 0..history / 1_000 {
        let batch = (0..1_000)
            .map(|i| generator.transaction(start + span * (chunk * 1_000 + i) / history))
            .collect();
        push_both(&mut users, &mut merchants, batch).await?;
    }
    println!("Demo: backfilled 2h of generated transactions; now streaming {rate}/s live. Try:");
    println!("  quiver get --service fraud_model_v1 --entity user_id=0,1,2");
    // Live: one batch every 100 ms.
    let per_tick = (rate / 10).max(1) as usize;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let now = now_micros();
        let batch = (0..per_tick).map(|_| generator.transaction(now)).collect();
        push_both(&mut users, &mut merchants, batch).await?;
    }
}
