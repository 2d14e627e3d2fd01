//! Which instruction sets the kernels may use: what the CPU has, capped by `LATHE_CPU` or by
//! [`set_cap`].
//!
//! The cap decides which code path runs; it never enables an instruction the CPU lacks.
//! `LATHE_CPU=generic` forces the portable path everywhere (tests run it on every machine),
//! `avx2` stops at AVX2 + FMA, `avx512` (the default) allows everything detected.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// A code path, from the portable one up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Portable Rust, vectorised only as far as the compilation target allows.
    Generic = 0,
    /// AVX2, FMA and F16C (x86-64).
    Avx2 = 1,
    /// AVX-512 F/BW/DQ/VL with FMA (x86-64); bfloat16 products also need AVX-512 BF16.
    Avx512 = 2,
}

impl Level {
    /// Every level, portable first.
    pub const ALL: [Level; 3] = [Level::Generic, Level::Avx2, Level::Avx512];

    /// The name `LATHE_CPU` uses.
    pub fn name(self) -> &'static str {
        match self {
            Level::Generic => "generic",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    fn from_u8(v: u8) -> Level {
        match v {
            0 => Level::Generic,
            1 => Level::Avx2,
            _ => Level::Avx512,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `LATHE_CPU` value that names no level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("LATHE_CPU={0:?}: expected generic, avx2 or avx512")]
pub struct UnknownLevel(pub String);

impl std::str::FromStr for Level {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Level, UnknownLevel> {
        match s.trim().to_ascii_lowercase().as_str() {
            "generic" | "portable" => Ok(Level::Generic),
            "avx2" => Ok(Level::Avx2),
            "avx512" => Ok(Level::Avx512),
            _ => Err(UnknownLevel(s.to_string())),
        }
    }
}

/// What the CPU supports, detected once.
#[derive(Debug, Clone, Copy)]
struct Detected {
    level: Level,
    bf16: bool,
}

fn detected() -> Detected {
    static DETECTED: OnceLock<Detected> = OnceLock::new();
    *DETECTED.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Detected {
    let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c");
    let avx512 = avx2
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512vl");
    let level = match (avx512, avx2) {
        (true, _) => Level::Avx512,
        (false, true) => Level::Avx2,
        _ => Level::Generic,
    };
    Detected { level, bf16: avx512 && is_x86_feature_detected!("avx512bf16") }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Detected {
    Detected { level: Level::Generic, bf16: false }
}

/// The highest level the CPU supports.
pub fn detected_level() -> Level {
    detected().level
}

/// Whether the CPU has AVX-512 BF16 (`vdpbf16ps`), whatever the cap.
pub fn detected_bf16() -> bool {
    detected().bf16
}

const UNSET: u8 = u8::MAX;
static CAP: AtomicU8 = AtomicU8::new(UNSET);

/// The cap `LATHE_CPU` sets: [`Level::Avx512`] (no cap) when unset or empty.
///
/// # Errors
/// When `LATHE_CPU` names no level; binaries call this at start-up to refuse a mistyped cap.
pub fn env_cap_checked() -> Result<Level, UnknownLevel> {
    match std::env::var("LATHE_CPU") {
        Ok(v) if !v.trim().is_empty() => v.parse(),
        _ => Ok(Level::Avx512),
    }
}

/// The cap from `LATHE_CPU`, read once.
///
/// # Panics
/// When `LATHE_CPU` names no level (binaries check it first with [`env_cap_checked`]): a
/// mistyped cap must not silently run another path.
fn env_cap() -> Level {
    static ENV: OnceLock<Level> = OnceLock::new();
    *ENV.get_or_init(|| env_cap_checked().unwrap_or_else(|e| panic!("{e}")))
}

/// Caps the code path for the whole process (`None` returns to `LATHE_CPU`'s cap). Tests use
/// it to run each path in turn; callers that change it concurrently must serialise.
pub fn set_cap(cap: Option<Level>) {
    CAP.store(cap.map_or(UNSET, |l| l as u8), Ordering::Relaxed);
}

/// The cap in force: [`set_cap`]'s, else `LATHE_CPU`'s.
pub fn cap() -> Level {
    match CAP.load(Ordering::Relaxed) {
        UNSET => env_cap(),
        v => Level::from_u8(v),
    }
}

/// The level the kernels run at now: the lower of the detected level and the cap.
#[inline]
pub fn level() -> Level {
    detected().level.min(cap())
}

/// Whether bfloat16 products run now (AVX-512 BF16 detected and the cap allows AVX-512).
pub fn bf16() -> bool {
    detected().bf16 && cap() >= Level::Avx512
}

/// The levels a test should run: every one the CPU supports up to `LATHE_CPU`'s cap, portable
/// first.
pub fn testable_levels() -> Vec<Level> {
    Level::ALL.into_iter().filter(|&l| l <= detected().level && l <= env_cap()).collect()
}

/// Runs `f` once at each of [`testable_levels`] with the cap set to it, then restores the
/// cap; prints each level run and each level skipped because the CPU or `LATHE_CPU` rules it
/// out, so a test log shows which paths a run covered. Calls are serialised process-wide.
pub fn for_each_level(test: &str, mut f: impl FnMut(Level)) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for level in Level::ALL {
        if !testable_levels().contains(&level) {
            let why = if level > detected_level() { "the CPU lacks it" } else { "LATHE_CPU caps below it" };
            println!("{test}: skipped {level} ({why})");
            continue;
        }
        set_cap(Some(level));
        let restore = RestoreCap;
        f(level);
        drop(restore);
        println!("{test}: ran {level}{}", if level == Level::Avx512 && bf16() { " (+bf16)" } else { "" });
    }
}

/// Puts the cap back even when a test fails.
struct RestoreCap;

impl Drop for RestoreCap {
    fn drop(&mut self) {
        set_cap(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for level in Level::ALL {
            assert_eq!(level.name().parse::<Level>(), Ok(level));
        }
        assert_eq!("AVX2".parse::<Level>(), Ok(Level::Avx2));
        let err = "sse9".parse::<Level>().unwrap_err();
        assert!(err.to_string().contains("expected generic, avx2 or avx512"), "{err}");
    }

    #[test]
    fn the_portable_level_is_always_testable() {
        assert_eq!(testable_levels().first(), Some(&Level::Generic));
        assert!(testable_levels().iter().all(|&l| l <= detected_level()));
    }
}
