//! A real Postgres server for tests: Debian's binaries (`/usr/lib/postgresql/*/bin`, or
//! `LATHE_PG_BIN`), a fresh cluster in a temporary folder, listening on a free loopback port,
//! optionally with TLS from a certificate made here by openssl. Run as the `postgres` user when
//! the tests run as root (initdb refuses root). Stopped on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster; `url` reaches its `postgres` database as the superuser `lathe`.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub url: String,
    bin: PathBuf,
}

fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LATHE_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Postgres binaries in /usr/lib/postgresql (apt-get install postgresql, or set LATHE_PG_BIN)")
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop().expect("no /usr/lib/postgresql/*/bin/initdb (apt-get install postgresql)")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Runs a Postgres program, as `postgres` when we are root; panics with its output on failure.
fn run(program: &Path, args: &[&str]) {
    let mut c = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let out = c.args(args).output().unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}\n{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Makes `ca.pem` (a CA) and `server.crt`/`server.key` for `localhost` and 127.0.0.1 signed by it.
pub fn make_certificates(dir: &Path, name: &str) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ca_subject = format!("/CN={name} CA");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &ca_subject,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
}

impl Cluster {
    /// initdb, then start; with `tls`, `ssl = on` with a certificate signed by `dir/ca.pem`.
    pub fn start(tls: bool) -> Cluster {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        if is_root() {
            let out = Command::new("chown").args(["-R", "postgres:"]).arg(dir.path()).output().unwrap();
            assert!(out.status.success(), "chown: {}", String::from_utf8_lossy(&out.stderr));
        }
        let data_arg = data.to_str().unwrap();
        run(&bin.join("initdb"), &["-D", data_arg, "-U", "lathe", "-A", "trust", "--no-sync", "-E", "UTF8"]);
        let mut conf = String::from("fsync = off\nsynchronous_commit = off\nlisten_addresses = '127.0.0.1'\n");
        if tls {
            make_certificates(dir.path(), "postgres");
            for f in ["server.crt", "server.key"] {
                std::fs::copy(dir.path().join(f), data.join(f)).unwrap();
            }
            if is_root() {
                let out =
                    Command::new("chown").args(["postgres:", "server.crt", "server.key"]).current_dir(&data).output();
                assert!(out.unwrap().status.success());
            }
            std::fs::set_permissions(data.join("server.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        }
        let mut existing = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        existing.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), existing).unwrap();
        let port = free_port();
        let options = format!("-p {port} -k {}", dir.path().display());
        let log = dir.path().join("postgres.log");
        run(&bin.join("pg_ctl"), &["-D", data_arg, "-o", &options, "-l", log.to_str().unwrap(), "-w", "start"]);
        let url = format!("postgres://lathe@127.0.0.1:{port}/postgres");
        Cluster { dir, port, url, bin }
    }

    /// A plain client of the cluster, for checks the store does not offer.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(
            &format!("host=127.0.0.1 port={} user=lathe dbname=postgres", self.port),
            postgres::NoTls,
        )
        .unwrap()
    }

    /// A fresh database `name`, and its URL.
    pub fn database(&self, name: &str) -> String {
        self.client().batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        format!("postgres://lathe@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = c.args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"]).output();
    }
}
