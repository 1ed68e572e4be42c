//! `--jobs` bounds every thread n2d works on (`limit_threads`), in a test
//! binary of its own: rayon's global pool is made once per process.
use rayon::prelude::*;

#[test]
fn one_job_runs_all_parallel_work_on_one_thread() {
    n2d_pipeline::limit_threads(1);
    assert_eq!(rayon::current_num_threads(), 1);
    let threads: std::collections::BTreeSet<String> = (0..10_000)
        .into_par_iter()
        .map(|_| format!("{:?}", std::thread::current().id()))
        .collect();
    assert_eq!(threads.len(), 1, "{threads:?}");
    // A later call changes nothing.
    n2d_pipeline::limit_threads(4);
    assert_eq!(rayon::current_num_threads(), 1);
}
