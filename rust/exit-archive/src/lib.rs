//! A prioritized task archive for exploratory-iteration RL (ExIt, PLR-style replay).
//!
//! The archive stores opaque byte payloads (e.g. partial histories of an LLM's attempts) with
//! a score each, samples them i.i.d. by rank, proportional or softmax priority mixed with PLR
//! staleness, evicts the lowest score when full (or, with [`Admission::NotBelowMin`], rejects
//! entries scoring below it), keeps the lineage (parent, root, depth) of every id ever
//! inserted, measures embedding novelty by exact k-nearest-neighbour search, and snapshots to
//! one crash-safe file.
//!
//! Sampling probability of a resident `i` at `step`, with `n` residents:
//! - rank: sort by score descending (ties: smaller id first); rank `r` (1-based) has
//!   `h = (1/r)^(1/temperature)`;
//! - proportional: `h = score^(1/temperature)` (scores >= 0; all zero samples uniformly;
//!   computed relative to the highest score, `(score/max)^(1/temperature)`, so it neither
//!   overflows nor underflows the top);
//! - softmax: `h = exp(score/temperature)` (any finite score; computed shifted by the highest
//!   score, so it never overflows);
//! - `P_S = h / Σh`, `P_C(i) = (step − last_step_i) / Σ_j (step − last_step_j)` (uniform when
//!   that sum is 0), and `P = (1 − staleness_coef)·P_S + staleness_coef·P_C`.
//!
//! Sampling, score updates and evictions are O(log n): rank sampling draws a position from the
//! fixed distribution over ranks and selects it in an order-statistics B+tree.
//!
//! ```
//! use exit_archive::{Archive, Config};
//!
//! let mut cfg = Config::new(1000);
//! cfg.staleness_coef = 0.1;
//! let mut archive = Archive::new(cfg).unwrap();
//! let roots = archive.add(&[b"task 1".as_slice(), b"task 2"], &[0.2, 0.9], None, None, 0).unwrap();
//! // A child of the second task: an improved attempt, with the group's learnability as score.
//! let child = archive
//!     .add(&[b"task 2 + attempt".as_slice()], &[0.25], Some(&[roots[1] as i64]), None, 1)
//!     .unwrap();
//! assert_eq!(archive.lineage(&child).unwrap()[0].depth, 1);
//! let picked = archive.sample(4, 2).unwrap();
//! assert_eq!(picked.len(), 4);
//! archive.update_scores(&picked[..1], &[0.5]).unwrap();
//! let restored = exit_archive::Archive::from_bytes(&archive.to_bytes()).unwrap();
//! assert_eq!(restored.len(), 3);
//! ```

#![deny(missing_docs)]

mod archive;
mod config;
mod error;
mod huge;
mod ivf;
mod lineage;
pub mod novelty;
mod planner;
mod prefetch;
mod priorities;
mod residents;
mod rng;
mod snapshot;
mod validate;

pub use archive::{Archive, EntryInfo, Stats};
pub use config::{
    Admission, Config, Prioritization, ID_LIMIT, MAX_CAPACITY, MAX_EMBEDDING_DIM, MAX_SAMPLE,
};
pub use error::{Error, Result};
pub use ivf::{default_nlist, IvfIndex};
pub use lineage::{Lineage, LINEAGE_BYTES_PER_ID};
pub use novelty::{Metric, Neighbors};
