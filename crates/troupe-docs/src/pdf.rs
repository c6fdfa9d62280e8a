//! PDF text extraction, isolated: the extractor runs on a thread of its own with a large stack,
//! its panics are caught (and kept off stderr), and a parse that does not finish within the
//! deadline is abandoned. A damaged PDF becomes a reason, never a panic in the caller.
//!
//! What isolation in a thread cannot do: kill a runaway parse (Rust threads cannot be stopped), so
//! an abandoned extraction keeps its thread (and its memory) until it finishes on its own. At most
//! [`MAX_LIVE`] extraction threads are alive at once, abandoned ones included; while that many
//! are, further PDFs are refused with a reason rather than started, so runaway parses cannot pile
//! up. A stack overflow aborts the process whatever the
//! thread; the large stack (see [`STACK_BYTES`]) and the hostile-input tests are what keep nesting
//! within it.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once, PoisonError};
use std::time::Duration;

/// Stack of the extraction thread. Reserved address space, not memory: only the pages a parse
/// touches are ever resident.
pub const STACK_BYTES: usize = 256 * 1024 * 1024;

/// Extraction threads alive at once: the running one plus those abandoned past their deadline.
pub const MAX_LIVE: usize = 3;

/// Name of the extraction threads (shown by debuggers and `top -H`).
const THREAD_NAME: &str = "troupe-pdf-extract";

static LIVE: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();

thread_local! {
    /// Set on extraction threads only: their panics are caught and reported as a reason, so the
    /// panic hook keeps them off stderr and records the message here instead.
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Wraps the panic hook in place (once per process) so that a panic on an extraction thread is
/// recorded instead of printed; every other panic goes to the hook that was there before.
fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_string());
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{message}{at}")));
            } else {
                previous(info);
            }
        }));
    });
}

/// Why an extraction gave no text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The extractor returned an error (a PDF it does not understand).
    Error(String),
    /// The extractor panicked (a damaged PDF it did not guard against).
    Panic(String),
    /// It did not finish within the deadline; its thread was abandoned.
    Timeout(Duration),
    /// Too many earlier extractions are still running past their deadline.
    Busy,
    /// The thread could not be started (out of memory or threads).
    Spawn(String),
}

/// Extracts the text of a PDF held in memory on an extraction thread; see the module docs.
pub fn extract(bytes: Vec<u8>, deadline: Duration) -> Result<String, Failure> {
    // Reserve a thread before starting it; the thread gives it back when it ends.
    if LIVE
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < MAX_LIVE).then_some(n + 1)
        })
        .is_err()
    {
        return Err(Failure::Busy);
    }
    install_hook();
    let shared = Arc::new((Mutex::new(None), Condvar::new()));
    let theirs = Arc::clone(&shared);
    let spawned = std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            QUIET.with(|q| q.set(true));
            let outcome = std::panic::catch_unwind(move || extract_unguarded(&bytes));
            let outcome = match outcome {
                Ok(result) => result.map_err(Failure::Error),
                Err(_) => Err(Failure::Panic(
                    LAST_PANIC
                        .with(|p| p.borrow_mut().take())
                        .unwrap_or_else(|| "panic".into()),
                )),
            };
            // Give the thread back before the caller can see the result, so that the caller's
            // next extraction never finds this one still counted.
            LIVE.fetch_sub(1, Ordering::SeqCst);
            let (lock, ready) = &*theirs;
            *lock.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
            ready.notify_one();
        });
    if let Err(e) = spawned {
        LIVE.fetch_sub(1, Ordering::SeqCst);
        return Err(Failure::Spawn(e.to_string()));
    }
    let (lock, ready) = &*shared;
    let slot = lock.lock().unwrap_or_else(PoisonError::into_inner);
    let (mut slot, _) = ready
        .wait_timeout_while(slot, deadline, |s: &mut Option<_>| s.is_none())
        .unwrap_or_else(PoisonError::into_inner);
    // Past the deadline the thread is left to finish alone; its result is dropped with the slot.
    slot.take().unwrap_or(Err(Failure::Timeout(deadline)))
}

/// Largest content of one page once inflated. A page of text is a few KiB to a few hundred; the
/// parse holds every operator of a page at once (tens of bytes for each byte of content), so this
/// is what bounds the memory a damaged or hostile PDF can make the extractor take.
pub const MAX_PAGE_CONTENT_BYTES: u64 = 8 * 1024 * 1024;

/// The extractor itself, in this thread, without guards: lopdf's own text extraction, page by
/// page, after checking that each page's content inflates to at most
/// [`MAX_PAGE_CONTENT_BYTES`]. (lopdf guards against reference cycles in the page tree, where
/// pdf-extract recursed until the stack overflowed; see the crate's hostile-input tests.)
fn extract_unguarded(bytes: &[u8]) -> Result<String, String> {
    let doc = lopdf::Document::load_mem(bytes).map_err(|e| e.to_string())?;
    if doc.is_encrypted() {
        return Err("the PDF is encrypted".into());
    }
    let mut text = String::new();
    for (&number, &page) in &doc.get_pages() {
        let mut inflated = 0;
        for id in doc.get_page_contents(page) {
            if let Ok(lopdf::Object::Stream(stream)) = doc.get_object(id) {
                inflated += inflated_size(stream, MAX_PAGE_CONTENT_BYTES + 1 - inflated);
                if inflated > MAX_PAGE_CONTENT_BYTES {
                    return Err(format!(
                        "page {number}'s content inflates to more than {} MiB",
                        MAX_PAGE_CONTENT_BYTES >> 20
                    ));
                }
            }
        }
        text.push_str(&doc.extract_text(&[number]).map_err(|e| e.to_string())?);
    }
    Ok(text)
}

/// How many bytes a stream's content inflates to, counting no further than `limit`.
fn inflated_size(stream: &lopdf::Stream, limit: u64) -> u64 {
    let flate = match stream.dict.get(b"Filter") {
        Ok(lopdf::Object::Name(name)) => name == b"FlateDecode",
        Ok(lopdf::Object::Array(filters)) => filters
            .iter()
            .any(|f| matches!(f, lopdf::Object::Name(n) if n == b"FlateDecode")),
        _ => false,
    };
    if !flate {
        return stream.content.len() as u64;
    }
    let decoder = flate2::read::ZlibDecoder::new(stream.content.as_slice());
    std::io::copy(
        &mut std::io::Read::take(decoder, limit),
        &mut std::io::sink(),
    )
    .unwrap_or(0)
}
