//! `ArchiveCore`: the crate's `Archive` behind a lock, with the GIL released for the work.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, OnceLock, RwLock};

use exit_archive::{
    Admission, Archive, Config, EntryInfo, Error, IvfIndex, Lineage, Metric, Prioritization,
};
use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::convert::{Blob, Count, Float, Ids, Name, Parents, Payloads, Queries, Rows, Scores};
use crate::error::to_py;

type Array1<'py, T> = Bound<'py, PyArray1<T>>;

/// `info()`: one array per field.
#[derive(IntoPyObject)]
struct InfoColumns<'py> {
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
struct LineageColumns<'py> {
    parent: Array1<'py, i64>,
    root: Array1<'py, u64>,
    depth: Array1<'py, i64>,
}

#[derive(IntoPyObject)]
struct StatsDict {
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
struct ConfigDict {
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

fn column<'py, T: numpy::Element, X>(
    py: Python<'py>,
    xs: &[X],
    f: impl Fn(&X) -> T,
) -> Array1<'py, T> {
    xs.iter().map(f).collect::<Vec<T>>().into_pyarray(py)
}

fn parent_id(l: &Lineage) -> i64 {
    l.parent.map_or(-1, |p| p as i64)
}

#[pyclass(frozen, module = "exit_verl._archive")]
pub(crate) struct ArchiveCore {
    inner: RwLock<Archive>,
    /// Approximate-novelty index, built on first use and kept in sync lazily.
    index: Mutex<Option<IvfIndex>>,
    /// Why the archive became unusable: an operation panicked, so its state may be half
    /// updated. Every later call raises instead of using it.
    failed: OnceLock<String>,
}

/// The error of every call on an archive after a panic.
fn unusable(why: &str) -> PyErr {
    PyRuntimeError::new_err(format!(
        "this archive is unusable: an operation panicked ({why}), so its state may be half \
         updated; load it again from its last snapshot"
    ))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl ArchiveCore {
    fn wrap(archive: Archive) -> Self {
        ArchiveCore {
            inner: RwLock::new(archive),
            index: Mutex::new(None),
            failed: OnceLock::new(),
        }
    }

    fn usable(&self) -> PyResult<()> {
        match self.failed.get() {
            Some(why) => Err(unusable(why)),
            None => Ok(()),
        }
    }

    /// Runs `f` (which takes a lock and returns None when it finds it poisoned) and turns a
    /// panic into a RuntimeError that marks the archive unusable.
    fn guard<T>(&self, f: impl FnOnce() -> Option<T>) -> PyResult<T> {
        self.usable()?;
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Err(unusable(
                self.failed
                    .get()
                    .map_or("in another thread", |why| why.as_str()),
            )),
            Err(payload) => {
                let why = panic_message(&*payload);
                let _ = self.failed.set(why.clone());
                Err(unusable(&why))
            }
        }
    }

    fn dim(&self, py: Python<'_>) -> PyResult<Option<usize>> {
        self.read(py, |a| a.config().embedding_dim)
    }

    /// `f` on the archive under the read lock, with the GIL released.
    fn read<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&Archive) -> T + Send) -> PyResult<T> {
        py.detach(|| self.guard(|| self.inner.read().ok().map(|a| f(&a))))
    }

    /// `f` on the archive under the write lock, with the GIL released.
    fn write<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Archive) -> T + Send,
    ) -> PyResult<T> {
        py.detach(|| self.guard(|| self.inner.write().ok().map(|mut a| f(&mut a))))
    }

    /// `f` under the read lock with the GIL held (for results built as Python objects).
    fn read_with_gil<T>(&self, f: impl FnOnce(&Archive) -> T) -> PyResult<T> {
        self.guard(|| self.inner.read().ok().map(|a| f(&a)))
    }

    /// Runs `f` on the archive and an index synced to it (built when missing or when `nlist`
    /// asks for another size).
    fn with_index<T: Send>(
        &self,
        py: Python<'_>,
        nlist: Option<usize>,
        f: impl FnOnce(&Archive, &IvfIndex) -> exit_archive::Result<T> + Send,
    ) -> PyResult<T> {
        self.read(py, |a| {
            let mut slot = self.index.lock().unwrap_or_else(|e| e.into_inner());
            let rebuild = match (&*slot, nlist) {
                (None, _) => true,
                (Some(ix), Some(n)) => ix.nlist() != n.min(a.len()),
                _ => false,
            };
            if rebuild {
                // A failed build leaves no index behind, so a later call builds afresh.
                *slot = None;
                *slot = Some(IvfIndex::build(a, nlist, a.config().seed)?);
            }
            let ix = slot.as_mut().expect("index was just built");
            ix.sync(a)?;
            f(a, ix)
        })?
        .map_err(to_py)
    }
}

