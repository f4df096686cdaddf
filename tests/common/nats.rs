//! Real `nats-server` processes for the shipping tests: one node, or a three-node JetStream
//! cluster, on free loopback ports, each with its own store directory; stopped (SIGKILL) when
//! dropped. A node can be stopped and started again on the same ports and store.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a cluster may take to elect its JetStream meta leader on a loaded machine.
const READY: Duration = Duration::from_secs(60);

/// The `nats-server` binary, or why there is none.
pub fn server_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("APPLOG_NATS_SERVER") {
        return Ok(PathBuf::from(p));
    }
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join("nats-server");
        if p.is_file() {
            return Ok(p);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("nats-server");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err("nats-server not found (Debian package nats-server, or set APPLOG_NATS_SERVER)".into())
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// One node's fixed configuration: ports and store survive a restart.
#[derive(Debug, Clone)]
struct NodeSpec {
    name: String,
    port: u16,
    http: u16,
    cluster_port: Option<u16>,
    routes: Vec<u16>,
    store: PathBuf,
    /// A configuration file (`-c`), for what the command line cannot say (users).
    config: Option<PathBuf>,
}

#[derive(Debug)]
pub struct Node {
    spec: NodeSpec,
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.spec.port)
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn start(&mut self, bin: &Path) {
        assert!(self.child.is_none(), "{} already running", self.spec.name);
        let s = &self.spec;
        let mut cmd = Command::new(bin);
        if let Some(c) = &s.config {
            cmd.arg("-c").arg(c);
        }
        cmd.args(["-js", "-a", "127.0.0.1", "-n", &s.name])
            .arg("-sd")
            .arg(&s.store)
            .args(["-p", &s.port.to_string(), "-m", &s.http.to_string()]);
        if let Some(cp) = s.cluster_port {
            let routes: Vec<String> = s
                .routes
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect();
            cmd.args([
                "--cluster",
                &format!("nats://127.0.0.1:{cp}"),
                "--cluster_name",
                "applog-test",
                "--routes",
                &routes.join(","),
            ]);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        self.child = Some(cmd.spawn().expect("spawn nats-server"));
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether its JetStream answers healthy (and, in a cluster, knows a meta leader).
    fn ready(&self) -> bool {
        let Some(health) = http_get(self.spec.http, "/healthz?js-enabled-only=true") else {
            return false;
        };
        if !health.contains("\"ok\"") {
            return false;
        }
        if self.spec.cluster_port.is_none() {
            return true;
        }
        http_get(self.spec.http, "/jsz").is_some_and(|b| {
            let b: String = b.chars().filter(|c| !c.is_whitespace()).collect();
            b.find("\"meta_cluster\"")
                .is_some_and(|i| b[i..].contains("\"leader\":\"n"))
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A body of `GET path` from the monitoring port, if the server answered.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_owned())
}

/// Some nats-server nodes (one, or a cluster of three), with their store under a temporary
/// directory.
#[derive(Debug)]
pub struct Nats {
    bin: PathBuf,
    pub nodes: Vec<Node>,
    dir: tempfile::TempDir,
}

impl Nats {
    /// One node with JetStream, or `None` (after `skip`) when there is no nats-server.
    pub fn single() -> Option<Nats> {
        Self::start(1, None)
    }

    /// One node with JetStream and this configuration file text (users, permissions).
    pub fn single_with_config(config: &str) -> Option<Nats> {
        Self::start(1, Some(config))
    }

    /// A three-node JetStream cluster, or `None` (after `skip`) when there is no nats-server.
    pub fn cluster() -> Option<Nats> {
        Self::start(3, None)
    }

    fn start(n: usize, config: Option<&str>) -> Option<Nats> {
        let bin = match server_binary() {
            Ok(b) => b,
            Err(why) => {
                super::skip(why);
                return None;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let config = config.map(|text| {
            let p = dir.path().join("nats.conf");
            std::fs::write(&p, text).unwrap();
            p
        });
        let cluster_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for i in 0..n {
            let store = dir.path().join(format!("n{}", i + 1));
            std::fs::create_dir_all(&store).unwrap();
            let spec = NodeSpec {
                name: format!("n{}", i + 1),
                port: free_port(),
                http: free_port(),
                cluster_port: (n > 1).then(|| cluster_ports[i]),
                routes: if n > 1 {
                    cluster_ports
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .map(|(_, p)| *p)
                        .collect()
                } else {
                    Vec::new()
                },
                store,
                config: config.clone(),
            };
            nodes.push(Node {
                log: dir.path().join(format!("n{}.log", i + 1)),
                spec,
                child: None,
            });
        }
        let mut nats = Nats { bin, nodes, dir };
        for i in 0..n {
            let bin = nats.bin.clone();
            nats.nodes[i].start(&bin);
        }
        nats.wait_ready();
        Some(nats)
    }

    /// Waits until every running node is ready (JetStream up, a meta leader known).
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + READY;
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            while !node.ready() {
                assert!(
                    Instant::now() < deadline,
                    "nats-server {} not ready after {READY:?}; its log:\n{}",
                    node.name(),
                    std::fs::read_to_string(&node.log).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Every node's client URL, comma-separated.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(Node::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Stops node `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again on its ports and store, and waits until it is ready.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].kill();
        let bin = self.bin.clone();
        self.nodes[i].start(&bin);
        self.wait_ready();
    }

    /// The servers' logs, for a failing test's message.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for n in &self.nodes {
            all.push_str(&format!("--- {} ---\n", n.name()));
            let text = std::fs::read_to_string(&n.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            for l in tail.into_iter().rev() {
                all.push_str(l);
                all.push('\n');
            }
        }
        all
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
