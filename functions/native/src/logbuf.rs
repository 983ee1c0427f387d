//! Log lines to stderr through a buffer (the local server): lines gather in memory and go out in
//! one write when 64 KiB have gathered, or every 50 ms from a flusher thread, and on `flush`
//! (shutdown). A request costs no syscall for its line. A crash loses at most the last 50 ms of
//! lines; a graceful stop loses none.

use gw_ports::LogSink;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Written out when this much has gathered.
const FLUSH_BYTES: usize = 64 * 1024;
/// And at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

struct Inner {
    buf: Mutex<Vec<u8>>,
    /// Held while writing, so batches leave in the order they were taken.
    out: Mutex<()>,
}

impl Inner {
    fn flush(&self) {
        let _order = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let batch = {
            let mut b = self.buf.lock().unwrap_or_else(|e| e.into_inner());
            if b.is_empty() {
                return;
            }
            std::mem::replace(&mut *b, Vec::with_capacity(FLUSH_BYTES))
        };
        let _ = std::io::stderr().lock().write_all(&batch);
    }
}

/// A buffered stderr log; clones share the buffer.
#[derive(Clone)]
pub struct BufferedStderr(Arc<Inner>);

impl BufferedStderr {
    /// Starts the flusher thread (it ends with the process).
    pub fn start() -> Self {
        let inner = Arc::new(Inner {
            buf: Mutex::new(Vec::with_capacity(FLUSH_BYTES)),
            out: Mutex::new(()),
        });
        let weak = Arc::downgrade(&inner);
        let _ = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || {
                while let Some(inner) = weak.upgrade() {
                    inner.flush();
                    drop(inner);
                    std::thread::sleep(FLUSH_EVERY);
                }
            });
        Self(inner)
    }

    /// Writes out every line gathered so far.
    pub fn flush(&self) {
        self.0.flush();
    }
}

impl LogSink for BufferedStderr {
    fn emit(&self, line: &str) {
        let full = {
            let mut b = self.0.buf.lock().unwrap_or_else(|e| e.into_inner());
            b.extend_from_slice(line.as_bytes());
            b.push(b'\n');
            b.len() >= FLUSH_BYTES
        };
        if full {
            self.0.flush();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let b = std::mem::take(self.buf.get_mut().unwrap_or_else(|e| e.into_inner()));
        let _ = std::io::stderr().lock().write_all(&b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_stay_whole_and_in_order_across_threads() {
        let log = BufferedStderr::start();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        log.emit(&format!(
                            "{{\"t\":{t},\"i\":{i},\"pad\":\"{}\"}}",
                            "x".repeat(40)
                        ));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // What is still buffered is whole lines.
        let b = log.0.buf.lock().unwrap().clone();
        assert!(b.is_empty() || b.ends_with(b"\n"));
        for line in b.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
            assert!(line.starts_with(b"{") && line.ends_with(b"}"));
        }
        log.flush();
        assert!(log.0.buf.lock().unwrap().is_empty());
    }
}
