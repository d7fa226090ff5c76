//! The test binary's one tracing subscriber. Several modules want the operator's logs: on the
//! test's output (`RUST_LOG`, shown when a test fails) and, for the tests that check what the
//! logs must never contain, in a buffer at debug level. A process has one global subscriber,
//! so both go through here, whichever test asks first.

use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Clone, Default)]
pub struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().map(|v| v.clone()).unwrap_or_default()).into_owned()
    }
}

/// Install the subscriber (once) and return the buffer of every log line of this process,
/// at debug level for the operator and kube.
pub fn init() -> &'static Buffer {
    static LOGS: OnceLock<Buffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Buffer::default();
        let writer = buf.clone();
        let captured = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .with_filter(tracing_subscriber::EnvFilter::new(
                "info,changeorder_operator=debug,changeorder_cloud=debug,kube=debug",
            ));
        let shown = tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_filter(tracing_subscriber::EnvFilter::from_default_env());
        let _ = tracing_subscriber::registry()
            .with(captured)
            .with(shown)
            .try_init();
        buf
    })
}
