//! Conversion of Python arguments to the crate's input types. Only types are converted here
//! (array-likes to contiguous arrays of the crate's dtypes, objects to integers); every
//! semantic check happens once, in the crate. A value that cannot be converted at all raises
//! ValueError (malformed input), a negative id KeyError (it cannot name an entry).

use std::borrow::Cow;

use numpy::ndarray::{Dimension, Ix1, Ix2, IxDyn};
use numpy::{
    AllowTypeChange, Element, PyArray1, PyArrayDescrMethods, PyArrayLike, PyArrayMethods,
    PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyList, PyString, PyTuple};

use exit_archive::Id;

use crate::error::invalid;

/// A non-negative integer argument (count, step, id, size).
pub(crate) struct Count(pub u64);

impl<'a, 'py> FromPyObject<'a, 'py> for Count {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if ob.is_instance_of::<PyBool>() {
            return Err(PyValueError::new_err("expected an integer, got a bool"));
        }
        let value: i128 = ob
            .extract()
            .map_err(|e| invalid("expected an integer", e))?;
        u64::try_from(value)
            .map(Count)
            .map_err(|_| PyValueError::new_err(format!("expected an integer >= 0, got {value}")))
    }
}

/// A float option (temperature, staleness coefficient).
pub(crate) struct Float(pub f64);

impl<'a, 'py> FromPyObject<'a, 'py> for Float {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        ob.extract()
            .map(Float)
            .map_err(|e| invalid("expected a number", e))
    }
}

/// A mode name (metric, prioritization, admission); the crate says which names exist.
pub(crate) struct Name(pub String);

impl<'a, 'py> FromPyObject<'a, 'py> for Name {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        match ob.extract::<String>() {
            Ok(s) => Ok(Name(s)),
            Err(_) => Ok(Name(ob.repr()?.to_string())),
        }
    }
}

/// Snapshot bytes: bytes, or a bytes-like object (bytearray, memoryview) copied to bytes.
pub(crate) struct Blob<'py>(Bound<'py, PyBytes>);

impl Blob<'_> {
    pub(crate) fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for Blob<'py> {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(b) = ob.cast::<PyBytes>() {
            return Ok(Blob(b.to_owned()));
        }
        if !(ob.is_instance_of::<PyByteArray>() || ob.is_instance_of::<pyo3::types::PyMemoryView>())
        {
            return Err(PyValueError::new_err(format!(
                "expected bytes, got {}",
                ob.get_type().name()?
            )));
        }
        let copy = ob.py().get_type::<PyBytes>().call1((ob,))?;
        Ok(Blob(copy.cast_into::<PyBytes>()?))
    }
}

/// A contiguous view of a converted array (borrowed when the input already was one).
pub(crate) struct Array<'py, T: Element, D: Dimension>(PyArrayLike<'py, T, D, AllowTypeChange>);

impl<'py, T: Element + Copy, D: Dimension> Array<'py, T, D> {
    pub(crate) fn values(&self) -> Cow<'_, [T]> {
        match self.0.as_slice() {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => Cow::Owned(self.0.as_array().iter().copied().collect()),
        }
    }

    pub(crate) fn shape(&self) -> Vec<usize> {
        self.0.shape().to_vec()
    }
}

/// Numeric dtype kinds: signed and unsigned integers, floats.
const NUMBERS: &[u8] = b"iuf";
/// Integer dtype kinds.
const INTEGERS: &[u8] = b"iu";

/// `ob` as a numpy array without any cast (an array as it is, anything else through
/// `np.asarray`), refused unless its dtype kind is one of `kinds`: a value of another kind
/// (float parents, complex embeddings, strings, bools, objects) would be cast with a loss.
/// An empty array passes whatever its dtype (`[]` is float64 to numpy).
fn uncast<'py>(
    ob: Borrowed<'_, 'py, PyAny>,
    kinds: &[u8],
    what: &str,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    let arr = match ob.cast::<PyUntypedArray>() {
        Ok(a) => a.to_owned(),
        Err(_) => {
            let np = ob.py().import("numpy")?;
            np.call_method1("asarray", (ob,))
                .map_err(|e| invalid(what, e))?
                .cast_into::<PyUntypedArray>()?
        }
    };
    if arr.len() > 0 && !kinds.contains(&arr.dtype().kind()) {
        return Err(PyValueError::new_err(format!(
            "{what}, got dtype {}",
            arr.dtype()
        )));
    }
    Ok(arr)
}

