//! Runs element-wise loops compiled for AVX-512 when the CPU has it, and for the baseline
//! target otherwise: the same source, vectorised 16 lanes wide where possible.

/// Whether the CPU runs the AVX-512 versions (detected once).
#[inline]
pub fn avx512() -> bool {
    static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DETECTED.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512dq")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Defines a function whose body is compiled twice: for AVX-512 (used when [`avx512`] says
/// so) and for the baseline target.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                unsafe fn fast($($arg: $ty),*) $body
                if $crate::native::simd::avx512() {
                    // SAFETY: the CPU features were detected just above.
                    return unsafe { fast($($arg),*) };
                }
            }
            $body
        }
    };
}
