//! A moto S3 server for the directory-stream and S3 checkpoint tests.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::common::{Proc, free_port, wait_until};

/// A moto S3 server on a free port, stopped when dropped.
pub struct S3Server {
    proc: Proc,
    port: u16,
}

impl S3Server {
    pub fn start(authenticate: bool) -> S3Server {
        let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/moto/bin/moto_server");
        assert!(
            server.exists(),
            "no S3 server at {}: run scripts/s3-server.sh install (scripts/test.sh does)",
            server.display()
        );
        let port = free_port();
        let mut cmd = std::process::Command::new(server);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        if authenticate {
            // Every request is checked against moto's IAM, where no key exists.
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
        }
        let proc = Proc::spawn(cmd);
        assert!(
            wait_until(Duration::from_secs(30), || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "moto did not start: {}",
            proc.err()
        );
        S3Server { proc, port }
    }

    pub fn env(&self, cmd: &mut std::process::Command) {
        for (k, v) in self.vars() {
            cmd.env(k, v);
        }
    }

    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "sluice-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "sluice-test-secret".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// A bucket, by a plain path-style `PUT /bucket` (moto accepts it unsigned).
    pub fn create_bucket(&self, bucket: &str) {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }

    /// The object store client of the tests, as the job's (same variables).
    pub fn store(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        let mut b = object_store::aws::AmazonS3Builder::new().with_bucket_name(bucket);
        for (k, v) in self.vars() {
            b = b.with_config(k.to_lowercase().parse().unwrap(), v);
        }
        b.build().unwrap()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.proc.send("-KILL");
    }
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}
