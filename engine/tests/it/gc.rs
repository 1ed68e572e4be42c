//! Cache GC never leaves the cache in a state where a build fails or gives
//! other outputs.
use n2d_cache::Cache;

use crate::support::{graph_of, outputs, World};

const GRAPH: &[(&str, &[&str], &str)] = &[
    ("a", &[], "1"),
    ("b", &["a"], "2"),
    ("c", &["a", "b"], "3"),
    ("d", &[], "4"),
];

#[test]
fn a_build_after_gc_succeeds_with_the_same_outputs() {
    for max_bytes in [0, 20, 50] {
        let world = World::new();
        let (report, _) = world.run(graph_of(&world, GRAPH).0);
        let expected = outputs(&report);
        drop(report);
        let cache = Cache::open(&world.cache_dir(), |_| panic!("cache lock held")).unwrap();
        let gc = cache.gc(max_bytes).unwrap();
        assert!(gc.kept_bytes <= max_bytes);
        assert!(gc.removed_blobs > 0);
        drop(cache);

        let (report, _) = world.run(graph_of(&world, GRAPH).0);
        assert!(report.ok());
        assert_eq!(outputs(&report), expected, "max size {max_bytes}");
    }
}
