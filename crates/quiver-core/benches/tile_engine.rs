//! `cargo bench -p quiver-core --bench tile_engine`: events per second per core through the
//! tile aggregation engine (folding micro-batches of events into per-entity tiles and running
//! records, then encoding every touched record as the store writes it). No server, one thread.
//!
//! Two views: the example `user_txn` view's aggregations (12, incl. a distinct count and four
//! tile sizes) and a lean view (count, sum, mean, max over 1h). Events: 4,096 per micro-batch,
//! 10,000 users with skewed keys, event times one hour wide. Prints the median of 7 runs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use quiver_core::aggregate::{Stamp, TileAggregator};
use quiver_core::tiling::{layout, AggregateSpec};
use quiver_core::{Aggregation, Scalar, ValueType, Window};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 4_096;
const BATCHES: usize = 200;
const USERS: u64 = 10_000;
const RUNS: usize = 7;

fn spec(
    aggregation: Aggregation,
    column: Option<usize>,
    window: Window,
    value_type: ValueType,
) -> AggregateSpec {
    AggregateSpec {
        aggregation,
        column: column.map(|c| format!("c{c}")),
        window,
        value_type,
    }
}

fn hours(h: u64) -> Window {
    Window::Sliding(Duration::from_secs(h * 3600))
}

/// Column 0: amount (float64), 1: merchant (string), 2: note token count (int64).
fn fraud_view() -> (Vec<AggregateSpec>, Vec<Option<usize>>) {
    use Aggregation::*;
    let f = ValueType::Float64;
    let list = vec![
        (spec(Last, Some(0), Window::Lifetime, f), Some(0)),
        (spec(First, Some(0), Window::Lifetime, f), Some(0)),
        (spec(Count, None, hours(1), ValueType::Int64), None),
        (spec(Sum, Some(0), hours(24), f), Some(0)),
        (spec(Mean, Some(0), hours(168), f), Some(0)),
        (spec(Stddev, Some(0), hours(168), f), Some(0)),
        (spec(Min, Some(0), hours(24), f), Some(0)),
        (
            spec(Max, Some(0), Window::Tumbling(Duration::from_secs(3600)), f),
            Some(0),
        ),
        (
            spec(DistinctCount, Some(1), hours(168), ValueType::Int64),
            Some(1),
        ),
        (spec(Mean, Some(2), hours(24), f), Some(2)),
        (spec(Count, None, Window::Lifetime, ValueType::Int64), None),
        (spec(Sum, Some(0), Window::Lifetime, f), Some(0)),
    ];
    list.into_iter().unzip()
}

fn lean_view() -> (Vec<AggregateSpec>, Vec<Option<usize>>) {
    use Aggregation::*;
    let f = ValueType::Float64;
    let list = vec![
        (spec(Count, None, hours(1), ValueType::Int64), None),
        (spec(Sum, Some(0), hours(1), f), Some(0)),
        (spec(Mean, Some(0), hours(1), f), Some(0)),
        (spec(Max, Some(0), hours(1), f), Some(0)),
    ];
    list.into_iter().unzip()
}

struct Event {
    entity: Vec<u8>,
    at: i64,
    columns: [Scalar; 3],
}

fn events() -> Vec<Event> {
    let mut state = 42u64;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let start = 1_795_000_000_000_000i64;
    (0..BATCH * BATCHES)
        .map(|i| {
            let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
            let user = (u * u * u * USERS as f64) as i64;
            let mut entity = vec![b'i'];
            entity.extend_from_slice(&((user as u64) ^ (1 << 63)).to_be_bytes());
            Event {
                entity,
                at: start + (i as i64 * 3_600_000_000) / (BATCH * BATCHES) as i64,
                columns: [
                    Scalar::Float64((next() % 40_000) as f64 / 100.0),
                    Scalar::String(format!("m{}", next() % 200)),
                    Scalar::Int64((next() % 8) as i64),
                ],
            }
        })
        .collect()
}

fn run(name: &str, specs: &[AggregateSpec], inputs: &[Option<usize>], events: &[Event]) {
    let layout = layout(specs);
    let mut rates = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut bytes = 0usize;
        let mut buffer: Vec<u8> = Vec::new();
        let mut row: Vec<Option<&Scalar>> = Vec::with_capacity(specs.len());
        for (b, batch) in events.chunks(BATCH).enumerate() {
            let mut engine = TileAggregator::new(specs, &layout);
            for (i, e) in batch.iter().enumerate() {
                row.clear();
                row.extend(inputs.iter().map(|c| c.map(|c| &e.columns[c])));
                let stamp = Stamp {
                    event_micros: e.at,
                    sequence: ((b as u64) << 32) | i as u64,
                };
                engine.add(&e.entity, stamp, &row);
            }
            // As apply does: every touched record encoded into one buffer.
            buffer.clear();
            for (_, touched) in engine.finish() {
                for (_, _, record) in &touched.tiles {
                    record.encode_into(&mut buffer);
                }
                if let Some(running) = &touched.running {
                    running.encode_into(&mut buffer);
                }
            }
            bytes += buffer.len();
        }
        black_box(bytes);
        rates.push(events.len() as f64 / started.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "tile engine, {name}: median {:.2} M events/s per core (min {:.2}, max {:.2}; {} events, {}-event micro-batches)",
        rates[RUNS / 2] / 1e6,
        rates[0] / 1e6,
        rates[RUNS - 1] / 1e6,
        events.len(),
        BATCH
    );
}

fn main() {
    // `cargo test --all-targets` runs this too (without `--bench`): then only a smoke run.
    if !std::env::args().any(|a| a == "--bench") {
        let events = &events()[..BATCH];
        let (specs, inputs) = fraud_view();
        run("smoke run (not a measurement)", &specs, &inputs, events);
        return;
    }
    let events = events();
    let (specs, inputs) = lean_view();
    run(
        "lean view (count/sum/mean/max 1h)",
        &specs,
        &inputs,
        &events,
    );
    let (specs, inputs) = fraud_view();
    run(
        "user_txn view (12 aggregates, 4 tile sizes, distinct count)",
        &specs,
        &inputs,
        &events,
    );
}
