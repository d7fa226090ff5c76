//! The demo's live view (examples/order-rows.sh, between `kubectl get --watch` and the terminal)
//! must show each row as it arrives. On Debian `awk` is mawk, which reads a pipe in blocks: the
//! view stayed empty until kubectl exited. The filter runs here with mawk as `awk` on PATH and a
//! pipe that stays open, and must print rows before its input ends.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::chart_support::{root, which};

#[test]
fn the_live_view_shows_rows_while_the_pipe_is_open_under_mawk() {
    let Some(mawk) = which("mawk") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "mawk not found: .ci/run installs it (Debian's default awk)"
        );
        eprintln!("SKIPPED: mawk not found (apt-get install mawk)");
        return;
    };
    // Whatever `awk` the filter may call is mawk.
    let bin = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(&mawk, bin.path().join("awk")).expect("awk link");
    let path = std::env::join_paths(
        std::iter::once(bin.path().to_path_buf()).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )),
    )
    .expect("PATH");
    let mut child = Command::new(root().join("examples/order-rows.sh"))
        .env("PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run examples/order-rows.sh");
    let mut input = child.stdin.take().expect("stdin");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{what}: not shown within 10 s while the pipe is open"))
    };

    // Fed slowly, as kubectl does; the pipe stays open between rows.
    let mut feed = |line: &str| {
        writeln!(input, "{line}").expect("write");
        input.flush().expect("flush");
    };
    feed("NAME   PROVIDER   ORDER ID   PHASE     BATCH    BATCHES   REASON   TYPE");
    assert!(next("the header").starts_with("NAME"));
    // Created without a status: not shown; then its first phase, once.
    feed("o-1    sae        id-1       <none>    <none>   <none>    <none>   Deploy");
    feed("o-1    sae        id-1       Running   1        2         Running  Deploy");
    assert!(next("the first row with a phase").contains("Running"));
    feed("o-1    sae        id-1       Running   1        2         Running  Deploy");
    feed("o-1    sae        id-1       Succeeded 2        2         Done     Scale Out");
    let row = next("the order's next state");
    assert!(row.contains("Succeeded") && row.ends_with("Scale Out"), "{row}");
    drop(input);
    assert!(child.wait().expect("wait").success());
    // The repeated Running row was left out.
    assert!(rx.recv_timeout(Duration::from_secs(5)).is_err());
}
