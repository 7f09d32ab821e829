//! Python bindings for `exit-archive`: type conversion, GIL release and error mapping only.
//! Inputs arrive already normalized (contiguous arrays of the right dtype) from the Python
//! wrapper `exit_verl.archive.TaskArchive`.

use std::sync::{Mutex, RwLock};

use exit_archive::{Admission, Archive, Config, Error, IvfIndex, Metric, Prioritization};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyKeyError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

fn to_py(err: Error) -> PyErr {
    match err {
        Error::Invalid(_) | Error::Corrupt(_) => PyValueError::new_err(err.to_string()),
        Error::UnknownId(id) => PyKeyError::new_err(id),
        Error::Io(_) => PyOSError::new_err(err.to_string()),
    }
}

fn contiguous<'a, T: numpy::Element, D: numpy::ndarray::Dimension>(
    a: &'a numpy::PyReadonlyArray<'_, T, D>,
    what: &str,
) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{what} must be a C-contiguous array")))
}

fn non_negative(x: i64, what: &str) -> PyResult<u64> {
    u64::try_from(x).map_err(|_| PyValueError::new_err(format!("{what} must be >= 0, got {x}")))
}

/// Borrows the bytes of each payload (bytes, or str as UTF-8). The views stay valid while
/// `items` holds a reference to every object, so the archive can read them without the GIL.
fn payload_views<'a>(items: &'a [Bound<'_, PyAny>]) -> PyResult<Vec<&'a [u8]>> {
    items
        .iter()
        .map(|item| {
            if let Ok(b) = item.cast::<PyBytes>() {
                Ok(b.as_bytes())
            } else if let Ok(s) = item.cast::<PyString>() {
                Ok(s.to_str()?.as_bytes())
            } else {
                Err(PyValueError::new_err(format!(
                    "payloads must be bytes or str, got {}",
                    item.get_type().name()?
                )))
            }
        })
        .collect()
}

/// k, nprobe and the optional nlist of the approximate-novelty calls, checked.
fn approx_args(k: i64, nprobe: i64, nlist: Option<i64>) -> PyResult<(usize, usize, Option<usize>)> {
    let nlist = nlist.map(|n| non_negative(n, "nlist")).transpose()?;
    Ok((
        non_negative(k, "k")? as usize,
        non_negative(nprobe, "nprobe")? as usize,
        nlist.map(|n| n as usize),
    ))
}

type IdsAndProbabilities<'py> = (Bound<'py, PyArray1<u64>>, Bound<'py, PyArray1<f64>>);

#[pyclass(frozen, module = "exit_verl._archive")]
struct ArchiveCore {
    inner: RwLock<Archive>,
    embedding_dim: Option<usize>,
    /// Approximate-novelty index, built on first use and kept in sync lazily.
    index: Mutex<Option<IvfIndex>>,
}

impl ArchiveCore {
    fn wrap(archive: Archive) -> Self {
        ArchiveCore {
            embedding_dim: archive.config().embedding_dim,
            inner: RwLock::new(archive),
            index: Mutex::new(None),
        }
    }

    /// The query matrix as one contiguous slice, after checking its width.
    fn query_slice<'a>(&self, queries: &'a PyReadonlyArray2<'_, f32>) -> PyResult<&'a [f32]> {
        if let Some(dim) = self.embedding_dim {
            if queries.shape()[1] != dim {
                return Err(PyValueError::new_err(format!(
                    "queries must have shape (q, {dim}), got {:?}",
                    queries.shape()
                )));
            }
        }
        contiguous(queries, "queries")
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
                *slot = Some(IvfIndex::build(a, nlist, a.config().seed)?);
            }
            let ix = slot.as_mut().expect("index was just built");
            ix.sync(a)?;
            f(a, ix)
        })
        .map_err(to_py)
    }

    fn read<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&Archive) -> T + Send) -> T {
        py.detach(|| f(&self.inner.read().unwrap_or_else(|e| e.into_inner())))
    }

    fn write<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut Archive) -> T + Send) -> T {
        py.detach(|| f(&mut self.inner.write().unwrap_or_else(|e| e.into_inner())))
    }
}