fn array<'py, T: Element + 'py, D: Dimension + 'py>(
    ob: Borrowed<'_, 'py, PyAny>,
    kinds: &[u8],
    what: &str,
) -> PyResult<Array<'py, T, D>>
where
    for<'a> Vec<T>: FromPyObject<'a, 'py>,
{
    let arr = uncast(ob, kinds, what)?;
    arr.as_any()
        .as_borrowed()
        .extract::<PyArrayLike<'py, T, D, AllowTypeChange>>()
        .map(Array)
        .map_err(|e| invalid(what, e))
}

/// Scores: a 1-D array-like of real numbers, as float64.
pub(crate) struct Scores<'py>(pub Array<'py, f64, Ix1>);

impl<'a, 'py> FromPyObject<'a, 'py> for Scores<'py> {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        array(ob, NUMBERS, "scores must be a 1-D array of real numbers").map(Scores)
    }
}

/// Parents: a 1-D array-like of integers, -1 for none (any other negative value is
/// malformed).
pub(crate) struct Parents(pub Vec<Option<Id>>);

impl<'a, 'py> FromPyObject<'a, 'py> for Parents {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        const WHAT: &str = "parents must be a 1-D array of integers (-1: none)";
        let arr = uncast(ob, INTEGERS, WHAT)?;
        if arr.ndim() != 1 {
            return Err(PyValueError::new_err(format!(
                "{WHAT}, got shape {:?}",
                arr.shape()
            )));
        }
        if arr.len() > 0 && arr.dtype().kind() == b'u' {
            let wide: Array<'py, u64, Ix1> = array(arr.as_any().as_borrowed(), INTEGERS, WHAT)?;
            return Ok(Parents(
                wide.values().iter().map(|&p| Some(Id(p))).collect(),
            ));
        }
        let signed: Array<'py, i64, Ix1> = array(arr.as_any().as_borrowed(), INTEGERS, WHAT)?;
        signed
            .values()
            .iter()
            .map(|&p| match p {
                -1 => Ok(None),
                p if p >= 0 => Ok(Some(Id(p as u64))),
                p => Err(PyValueError::new_err(format!(
                    "parent must be -1 (none) or an id, got {p}"
                ))),
            })
            .collect::<PyResult<Vec<_>>>()
            .map(Parents)
    }
}

/// Embedding rows: a 2-D float32 array-like.
pub(crate) struct Rows<'py>(pub Array<'py, f32, Ix2>);

impl<'a, 'py> FromPyObject<'a, 'py> for Rows<'py> {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        array(
            ob,
            NUMBERS,
            "embeddings must be a 2-D array of real numbers",
        )
        .map(Rows)
    }
}

/// Novelty queries: one vector or a 2-D array of them, as float32.
pub(crate) struct Queries<'py>(pub Array<'py, f32, IxDyn>);

impl Queries<'_> {
    /// The flat values, once the width of a 2-D array matches `dim` (a 1-D array is one query;
    /// the crate checks its length).
    pub(crate) fn values_for(&self, dim: Option<usize>) -> PyResult<Cow<'_, [f32]>> {
        let shape = self.0.shape();
        if let (2, Some(dim)) = (shape.len(), dim) {
            if shape[1] != dim {
                return Err(PyValueError::new_err(format!(
                    "queries must have shape (q, {dim}), got {shape:?}"
                )));
            }
        }
        Ok(self.0.values())
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for Queries<'py> {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let q: Array<'py, f32, IxDyn> =
            array(ob, NUMBERS, "queries must be an array of real numbers")?;
        if !(1..=2).contains(&q.shape().len()) {
            return Err(PyValueError::new_err(format!(
                "queries must be 1-D or 2-D, got shape {:?}",
                q.shape()
            )));
        }
        Ok(Queries(q))
    }
}

/// Ids: a 1-D array-like of integers, as uint64 (borrowed when it already is a contiguous
/// uint64 array).
pub(crate) struct Ids<'py>(Cow<'py, [u64]>, Option<numpy::PyReadonlyArray1<'py, u64>>);

