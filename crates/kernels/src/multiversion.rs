//! One source, compiled for each code path.

/// Defines a function whose body is compiled three times: for AVX-512, for AVX2 + FMA and for
/// the baseline target. Each call runs the highest version that [`crate::cpu::level`] allows.
/// The body must be safe code: the only `unsafe` is the call into the feature-enabled copies,
/// made after the level (bounded by what the CPU has) was checked.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                fn avx512($($arg: $ty),*) $body
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $body
                match $crate::cpu::level() {
                    // SAFETY: `level()` never exceeds what the CPU was detected to support.
                    $crate::cpu::Level::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::cpu::Level::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::cpu::Level::Generic => {}
                }
            }
            $body
        }
    };
}
