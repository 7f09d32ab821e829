//! What the bindings return as Python objects: dicts of arrays and plain dicts.

use exit_archive::{Config, EntryInfo, Id, Lineage, Stats};
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;

pub(crate) type Array1<'py, T> = Bound<'py, PyArray1<T>>;

/// `info()`: one array per field.
#[derive(IntoPyObject)]
pub(crate) struct InfoColumns<'py> {
    score: Array1<'py, f64>,
    parent: Array1<'py, i64>,
    root: Array1<'py, u64>,
    depth: Array1<'py, i64>,
    added_step: Array1<'py, i64>,
    last_step: Array1<'py, i64>,
    times_sampled: Array1<'py, i64>,
}

/// `lineage()`: one array per field.
#[derive(IntoPyObject)]
pub(crate) struct LineageColumns<'py> {
    parent: Array1<'py, i64>,
    root: Array1<'py, u64>,
    depth: Array1<'py, i64>,
}

#[derive(IntoPyObject)]
pub(crate) struct StatsDict {
    size: usize,
    capacity: usize,
    next_id: u64,
    evicted: u64,
    rejected: u64,
    removed: u64,
    sampled: u64,
    payload_bytes: u64,
    lineage_bytes: usize,
    memory_bytes: usize,
    score_min: f64,
    score_max: f64,
    score_mean: f64,
    depth_max: u32,
    max_last_step: u64,
    lineage_floor: u64,
}

#[derive(IntoPyObject)]
pub(crate) struct ConfigDict {
    capacity: usize,
    embedding_dim: Option<usize>,
    metric: &'static str,
    prioritization: &'static str,
    temperature: f64,
    staleness_coef: f64,
    admission: &'static str,
    seed: u64,
    max_payload_bytes: usize,
}

pub(crate) fn column<'py, T: numpy::Element, X>(
    py: Python<'py>,
    xs: &[X],
    f: impl Fn(&X) -> T,
) -> Array1<'py, T> {
    xs.iter().map(f).collect::<Vec<T>>().into_pyarray(py)
}

pub(crate) fn parent_id(l: &Lineage) -> i64 {
    l.parent.map_or(-1, |p| p.get() as i64)
}

/// Ids as a uint64 array, without copying.
pub(crate) fn id_array(py: Python<'_>, ids: Vec<Id>) -> Array1<'_, u64> {
    bytemuck::allocation::cast_vec::<Id, u64>(ids).into_pyarray(py)
}

impl<'py> InfoColumns<'py> {
    pub(crate) fn new(py: Python<'py>, infos: &[EntryInfo]) -> Self {
        InfoColumns {
            score: column(py, infos, |e| e.score),
            parent: column(py, infos, |e| parent_id(&e.lineage)),
            root: column(py, infos, |e| e.lineage.root.get()),
            depth: column(py, infos, |e| e.lineage.depth as i64),
            added_step: column(py, infos, |e| e.added_step as i64),
            last_step: column(py, infos, |e| e.last_step as i64),
            times_sampled: column(py, infos, |e| e.times_sampled as i64),
        }
    }
}

impl<'py> LineageColumns<'py> {
    pub(crate) fn new(py: Python<'py>, lineage: &[Lineage]) -> Self {
        LineageColumns {
            parent: column(py, lineage, parent_id),
            root: column(py, lineage, |l| l.root.get()),
            depth: column(py, lineage, |l| l.depth as i64),
        }
    }
}

impl From<Stats> for StatsDict {
    fn from(s: Stats) -> Self {
        StatsDict {
            size: s.len,
            capacity: s.capacity,
            next_id: s.next_id.get(),
            evicted: s.evicted,
            rejected: s.rejected,
            removed: s.removed,
            sampled: s.sampled,
            payload_bytes: s.payload_bytes,
            lineage_bytes: s.lineage_bytes,
            memory_bytes: s.memory_bytes,
            score_min: s.score_min,
            score_max: s.score_max,
            score_mean: s.score_mean,
            depth_max: s.depth_max,
            max_last_step: s.max_last_step,
            lineage_floor: s.lineage_floor.get(),
        }
    }
}

impl From<&Config> for ConfigDict {
    fn from(c: &Config) -> Self {
        ConfigDict {
            capacity: c.capacity,
            embedding_dim: c.embedding_dim,
            metric: c.metric.name(),
            prioritization: c.prioritization.name(),
            temperature: c.temperature,
            staleness_coef: c.staleness_coef,
            admission: c.admission.name(),
            seed: c.seed,
            max_payload_bytes: c.max_payload_bytes,
        }
    }
}
