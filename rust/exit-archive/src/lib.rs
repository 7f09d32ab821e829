#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod archive;
mod config;
mod error;
mod huge;
mod id;
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
pub use error::{CorruptKind, Error, Result};
pub use id::Id;
pub use ivf::{default_nlist, IvfIndex};
pub use lineage::{Lineage, LINEAGE_BYTES_PER_ID};
pub use novelty::{Metric, Neighbors};