impl Ids<'_> {
    pub(crate) fn values(&self) -> &[Id] {
        let raw = match &self.1 {
            Some(a) => a.as_slice().expect("contiguous"),
            None => &self.0,
        };
        bytemuck::cast_slice(raw)
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for Ids<'py> {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(a) = ob.cast::<PyArray1<u64>>() {
            if a.is_contiguous() {
                return Ok(Ids(Cow::Borrowed(&[]), Some(a.readonly())));
            }
        }
        if ob.is_instance_of::<pyo3::types::PyInt>() {
            return Err(PyValueError::new_err(
                "ids must be a 1-D sequence of integers, got a scalar",
            ));
        }
        let np = ob.py().import("numpy")?;
        let arr = np
            .call_method1("asarray", (ob,))
            .map_err(|e| invalid("ids must be a 1-D sequence of integers", e))?;
        let arr = arr.cast::<PyUntypedArray>()?;
        if arr.ndim() != 1 {
            return Err(PyValueError::new_err(format!(
                "ids must be 1-D, got shape {:?}",
                arr.shape()
            )));
        }
        if arr.len() == 0 {
            return Ok(Ids(Cow::Owned(Vec::new()), None));
        }
        let kind = arr.dtype().kind();
        if kind != b'i' && kind != b'u' {
            return Err(PyValueError::new_err(format!(
                "ids must be integers, got dtype {}",
                arr.dtype()
            )));
        }
        let wide: Vec<i128> = arr
            .call_method0("tolist")?
            .extract()
            .map_err(|e| invalid("ids must be integers", e))?;
        if let Some(&low) = wide.iter().min().filter(|&&m| m < 0) {
            return Err(PyKeyError::new_err(low));
        }
        Ok(Ids(
            Cow::Owned(wide.into_iter().map(|x| x as u64).collect()),
            None,
        ))
    }
}

/// Payloads: a sequence of bytes or str (stored as UTF-8), borrowed without copying. The
/// views point into objects owned by a private list (or an immutable tuple), so they stay
/// valid while the GIL is released and another thread changes the caller's list.
pub(crate) struct Payloads<'py> {
    _owner: Bound<'py, PyAny>,
    views: Vec<&'py [u8]>,
}

impl<'py> Payloads<'py> {
    pub(crate) fn views(&self) -> &[&'py [u8]] {
        &self.views
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for Payloads<'py> {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let py = ob.py();
        if ob.is_instance_of::<PyBytes>()
            || ob.is_instance_of::<PyString>()
            || ob.is_instance_of::<PyByteArray>()
        {
            return Err(PyValueError::new_err(
                "payloads must be a sequence of bytes or str, not a single value",
            ));
        }
        // A private snapshot: a copy of a list, the tuple itself, or any other sequence listed.
        // SAFETY: the FFI calls get valid object pointers and return new references (or null
        // with an exception set, which from_owned_ptr_or_err turns into an error).
        let owner: Bound<'py, PyAny> = unsafe {
            if ob.is_instance_of::<PyList>() {
                Bound::from_owned_ptr_or_err(
                    py,
                    pyo3::ffi::PyList_GetSlice(ob.as_ptr(), 0, isize::MAX),
                )?
            } else if ob.is_instance_of::<PyTuple>() {
                ob.to_owned()
            } else {
                Bound::from_owned_ptr_or_err(py, pyo3::ffi::PySequence_List(ob.as_ptr()))
                    .map_err(|e| invalid("payloads must be a sequence of bytes or str", e))?
            }
        };
        let items: Vec<Bound<'py, PyAny>> = if let Ok(list) = owner.cast::<PyList>() {
            list.iter().collect()
        } else {
            owner.cast::<PyTuple>()?.iter().collect()
        };
        let mut views = Vec::with_capacity(items.len());
        for item in &items {
            let mut ptr: *mut std::ffi::c_char = std::ptr::null_mut();
            let mut len: pyo3::ffi::Py_ssize_t = 0;
            // SAFETY: `item` is alive (owned by `owner`); on success the buffer belongs to the
            // immutable bytes or str object, which `owner` keeps alive as long as `self`.
            let view = unsafe {
                if pyo3::ffi::PyBytes_AsStringAndSize(item.as_ptr(), &mut ptr, &mut len) == 0 {
                    Some(std::slice::from_raw_parts(ptr as *const u8, len as usize))
                } else {
                    pyo3::ffi::PyErr_Clear();
                    let p = pyo3::ffi::PyUnicode_AsUTF8AndSize(item.as_ptr(), &mut len);
                    if p.is_null() {
                        pyo3::ffi::PyErr_Clear();
                        None
                    } else {
                        Some(std::slice::from_raw_parts(p as *const u8, len as usize))
                    }
                }
            };
            match view {
                Some(v) => views.push(v),
                None => {
                    return Err(PyValueError::new_err(format!(
                        "payloads must be bytes or str, got {}",
                        item.get_type().name()?
                    )))
                }
            }
        }
        Ok(Payloads {
            _owner: owner,
            views,
        })
    }
}
