//! Phase timings on standard error, for performance work: `N2D_TRACE=1 n2d
//! build …` prints, as each phase of a build ends, the time since the
//! process started tracing, its CPU time (all threads) and its page faults
//! (`trace: <phase> <wall> ms cpu <cpu> ms faults <n>`). Off, a phase costs
//! one relaxed atomic load.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

static ON: AtomicBool = AtomicBool::new(false);
static START: OnceLock<Instant> = OnceLock::new();

/// Turns tracing on (the CLI does when `N2D_TRACE` is set).
pub fn enable_trace() {
    START.get_or_init(Instant::now);
    ON.store(true, Ordering::Relaxed);
}

/// Marks the end of a phase.
pub(crate) fn phase(name: &str) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    let wall = START.get_or_init(Instant::now).elapsed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    eprintln!(
        "trace: {name} {:.2} ms cpu {:.2} ms faults {}",
        wall.as_secs_f64() * 1e3,
        ms(usage.ru_utime) + ms(usage.ru_stime),
        usage.ru_minflt + usage.ru_majflt
    );
}
