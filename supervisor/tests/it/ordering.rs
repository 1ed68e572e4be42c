//! Start order: a dependant starts only once its dependencies meet the
//! condition it asks for (started, healthy, completed), as the services
//! themselves record it.

use std::net::TcpListener;

use n2d_supervisor::spec::{Condition, HttpProbe, Readiness, TcpProbe};

use crate::{depends, exec_probe, stamps, Target};

#[test]
fn healthy_dependant_starts_only_after_the_exec_probe_passes() {
    let mut target = Target::new();
    // `a` becomes ready only after a while; its probe checks for the file.
    // The stamp is written aside and renamed into place: `> a.ready`
    // would create the file (and pass the probe) before `date` read the
    // clock, and `b` could start in between.
    target
        .service(
            "a",
            "sleep 0.4; date +%s%N > a.stamp; mv a.stamp a.ready; exec sleep 1000",
        )
        .readiness = exec_probe(&["test", "-f", "a.ready"]);
    let b = target.service(
        "b",
        "date +%s%N > b.started; if [ -f a.ready ]; then echo yes; else echo no; fi > b.saw; exit 0",
    );
    depends(b, "a", Condition::Healthy);
    let mut running = target.start();
    crate::wait_until("b ran", || target.read("b.saw").ends_with('\n'));
    running.signal(libc::SIGTERM);
    assert!(running.wait(std::time::Duration::from_secs(20)).success());
    assert_eq!(target.read("b.saw"), "yes\n");
    let ready = stamps(&target.read("a.ready"))[0];
    let started = stamps(&target.read("b.started"))[0];
    assert!(
        started > ready,
        "b started at {started}, before a was ready at {ready}"
    );
}

#[test]
fn completed_dependant_starts_after_the_job_exited_zero() {
    let mut target = Target::new();
    target.service("migrate", "sleep 0.2; echo done > migrated; exit 0");
    let web = target.service("web", "cat migrated > web.saw; exit 0");
    depends(web, "migrate", Condition::Completed);
    let (status, _, stderr) = target.run();
    assert!(status.success(), "{stderr}");
    assert_eq!(target.read("web.saw"), "done\n");
}

#[test]
fn started_dependant_does_not_wait_for_readiness() {
    let mut target = Target::new();
    // The probe never passes within the test; `started` must not care.
    target.service("slow", "exec sleep 1000").readiness = exec_probe(&["false"]);
    let fast = target.service("fast", "echo ran > fast.saw; exit 0");
    depends(fast, "slow", Condition::Started);
    let mut running = target.start();
    crate::wait_until("fast ran", || target.read("fast.saw") == "ran\n");
    running.signal(libc::SIGTERM);
    assert!(running.wait(std::time::Duration::from_secs(20)).success());
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

#[test]
fn http_and_tcp_probes_gate_their_dependants() {
    let mut target = Target::new();
    let (http_port, tcp_port) = (free_port(), free_port());
    target
        .service(
            "api",
            &format!("sleep 0.3; exec python3 -m http.server --bind 127.0.0.1 {http_port}"),
        )
        .readiness = Some(Readiness {
        exec: None,
        http: Some(HttpProbe {
            port: http_port,
            path: "/".into(),
        }),
        tcp: None,
        period_ms: 100,
        timeout_ms: 1000,
        retries: 100,
    });
    target
        .service(
            "db",
            &format!("sleep 0.3; exec python3 -m http.server --bind 127.0.0.1 {tcp_port}"),
        )
        .readiness = Some(Readiness {
        exec: None,
        http: None,
        tcp: Some(TcpProbe { port: tcp_port }),
        period_ms: 100,
        timeout_ms: 1000,
        retries: 100,
    });
    // The client checks that both servers answer the moment it starts.
    let client = target.service(
        "client",
        &format!(
            "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {http_port})); \
             socket.create_connection((\"127.0.0.1\", {tcp_port}))' && echo up > client.saw; exit 0"
        ),
    );
    depends(client, "api", Condition::Healthy);
    depends(client, "db", Condition::Healthy);
    let mut running = target.start();
    crate::wait_until("client ran", || target.read("client.saw") == "up\n");
    running.signal(libc::SIGTERM);
    assert!(running.wait(std::time::Duration::from_secs(20)).success());
}
