//! Software prefetch hints for batch loops that know their next random accesses in advance.

/// Asks the CPU to start loading the cache line holding `p`; a no-op where unsupported.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, even on an invalid address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetches every cache line of `value`.
#[inline(always)]
pub(crate) fn prefetch_range<T>(value: &T) {
    let start = value as *const T as *const u8;
    for offset in (0..std::mem::size_of::<T>()).step_by(64) {
        prefetch(start.wrapping_add(offset));
    }
}
