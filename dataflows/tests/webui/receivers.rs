//! A receiver's latest error in the receivers section and route (Spark's `ReceiverInfo`): a
//! socket job whose server is not there yet says why it has no input.

use std::time::Duration;

use crate::common::{Proc, free_port, sluice, wait_until};
use crate::support::{chromium, get};

#[test]
fn a_receiver_that_cannot_connect_shows_why() {
    let port = free_port().to_string();
    let mut cmd = sluice();
    cmd.args([
        "run",
        "network-wordcount",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
    ])
    .args(["--batch", "200ms", "--ui", "127.0.0.1:0"]);
    let job = Proc::spawn(cmd);
    let addr = job
        .ui_addr()
        .unwrap_or_else(|| panic!("no web UI address: {}", job.err()));
    let route = "/api/v1/applications/network-wordcount/streaming/receivers";
    let mut last = String::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            last = get(&addr, route).map(|(_, b)| b).unwrap_or_default();
            last.contains(&format!("cannot connect to 127.0.0.1:{port}"))
        }),
        "{last}"
    );
    assert!(last.contains("\"lastErrorTime\":\"20"), "{last}");
    let dom = chromium(&format!("http://{addr}/"), &["--dump-dom"]);
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        html.contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "the receivers section: {html}"
    );
}