#[pymethods]
impl ArchiveCore {
    #[new]
    #[pyo3(signature = (capacity, embedding_dim=None, metric="cosine", prioritization="rank",
                        temperature=1.0, staleness_coef=0.0, admission="always", seed=0,
                        max_payload_bytes=64 << 20))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        capacity: i64,
        embedding_dim: Option<i64>,
        metric: &str,
        prioritization: &str,
        temperature: f64,
        staleness_coef: f64,
        admission: &str,
        seed: u64,
        max_payload_bytes: i64,
    ) -> PyResult<Self> {
        let mut cfg = Config::new(usize::try_from(capacity).unwrap_or(0));
        if capacity < 1 {
            return Err(PyValueError::new_err(format!(
                "capacity must be >= 1, got {capacity}"
            )));
        }
        cfg.embedding_dim = match embedding_dim {
            None => None,
            Some(d) if d >= 1 => Some(d as usize),
            Some(d) => {
                return Err(PyValueError::new_err(format!(
                    "embedding_dim must be >= 1, got {d}"
                )))
            }
        };
        cfg.metric = Metric::parse(metric).map_err(to_py)?;
        cfg.prioritization = Prioritization::parse(prioritization).map_err(to_py)?;
        cfg.temperature = temperature;
        cfg.staleness_coef = staleness_coef;
        cfg.admission = Admission::parse(admission).map_err(to_py)?;
        cfg.seed = seed;
        cfg.max_payload_bytes = non_negative(max_payload_bytes, "max_payload_bytes")? as usize;
        Archive::new(cfg).map(ArchiveCore::wrap).map_err(to_py)
    }

    #[pyo3(signature = (payloads, scores, parents, embeddings, step))]
    fn add<'py>(
        &self,
        py: Python<'py>,
        payloads: &Bound<'py, PyList>,
        scores: PyReadonlyArray1<'py, f64>,
        parents: Option<PyReadonlyArray1<'py, i64>>,
        embeddings: Option<PyReadonlyArray2<'py, f32>>,
        step: i64,
    ) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let step = non_negative(step, "step")?;
        let items: Vec<Bound<'py, PyAny>> = payloads.iter().collect();
        let views = payload_views(&items)?;
        let scores = contiguous(&scores, "scores")?;
        let parents = parents
            .as_ref()
            .map(|p| contiguous(p, "parents"))
            .transpose()?;
        if let (Some(e), Some(dim)) = (&embeddings, self.embedding_dim) {
            let shape = e.shape();
            if shape != [views.len(), dim] {
                return Err(PyValueError::new_err(format!(
                    "embeddings must have shape ({}, {dim}), got {shape:?}",
                    views.len()
                )));
            }
        }
        let embeddings = embeddings
            .as_ref()
            .map(|e| contiguous(e, "embeddings"))
            .transpose()?;
        let ids = self.write(py, |a| a.add(&views, scores, parents, embeddings, step));
        Ok(ids.map_err(to_py)?.into_pyarray(py))
    }

    fn update_scores(
        &self,
        py: Python<'_>,
        ids: PyReadonlyArray1<'_, u64>,
        scores: PyReadonlyArray1<'_, f64>,
    ) -> PyResult<()> {
        let ids = contiguous(&ids, "ids")?;
        let scores = contiguous(&scores, "scores")?;
        self.write(py, |a| a.update_scores(ids, scores))
            .map_err(to_py)
    }

    fn sample<'py>(
        &self,
        py: Python<'py>,
        k: i64,
        step: i64,
    ) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let k = non_negative(k, "k")? as usize;
        let step = non_negative(step, "step")?;
        let ids = self.write(py, |a| a.sample(k, step)).map_err(to_py)?;
        Ok(ids.into_pyarray(py))
    }

    fn probabilities<'py>(&self, py: Python<'py>, step: i64) -> PyResult<IdsAndProbabilities<'py>> {
        let step = non_negative(step, "step")?;
        let pairs = self.read(py, |a| a.probabilities(step)).map_err(to_py)?;
        let (ids, ps): (Vec<u64>, Vec<f64>) = pairs.into_iter().unzip();
        Ok((ids.into_pyarray(py), ps.into_pyarray(py)))
    }

    fn get<'py>(
        &self,
        py: Python<'py>,
        ids: PyReadonlyArray1<'py, u64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let ids = contiguous(&ids, "ids")?;
        let guard = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let payloads = guard.get(ids).map_err(to_py)?;
        PyList::new(py, payloads.into_iter().map(|p| PyBytes::new(py, p)))
    }

    fn info<'py>(
        &self,
        py: Python<'py>,
        ids: PyReadonlyArray1<'py, u64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let ids = contiguous(&ids, "ids")?;
        let infos = self.read(py, |a| a.info(ids)).map_err(to_py)?;
        let d = PyDict::new(py);
        d.set_item(
            "score",
            infos
                .iter()
                .map(|e| e.score)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        let parent: Vec<i64> = infos
            .iter()
            .map(|e| e.lineage.parent.map_or(-1, |p| p as i64))
            .collect();
        d.set_item("parent", parent.into_pyarray(py))?;
        d.set_item(
            "root",
            infos
                .iter()
                .map(|e| e.lineage.root)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        d.set_item(
            "depth",
            infos
                .iter()
                .map(|e| e.lineage.depth as i64)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        d.set_item(
            "added_step",
            infos
                .iter()
                .map(|e| e.added_step as i64)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        d.set_item(
            "last_step",
            infos
                .iter()
                .map(|e| e.last_step as i64)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        d.set_item(
            "times_sampled",
            infos
                .iter()
                .map(|e| e.times_sampled as i64)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        Ok(d)
    }

    fn lineage<'py>(
        &self,
        py: Python<'py>,
        ids: PyReadonlyArray1<'py, u64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let ids = contiguous(&ids, "ids")?;
        let lin = self.read(py, |a| a.lineage(ids)).map_err(to_py)?;
        let d = PyDict::new(py);
        let parent: Vec<i64> = lin
            .iter()
            .map(|l| l.parent.map_or(-1, |p| p as i64))
            .collect();
        d.set_item("parent", parent.into_pyarray(py))?;
        d.set_item(
            "root",
            lin.iter()
                .map(|l| l.root)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        d.set_item(
            "depth",
            lin.iter()
                .map(|l| l.depth as i64)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        Ok(d)
    }

    fn embeddings<'py>(
        &self,
        py: Python<'py>,
        ids: PyReadonlyArray1<'py, u64>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let ids = contiguous(&ids, "ids")?;
        let Some(dim) = self.embedding_dim else {
            return Err(PyValueError::new_err("this archive has no embedding_dim"));
        };
        let rows = self
            .read(py, |a| {
                let mut out = Vec::with_capacity(ids.len() * dim);
                for &id in ids {
                    out.extend_from_slice(a.embedding(id)?.unwrap_or(&[]));
                }
                Ok(out)
            })
            .map_err(to_py)?;
        let arr = numpy::ndarray::Array2::from_shape_vec((ids.len(), dim), rows)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(arr.into_pyarray(py))
    }

    fn novelty<'py>(
        &self,
        py: Python<'py>,
        queries: PyReadonlyArray2<'py, f32>,
        k: i64,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let k = non_negative(k, "k")? as usize;
        let q = self.query_slice(&queries)?;
        let out = self.read(py, |a| a.novelty(q, k)).map_err(to_py)?;
        Ok(out.into_pyarray(py))
    }

    #[pyo3(signature = (queries, k, nprobe, nlist=None))]
    fn novelty_approx<'py>(
        &self,
        py: Python<'py>,
        queries: PyReadonlyArray2<'py, f32>,
        k: i64,
        nprobe: i64,
        nlist: Option<i64>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let (k, nprobe, nlist) = approx_args(k, nprobe, nlist)?;
        let q = self.query_slice(&queries)?;
        let out = self.with_index(py, nlist, |a, ix| ix.novelty(a, q, k, nprobe))?;
        Ok(out.into_pyarray(py))
    }

    #[pyo3(signature = (queries, k, nprobe, nlist=None))]
    fn novelty_recall(
        &self,
        py: Python<'_>,
        queries: PyReadonlyArray2<'_, f32>,
        k: i64,
        nprobe: i64,
        nlist: Option<i64>,
    ) -> PyResult<(f64, usize)> {
        let (k, nprobe, nlist) = approx_args(k, nprobe, nlist)?;
        let q = self.query_slice(&queries)?;
        self.with_index(py, nlist, |a, ix| {
            Ok((ix.recall(a, q, k, nprobe)?, ix.nlist()))
        })
    }

    fn remove(&self, py: Python<'_>, ids: PyReadonlyArray1<'_, u64>) -> PyResult<()> {
        let ids = contiguous(&ids, "ids")?;
        self.write(py, |a| a.remove(ids)).map_err(to_py)
    }

    fn ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u64>> {
        self.read(py, |a| a.ids()).into_pyarray(py)
    }

    fn __len__(&self) -> usize {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn contains(&self, id: u64) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let guard = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let c = guard.config();
        let d = PyDict::new(py);
        d.set_item("capacity", c.capacity)?;
        d.set_item("embedding_dim", c.embedding_dim)?;
        d.set_item("metric", c.metric.name())?;
        d.set_item("prioritization", c.prioritization.name())?;
        d.set_item("temperature", c.temperature)?;
        d.set_item("staleness_coef", c.staleness_coef)?;
        d.set_item("admission", c.admission.name())?;
        d.set_item("seed", c.seed)?;
        d.set_item("max_payload_bytes", c.max_payload_bytes)?;
        Ok(d)
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (s, max_last, floor) =
            self.read(py, |a| (a.stats(), a.max_last_step(), a.lineage_floor()));
        let d = PyDict::new(py);
        d.set_item("size", s.len)?;
        d.set_item("capacity", s.capacity)?;
        d.set_item("next_id", s.next_id)?;
        d.set_item("evicted", s.evicted)?;
        d.set_item("rejected", s.rejected)?;
        d.set_item("removed", s.removed)?;
        d.set_item("sampled", s.sampled)?;
        d.set_item("payload_bytes", s.payload_bytes)?;
        d.set_item("lineage_bytes", s.lineage_bytes)?;
        d.set_item("memory_bytes", s.memory_bytes)?;
        d.set_item("score_min", s.score_min)?;
        d.set_item("score_max", s.score_max)?;
        d.set_item("score_mean", s.score_mean)?;
        d.set_item("depth_max", s.depth_max)?;
        d.set_item("max_last_step", max_last)?;
        d.set_item("lineage_floor", floor)?;
        Ok(d)
    }

    fn forget_lineage(&self, py: Python<'_>, before: u64) -> u64 {
        self.write(py, |a| a.forget_lineage(before))
    }

    fn save(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        self.read(py, |a| a.save(&path)).map_err(to_py)
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

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let bytes = self.read(py, |a| a.to_bytes());
        PyBytes::new(py, &bytes)
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let archive = py.detach(|| Archive::from_bytes(data)).map_err(to_py)?;
        Ok(ArchiveCore::wrap(archive))
    }
}

#[pymodule]
fn _archive(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ArchiveCore>()?;
    m.add("LINEAGE_BYTES_PER_ID", exit_archive::LINEAGE_BYTES_PER_ID)?;
    Ok(())
}
