//! One writer at a time: a second locker is told it waits, then proceeds
//! once the first releases.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use n2d_cache::{Cache, WorkspaceLock};

#[test]
fn a_second_locker_waits_then_proceeds_once_released() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lock");
    let first = WorkspaceLock::acquire(&path, |_| panic!("the lock is free")).unwrap();
    let released = Arc::new(AtomicBool::new(false));
    let (waiting, told) = mpsc::channel();
    let second = {
        let path = path.clone();
        let released = released.clone();
        std::thread::spawn(move || {
            let lock = WorkspaceLock::acquire(&path, |waited_on| {
                waiting.send(waited_on.to_owned()).unwrap()
            })
            .unwrap();
            assert!(
                released.load(Ordering::SeqCst),
                "took the lock while it was held"
            );
            lock
        })
    };
    assert_eq!(
        told.recv().unwrap(),
        path,
        "the callback names the lock file"
    );
    released.store(true, Ordering::SeqCst);
    drop(first);
    let second = second.join().unwrap();
    assert!(WorkspaceLock::try_acquire(&path).unwrap().is_none());
    drop(second);
    assert!(WorkspaceLock::try_acquire(&path).unwrap().is_some());
}

#[test]
fn an_open_cache_holds_the_lock_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let cache = super::open(dir.path());
    assert!(WorkspaceLock::try_acquire(&dir.path().join("lock"))
        .unwrap()
        .is_none());
    drop(cache);
    let (waiting, told) = mpsc::channel::<()>();
    let reopened = Cache::open(dir.path(), |_| waiting.send(()).unwrap());
    assert!(reopened.is_ok());
    assert!(told.try_recv().is_err(), "no wait after release");
}
