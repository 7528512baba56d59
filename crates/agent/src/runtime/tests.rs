//! `stop` and the id rules, against the recording fake.

use std::path::PathBuf;
use std::time::Duration;

use super::fake::{Call, ExecScript, FakeRuntime};
use super::*;

async fn running(fake: &FakeRuntime, id: &str) {
    let spec = oci_spec::runtime::Spec::default();
    fake.create(CreateRequest { id: id.into(), spec, log_path: PathBuf::from("/dev/null") }).await.expect("create");
    fake.start(id).await.expect("start");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn stop_sends_sigterm_and_returns_when_it_exits() {
    let fake = FakeRuntime::default();
    running(&fake, "c1").await;
    let exit = stop(&fake, "c1", Duration::from_secs(30)).await.expect("stop");
    assert_eq!(exit.code, 143);
    assert_eq!(exit.signal, Some(SIGTERM));
    assert_eq!(exit.reason, ExitReason::Error);
    assert_eq!(
        fake.actions(),
        vec![Call::Create("c1".into()), Call::Start("c1".into()), Call::Kill("c1".into(), SIGTERM)]
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn stop_escalates_to_sigkill_after_the_grace_period() {
    let fake = FakeRuntime::default();
    running(&fake, "c1").await;
    fake.ignore_signal("c1", SIGTERM);
    let started = tokio::time::Instant::now();
    let exit = stop(&fake, "c1", Duration::from_secs(5)).await.expect("stop");
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert_eq!(exit.code, 137);
    assert_eq!(fake.actions()[2..], [Call::Kill("c1".into(), SIGTERM), Call::Kill("c1".into(), SIGKILL)]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn stop_of_an_exited_container_reports_its_exit_without_signals() {
    let fake = FakeRuntime::default();
    running(&fake, "c1").await;
    fake.exit("c1", 0, false);
    let exit = stop(&fake, "c1", Duration::from_secs(5)).await.expect("stop");
    assert_eq!((exit.code, exit.reason), (0, ExitReason::Completed));
    fake.create(CreateRequest { id: "c2".into(), spec: Default::default(), log_path: "/dev/null".into() })
        .await
        .expect("create");
    fake.exit("c2", 137, true);
    assert!(!fake.actions().iter().any(|c| matches!(c, Call::Kill(..))));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn stop_of_a_created_container_kills_at_once_and_zero_grace_too() {
    let fake = FakeRuntime::default();
    fake.create(CreateRequest { id: "c1".into(), spec: Default::default(), log_path: "/dev/null".into() })
        .await
        .expect("create");
    let exit = stop(&fake, "c1", Duration::from_secs(30)).await.expect("stop");
    assert_eq!(exit.code, 137);
    running(&fake, "c2").await;
    stop(&fake, "c2", Duration::ZERO).await.expect("stop");
    assert_eq!(fake.actions().iter().filter(|c| matches!(c, Call::Kill(_, SIGTERM))).count(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn stop_of_an_unknown_container_is_not_found() {
    let fake = FakeRuntime::default();
    assert!(matches!(stop(&fake, "nope", Duration::from_secs(1)).await, Err(RuntimeError::NotFound(_))));
}

#[tokio::test(flavor = "current_thread")]
async fn fake_exec_gives_scripted_output() {
    use tokio::io::AsyncReadExt;
    let fake = FakeRuntime::default();
    running(&fake, "c1").await;
    fake.push_exec(ExecScript { stdout: b"hi\n".to_vec(), stderr: Vec::new(), code: 3 });
    let mut p = fake
        .exec("c1", ExecRequest { command: vec!["echo".into(), "hi".into()], ..Default::default() })
        .await
        .expect("exec");
    let mut out = String::new();
    p.stdout.take().expect("stdout").read_to_string(&mut out).await.expect("read");
    assert_eq!(out, "hi\n");
    assert_eq!(p.exit.await.expect("exit"), 3);
}

#[test]
fn ids() {
    for ok in ["a", "abc-DEF_1.2", &"x".repeat(128)] {
        assert!(validate_id(ok).is_ok(), "{ok}");
    }
    for bad in ["", ".", "..", ".hidden", "a/b", "a b", &"x".repeat(129), "ü"] {
        assert!(validate_id(bad).is_err(), "{bad}");
    }
}

#[test]
fn exit_reasons() {
    assert_eq!(ExitReason::classify(0, false), ExitReason::Completed);
    assert_eq!(ExitReason::classify(1, false), ExitReason::Error);
    assert_eq!(ExitReason::classify(137, true), ExitReason::OOMKilled);
    assert_eq!(ExitReason::OOMKilled.as_str(), "OOMKilled");
}
