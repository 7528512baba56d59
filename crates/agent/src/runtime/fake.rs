//! A recording, in-memory [`ContainerRuntime`] for unit tests of the code above the runtime.
//!
//! Containers move through created → running → stopped like real ones. A signal stops a
//! running container (exit code 128 + signal) unless the test told it to ignore that
//! signal; [`FakeRuntime::exit`] ends one as if its process returned.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use super::{
    ContainerRuntime, ContainerState, CreateRequest, ExecProcess, ExecRequest, ExitInfo, ExitReason, Result,
    RuntimeError, Status, validate_id,
};

/// One call the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Create(String),
    Start(String),
    State(String),
    Kill(String, i32),
    Delete(String),
    Exec(String, Vec<String>),
    Attach(String),
    List,
}

/// A scripted exec result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecScript {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub code: i32,
}

#[derive(Debug)]
struct FakeContainer {
    state: ContainerState,
    ignored_signals: BTreeSet<i32>,
}

#[derive(Debug, Default)]
struct Inner {
    calls: Vec<Call>,
    containers: BTreeMap<String, FakeContainer>,
    exec_scripts: VecDeque<ExecScript>,
    failures: BTreeMap<&'static str, String>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct FakeRuntime {
    inner: Mutex<Inner>,
}

impl FakeRuntime {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The calls so far, without the `State` and `List` reads.
    pub fn actions(&self) -> Vec<Call> {
        self.calls().into_iter().filter(|c| !matches!(c, Call::State(_) | Call::List)).collect()
    }

    /// Makes the container ignore `signal` (a process that traps SIGTERM).
    pub fn ignore_signal(&self, id: &str, signal: i32) {
        if let Some(c) = self.lock().containers.get_mut(id) {
            c.ignored_signals.insert(signal);
        }
    }

    /// Ends a running container as if its process exited with `code`.
    pub fn exit(&self, id: &str, code: i32, oom_killed: bool) {
        if let Some(c) = self.lock().containers.get_mut(id) {
            stop_with(&mut c.state, code, None, ExitReason::classify(code, oom_killed));
        }
    }

    /// The next `exec` produces this output and exit code (default: nothing, 0).
    pub fn push_exec(&self, script: ExecScript) {
        self.lock().exec_scripts.push_back(script);
    }

    /// The next call of `op` ("create", "start", "kill", "delete", "exec", "attach") fails with `message`.
    pub fn fail_next(&self, op: &'static str, message: &str) {
        self.lock().failures.insert(op, message.to_string());
    }

    fn take_failure(inner: &mut Inner, op: &'static str, id: &str) -> Result<()> {
        match inner.failures.remove(op) {
            Some(message) => Err(RuntimeError::Runc { op, id: id.to_string(), message }),
            None => Ok(()),
        }
    }
}

fn stop_with(state: &mut ContainerState, code: i32, signal: Option<i32>, reason: ExitReason) {
    state.status = Status::Stopped;
    state.pid = None;
    state.exit = Some(ExitInfo { code, signal, reason, finished_at: Some(SystemTime::now()) });
}

#[async_trait::async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn create(&self, request: CreateRequest) -> Result<ContainerState> {
        validate_id(&request.id)?;
        let mut inner = self.lock();
        inner.calls.push(Call::Create(request.id.clone()));
        Self::take_failure(&mut inner, "create", &request.id)?;
        if inner.containers.contains_key(&request.id) {
            return Err(RuntimeError::AlreadyExists(request.id));
        }
        let pid = 1000 + inner.containers.len() as u32;
        let state = ContainerState {
            id: request.id.clone(),
            status: Status::Created,
            pid: Some(pid),
            log_path: request.log_path,
            created_at: Some(SystemTime::now()),
            started_at: None,
            exit: None,
        };
        inner.containers.insert(request.id, FakeContainer { state: state.clone(), ignored_signals: BTreeSet::new() });
        Ok(state)
    }

    async fn start(&self, id: &str) -> Result<()> {
        let mut inner = self.lock();
        inner.calls.push(Call::Start(id.to_string()));
        Self::take_failure(&mut inner, "start", id)?;
        let c = inner.containers.get_mut(id).ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        if c.state.status != Status::Created {
            return Err(RuntimeError::Start { id: id.into(), message: "container is not in created state".into() });
        }
        c.state.status = Status::Running;
        c.state.started_at = Some(SystemTime::now());
        Ok(())
    }

    async fn state(&self, id: &str) -> Result<ContainerState> {
        let mut inner = self.lock();
        inner.calls.push(Call::State(id.to_string()));
        inner.containers.get(id).map(|c| c.state.clone()).ok_or_else(|| RuntimeError::NotFound(id.into()))
    }

    async fn kill(&self, id: &str, signal: i32) -> Result<()> {
        let mut inner = self.lock();
        inner.calls.push(Call::Kill(id.to_string(), signal));
        Self::take_failure(&mut inner, "kill", id)?;
        let c = inner.containers.get_mut(id).ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        let alive = matches!(c.state.status, Status::Created | Status::Running);
        if alive && !c.ignored_signals.contains(&signal) {
            stop_with(&mut c.state, 128 + signal, Some(signal), ExitReason::Error);
        }
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let mut inner = self.lock();
        inner.calls.push(Call::Delete(id.to_string()));
        Self::take_failure(&mut inner, "delete", id)?;
        inner.containers.remove(id).map(|_| ()).ok_or_else(|| RuntimeError::NotFound(id.into()))
    }

    async fn exec(&self, id: &str, request: ExecRequest) -> Result<ExecProcess> {
        let mut inner = self.lock();
        inner.calls.push(Call::Exec(id.to_string(), request.command.clone()));
        Self::take_failure(&mut inner, "exec", id)?;
        let c = inner.containers.get(id).ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        if c.state.status != Status::Running {
            return Err(RuntimeError::Runc { op: "exec", id: id.into(), message: "container is not running".into() });
        }
        let script = inner.exec_scripts.pop_front().unwrap_or_default();
        let code = script.code;
        Ok(ExecProcess {
            stdin: request.stdin.then(|| Box::pin(tokio::io::sink()) as super::BoxWrite),
            stdout: Some(Box::pin(std::io::Cursor::new(script.stdout))),
            stderr: (!request.tty).then(|| Box::pin(std::io::Cursor::new(script.stderr)) as super::BoxRead),
            terminal: None,
            exit: Box::pin(async move { Ok(code) }),
        })
    }

    async fn attach(&self, id: &str, request: super::AttachRequest) -> Result<super::AttachStreams> {
        let mut inner = self.lock();
        inner.calls.push(Call::Attach(id.to_string()));
        Self::take_failure(&mut inner, "attach", id)?;
        let c = inner.containers.get(id).ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        if c.state.status != Status::Running {
            return Err(RuntimeError::Runc { op: "attach", id: id.into(), message: "container is not running".into() });
        }
        let empty = || Box::pin(std::io::Cursor::new(Vec::new())) as super::BoxRead;
        Ok(super::AttachStreams {
            stdin: request.stdin.then(|| Box::pin(tokio::io::sink()) as super::BoxWrite),
            stdout: request.stdout.then(empty),
            stderr: request.stderr.then(empty),
            terminal: None,
        })
    }

    async fn list(&self) -> Result<Vec<ContainerState>> {
        let mut inner = self.lock();
        inner.calls.push(Call::List);
        Ok(inner.containers.values().map(|c| c.state.clone()).collect())
    }
}
