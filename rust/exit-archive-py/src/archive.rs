//! `ArchiveCore`: the crate's `Archive` behind a guarded lock (guard.rs), with the GIL
//! released for the work; conversions in (convert.rs) and out (output.rs).

use std::sync::Mutex;

use exit_archive::{
    Admission, Archive, Config, EntryInfo, Error, Id, IvfIndex, Lineage, Metric, Prioritization,
};
use numpy::{IntoPyArray, PyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::convert::{Blob, Count, Float, Ids, Name, Parents, Payloads, Queries, Rows, Scores};
use crate::error::to_py;
use crate::guard::Guarded;
use crate::output::{id_array, Array1, ConfigDict, InfoColumns, LineageColumns, StatsDict};

#[pyclass(frozen, module = "exit_verl._archive")]
pub(crate) struct ArchiveCore {
    archive: Guarded,
    /// Approximate-novelty index, built on first use and kept in sync lazily.
    index: Mutex<Option<IvfIndex>>,
}

impl ArchiveCore {
    fn wrap(archive: Archive) -> Self {
        ArchiveCore {
            archive: Guarded::new(archive),
            index: Mutex::new(None),
        }
    }

    fn read<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&Archive) -> T + Send) -> PyResult<T> {
        self.archive.read(py, f)
    }

    fn write<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Archive) -> T + Send,
    ) -> PyResult<T> {
        self.archive.write(py, f)
    }

    fn read_with_gil<T>(&self, f: impl FnOnce(&Archive) -> T) -> PyResult<T> {
        self.archive.read_with_gil(f)
    }

    fn dim(&self, py: Python<'_>) -> PyResult<Option<usize>> {
        self.read(py, |a| a.config().embedding_dim)
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
        Ok(id_array(py, ids))
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
        Ok(id_array(py, ids))
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
        Ok((id_array(py, ids), list))
    }

    #[pyo3(signature = (step=Count(0)))]
    fn probabilities<'py>(
        &self,
        py: Python<'py>,
        step: Count,
    ) -> PyResult<(Array1<'py, u64>, Array1<'py, f64>)> {
        let pairs = self.read(py, |a| a.probabilities(step.0))?.map_err(to_py)?;
        let (ids, ps): (Vec<Id>, Vec<f64>) = pairs.into_iter().unzip();
        Ok((id_array(py, ids), ps.into_pyarray(py)))
    }

    fn get<'py>(&self, py: Python<'py>, ids: Ids<'py>) -> PyResult<Bound<'py, PyList>> {
        self.read_with_gil(|a| {
            let payloads = a.get(ids.values()).map_err(to_py)?;
            PyList::new(py, payloads.into_iter().map(|p| PyBytes::new(py, p)))
        })?
    }

    fn info<'py>(&self, py: Python<'py>, ids: Ids<'py>) -> PyResult<Bound<'py, PyDict>> {
        let ids = ids.values();
        let infos: Vec<EntryInfo> = self.read(py, |a| a.info(ids))?.map_err(to_py)?;
        InfoColumns::new(py, &infos).into_pyobject(py)
    }

    fn lineage<'py>(&self, py: Python<'py>, ids: Ids<'py>) -> PyResult<Bound<'py, PyDict>> {
        let ids = ids.values();
        let lin: Vec<Lineage> = self.read(py, |a| a.lineage(ids))?.map_err(to_py)?;
        LineageColumns::new(py, &lin).into_pyobject(py)
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
        Ok(id_array(py, self.read(py, |a| a.ids())?))
    }

    fn __len__(&self) -> PyResult<usize> {
        self.read_with_gil(|a| a.len())
    }

    /// Whether `id` is a resident id; any other object is not.
    fn contains(&self, id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(Count(id)) = id.extract::<Count>() else {
            self.archive.usable()?;
            return Ok(false);
        };
        self.read_with_gil(|a| a.contains(Id(id)))
    }

    fn config(&self) -> PyResult<ConfigDict> {
        self.read_with_gil(|a| ConfigDict::from(a.config()))
    }

    fn stats(&self, py: Python<'_>) -> PyResult<StatsDict> {
        Ok(StatsDict::from(self.read(py, |a| a.stats())?))
    }

    #[pyo3(signature = (before=Count(u64::MAX)))]
    fn forget_lineage(&self, py: Python<'_>, before: Count) -> PyResult<u64> {
        self.write(py, |a| a.forget_lineage(Id(before.0)).get())
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
            a.forget_lineage(Id(u64::MAX));
            panic!("panic requested by a test")
        })
    }
}