fn usize_of(c: Count) -> usize {
    usize::try_from(c.0).unwrap_or(usize::MAX)
}

#[pymethods]
impl ArchiveCore {
    #[new]
    #[pyo3(signature = (capacity, embedding_dim=None, metric=Name("cosine".into()), prioritization=Name("rank".into()),
                        temperature=Float(1.0), staleness_coef=Float(0.0), admission=Name("always".into()), seed=Count(0),
                        max_payload_bytes=Count(67108864)))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        capacity: Count,
        embedding_dim: Option<Count>,
        metric: Name,
        prioritization: Name,
        temperature: Float,
        staleness_coef: Float,
        admission: Name,
        seed: Count,
        max_payload_bytes: Count,
    ) -> PyResult<Self> {
        let mut cfg = Config::new(usize_of(capacity));
        cfg.embedding_dim = embedding_dim.map(usize_of);
        cfg.metric = Metric::parse(&metric.0).map_err(to_py)?;
        cfg.prioritization = Prioritization::parse(&prioritization.0).map_err(to_py)?;
        cfg.temperature = temperature.0;
        cfg.staleness_coef = staleness_coef.0;
        cfg.admission = Admission::parse(&admission.0).map_err(to_py)?;
        cfg.seed = seed.0;
        cfg.max_payload_bytes = usize_of(max_payload_bytes);
        Archive::new(cfg).map(ArchiveCore::wrap).map_err(to_py)
    }

    #[pyo3(signature = (payloads, scores, parents=None, embeddings=None, step=Count(0)))]
    fn add<'py>(
        &self,
        py: Python<'py>,
        payloads: Payloads<'py>,
        scores: Scores<'py>,
        parents: Option<Parents>,
        embeddings: Option<Rows<'py>>,
        step: Count,
    ) -> PyResult<Array1<'py, u64>> {
        let scores = scores.0.values();
        let parents = parents.as_ref().map(|p| p.0.as_slice());
        if let Some(e) = &embeddings {
            if e.0.shape()[0] != payloads.views().len() {
                return Err(PyValueError::new_err(format!(
                    "embeddings must have one row per payload, got shape {:?}",
                    e.0.shape()
                )));
            }
        }
        let rows = embeddings.as_ref().map(|e| e.0.values());
        let views = payloads.views();
        let ids = self
            .write(py, |a| {
                a.add(views, &scores, parents, rows.as_deref(), step.0)
            })?
            .map_err(to_py)?;
        Ok(ids.into_pyarray(py))
    }

    fn update_scores(&self, py: Python<'_>, ids: Ids<'_>, scores: Scores<'_>) -> PyResult<()> {
        let (ids, scores) = (ids.values(), scores.0.values());
        self.write(py, |a| a.update_scores(ids, &scores))?
            .map_err(to_py)
    }

    #[pyo3(signature = (k, step=Count(0)))]
    fn sample<'py>(&self, py: Python<'py>, k: Count, step: Count) -> PyResult<Array1<'py, u64>> {
        let k = usize_of(k);
        let ids = self.write(py, |a| a.sample(k, step.0))?.map_err(to_py)?;
        Ok(ids.into_pyarray(py))
    }

    /// `sample` and the payloads of the drawn ids under one lock: no eviction between them.
    #[pyo3(signature = (k, step=Count(0)))]
    fn sample_with_payloads<'py>(
        &self,
        py: Python<'py>,
        k: Count,
        step: Count,
    ) -> PyResult<(Array1<'py, u64>, Bound<'py, PyList>)> {
        let k = usize_of(k);
        // Copied out under the lock (GIL released), made into bytes objects after.
        let (ids, bytes, ends) = self
            .write(py, |a| {
                let (ids, payloads) = a.sample_with_payloads(k, step.0)?;
                let total = payloads.iter().map(|p| p.len()).sum::<usize>();
                let mut bytes: Vec<u8> = Vec::new();
                bytes.try_reserve_exact(total).map_err(|_| {
                    Error::Invalid(format!("cannot allocate {total} bytes of payloads"))
                })?;
                let mut ends = Vec::with_capacity(payloads.len());
                for p in payloads {
                    bytes.extend_from_slice(p);
                    ends.push(bytes.len());
                }
                Ok::<_, Error>((ids, bytes, ends))
            })?
            .map_err(to_py)?;
        let mut start = 0;
        let list = PyList::new(
            py,
            ends.iter().map(|&end| {
                let b = PyBytes::new(py, &bytes[start..end]);
                start = end;
                b
            }),
        )?;
        Ok((ids.into_pyarray(py), list))
    }

    #[pyo3(signature = (step=Count(0)))]
    fn probabilities<'py>(
        &self,
        py: Python<'py>,
        step: Count,
    ) -> PyResult<(Array1<'py, u64>, Array1<'py, f64>)> {
        let pairs = self.read(py, |a| a.probabilities(step.0))?.map_err(to_py)?;
        let (ids, ps): (Vec<u64>, Vec<f64>) = pairs.into_iter().unzip();
        Ok((ids.into_pyarray(py), ps.into_pyarray(py)))
    }

    fn get<'py>(&self, py: Python<'py>, ids: Ids<'py>) -> PyResult<Bound<'py, PyList>> {
        self.read_with_gil(|a| {
            let payloads = a.get(ids.values()).map_err(to_py)?;
            PyList::new(py, payloads.into_iter().map(|p| PyBytes::new(py, p)))
        })?
    }

    fn info<'py>(
        &self,
        py: Python<'py>,
        ids: Ids<'py>,
    ) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let ids = ids.values();
        let infos: Vec<EntryInfo> = self.read(py, |a| a.info(ids))?.map_err(to_py)?;
        let columns = InfoColumns {
            score: column(py, &infos, |e| e.score),
            parent: column(py, &infos, |e| parent_id(&e.lineage)),
            root: column(py, &infos, |e| e.lineage.root),
            depth: column(py, &infos, |e| e.lineage.depth as i64),
            added_step: column(py, &infos, |e| e.added_step as i64),
            last_step: column(py, &infos, |e| e.last_step as i64),
            times_sampled: column(py, &infos, |e| e.times_sampled as i64),
        };
        columns.into_pyobject(py)
    }

    fn lineage<'py>(
        &self,
        py: Python<'py>,
        ids: Ids<'py>,
    ) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let ids = ids.values();
        let lin: Vec<Lineage> = self.read(py, |a| a.lineage(ids))?.map_err(to_py)?;
        LineageColumns {
            parent: column(py, &lin, parent_id),
            root: column(py, &lin, |l| l.root),
            depth: column(py, &lin, |l| l.depth as i64),
        }
        .into_pyobject(py)
    }

    fn embeddings<'py>(
        &self,
        py: Python<'py>,
        ids: Ids<'py>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let ids = ids.values();
        let Some(dim) = self.dim(py)? else {
            return Err(PyValueError::new_err("this archive has no embedding_dim"));
        };
        let rows = self
            .read(py, |a| {
                let mut out = Vec::with_capacity(ids.len() * dim);
                for &id in ids {
                    out.extend_from_slice(a.embedding(id)?.unwrap_or(&[]));
                }
                Ok::<_, Error>(out)
            })?
            .map_err(to_py)?;
        let arr = numpy::ndarray::Array2::from_shape_vec((ids.len(), dim), rows)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(arr.into_pyarray(py))
    }

    #[pyo3(signature = (queries, k=Count(8)))]
    fn novelty<'py>(
        &self,
        py: Python<'py>,
        queries: Queries<'py>,
        k: Count,
    ) -> PyResult<Array1<'py, f32>> {
        let q = queries.values_for(self.dim(py)?)?;
        let k = usize_of(k);
        let out = self.read(py, |a| a.novelty(&q, k))?.map_err(to_py)?;
        Ok(out.into_pyarray(py))
    }

    /// Approximate novelty; an empty archive gives the exact answer (inf), decided under the
    /// same lock as the search.
    #[pyo3(signature = (queries, k=Count(8), nprobe=Count(8), nlist=None))]
    fn novelty_approx<'py>(
        &self,
        py: Python<'py>,
        queries: Queries<'py>,
        k: Count,
        nprobe: Count,
        nlist: Option<Count>,
    ) -> PyResult<Array1<'py, f32>> {
        let q = queries.values_for(self.dim(py)?)?;
        let (k, nprobe) = (usize_of(k), usize_of(nprobe));
        let exact = self
            .read(py, |a| a.is_empty().then(|| a.novelty(&q, k)))?
            .transpose()
            .map_err(to_py)?;
        if let Some(out) = exact {
            return Ok(out.into_pyarray(py));
        }
        let out = self.with_index(py, nlist.map(usize_of), |a, ix| {
            if a.is_empty() {
                return a.novelty(&q, k);
            }
            ix.novelty(a, &q, k, nprobe)
        })?;
        Ok(out.into_pyarray(py))
    }

    #[pyo3(signature = (queries, k=Count(8), nprobe=Count(8), nlist=None))]
    fn novelty_recall(
        &self,
        py: Python<'_>,
        queries: Queries<'_>,
        k: Count,
        nprobe: Count,
        nlist: Option<Count>,
    ) -> PyResult<(f64, usize)> {
        let q = queries.values_for(self.dim(py)?)?;
        let (k, nprobe) = (usize_of(k), usize_of(nprobe));
        self.with_index(py, nlist.map(usize_of), |a, ix| {
            Ok((ix.recall(a, &q, k, nprobe)?, ix.nlist()))
        })
    }

    fn remove(&self, py: Python<'_>, ids: Ids<'_>) -> PyResult<()> {
        let ids = ids.values();
        self.write(py, |a| a.remove(ids))?.map_err(to_py)
    }

    fn ids<'py>(&self, py: Python<'py>) -> PyResult<Array1<'py, u64>> {
        Ok(self.read(py, |a| a.ids())?.into_pyarray(py))
    }

    fn __len__(&self) -> PyResult<usize> {
        self.read_with_gil(|a| a.len())
    }

    /// Whether `id` is a resident id; any other object is not.
    fn contains(&self, id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(Count(id)) = id.extract::<Count>() else {
            self.usable()?;
            return Ok(false);
        };
        self.read_with_gil(|a| a.contains(id))
    }

    fn config(&self) -> PyResult<ConfigDict> {
        self.read_with_gil(|a| {
            let c = a.config();
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
        })
    }

    fn stats(&self, py: Python<'_>) -> PyResult<StatsDict> {
        let s = self.read(py, |a| a.stats())?;
        Ok(StatsDict {
            size: s.len,
            capacity: s.capacity,
            next_id: s.next_id,
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
            lineage_floor: s.lineage_floor,
        })
    }

    #[pyo3(signature = (before=Count(u64::MAX)))]
    fn forget_lineage(&self, py: Python<'_>, before: Count) -> PyResult<u64> {
        self.write(py, |a| a.forget_lineage(before.0))
    }

    fn save(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        self.read(py, |a| a.save(&path))?.map_err(to_py)
    }

    #[staticmethod]
    fn load(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Self> {
        let archive = py.detach(|| Archive::load(&path)).map_err(|e| match e {
            Error::Io(_) if !path.exists() => {
                PyValueError::new_err(format!("no snapshot at {}", path.display()))
            }
            other => to_py(other),
        })?;
        Ok(ArchiveCore::wrap(archive))
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self.read(py, |a| a.to_bytes())?;
        Ok(PyBytes::new(py, &bytes))
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: Blob<'_>) -> PyResult<Self> {
        let data = data.bytes();
        let archive = py.detach(|| Archive::from_bytes(data)).map_err(to_py)?;
        Ok(ArchiveCore::wrap(archive))
    }

    /// Test hook: panics while holding the write lock, after changing the archive, as a bug
    /// in the crate would. The archive is unusable afterwards.
    fn _panic_for_tests(&self, py: Python<'_>) -> PyResult<()> {
        self.write(py, |a| {
            a.forget_lineage(u64::MAX);
            panic!("panic requested by a test")
        })
    }
}
