//! `s3-seed controller` on the test control plane: the real binary, run on
//! this machine with the admin kubeconfig, confined to one test's namespace
//! (`--watch-namespace`), polling an in-process S3 server of that test.
//! Every test gets its own process, so restarting one, or counting its
//! polls, never disturbs another test.
//!
//! [`Controller::metric`] reads the process's own `/metrics`; the address
//! comes from its first log line, since it binds port 0. Its log is kept
//! for failure messages.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{cluster, wait_for};

/// A running `s3-seed controller`; stopped (SIGTERM, then kill) when dropped.
pub struct Controller {
    namespace: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    metrics: String,
}

impl Controller {
    /// Start one for `namespace` with `args` besides the defaults below
    /// (a 2 s poll interval, no minimum between rollouts), and `env`.
    pub fn start(namespace: &str, args: &[&str], env: &[(&str, String)]) -> Controller {
        let mut c = Controller {
            namespace: namespace.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            child: None,
            log: Arc::default(),
            metrics: String::new(),
        };
        c.spawn();
        c
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3-seed"));
        cmd.arg("controller")
            .args(["--watch-namespace", &self.namespace])
            .args(["--poll-interval-secs", "2"])
            .args(["--min-rollout-interval-secs", "0"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(&self.args)
            .env("KUBECONFIG", cluster().kubeconfig())
            .env("RUST_LOG", "info")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_ENDPOINT_URL")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run s3-seed controller");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::clone(&self.log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        self.child = Some(child);
        let start = self.log().len();
        self.metrics = wait_for(
            "the controller's metrics address",
            Duration::from_secs(30),
            || {
                let log = self.log();
                let line = log[start.min(log.len())..]
                    .lines()
                    .find(|l| l.contains("serving /metrics"))
                    .ok_or_else(|| log.clone())?
                    .to_owned();
                let addr = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
                    .ok_or_else(|| line.clone())?;
                Ok(addr.trim_matches('"').to_owned())
            },
        );
    }

    /// Everything the process (and the ones before a restart) logged.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stop with SIGTERM (as the kubelet does) and wait for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            for _ in 0..100 {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop, then start again with the same flags: a new process that
    /// remembers nothing.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The sum of every sample of metric `name` (all label sets) in
    /// `/metrics`, or 0 when it has none yet.
    pub fn metric(&self, name: &str) -> f64 {
        self.metric_where(name, "")
    }

    /// Like [`Self::metric`], counting only samples whose labels contain `labels`.
    pub fn metric_where(&self, name: &str, labels: &str) -> f64 {
        let text = self.scrape();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.split(['{', ' ']).next() == Some(name))
            .filter(|l| l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn scrape(&self) -> String {
        let mut stream = TcpStream::connect(&self.metrics)
            .unwrap_or_else(|e| panic!("connect to {}: {e}\n{}", self.metrics, self.log()));
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: metrics\r\n\r\n")
            .expect("send the metrics request");
        let mut out = String::new();
        stream
            .read_to_string(&mut out)
            .expect("read the metrics answer");
        out
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop();
    }
}
