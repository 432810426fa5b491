//! What of the executable stays resident. Most of the operator's resident memory when idle
//! is its own code: this kernel keeps the executable in the page cache as large folios and
//! maps a whole folio on a fault, so code run once (start-up, a burst of reconciles) stays
//! mapped and counted in the operator's RSS for good. Once the operator is quiet, its code
//! mappings are dropped: the pages stay in the page cache, and what runs next faults back
//! in (a minor fault, no disk read).

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

/// How long the operator must have finished no reconcile before its code pages go.
pub const QUIET: Duration = Duration::from_secs(10);

/// Drops the resident pages of the executable's code (its `r-xp` mappings) and returns how
/// many bytes of mappings were advised.
pub fn release_code_pages() -> std::io::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut advised = 0;
    for range in code_ranges(&maps, &exe) {
        let len = range.end - range.start;
        // SAFETY: the range is a whole read-only, executable mapping of the executable file,
        // never written, so dropping its pages loses nothing: they are read back from the
        // file (the page cache) on the next access. No Rust object lives in it.
        let rc =
            unsafe { libc::madvise(range.start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        advised += len;
    }
    Ok(advised)
}

/// The address ranges of `exe`'s executable mappings in a `/proc/<pid>/maps` listing.
fn code_ranges(maps: &str, exe: &Path) -> Vec<Range<usize>> {
    // A replaced executable reads "<path> (deleted)" in both places.
    let exe = exe.to_string_lossy();
    let exe = exe.trim_end_matches(" (deleted)");
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            let path = fields.nth(3)?;
            let rest: Vec<&str> = fields.collect();
            let path = if rest.is_empty() {
                path.to_string()
            } else {
                format!("{path} {}", rest.join(" "))
            };
            if perms != "r-xp" || path.trim_end_matches(" (deleted)") != exe {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            (start < end).then_some(start..end)
        })
        .collect()
}

/// Releases the code pages each time the operator turns quiet: when `activity` (reconciles
/// finished) has not moved for [`QUIET`] and has moved since the last release. Runs until
/// the process ends, or until the kernel refuses.
pub async fn release_when_quiet(activity: impl Fn() -> u64) {
    each_quiet_spell(activity, release_code_pages).await;
}

async fn each_quiet_spell(
    activity: impl Fn() -> u64,
    mut release: impl FnMut() -> std::io::Result<usize>,
) {
    let mut last = activity();
    let mut quiet_since = tokio::time::Instant::now();
    let mut released_at = None;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = activity();
        if now != last {
            (last, quiet_since) = (now, tokio::time::Instant::now());
        } else if quiet_since.elapsed() >= QUIET && released_at != Some(now) {
            match release() {
                Ok(bytes) => tracing::debug!(bytes, "released the executable's code pages"),
                Err(e) => {
                    tracing::info!(error = %e, "cannot release code pages; they stay resident");
                    return;
                }
            }
            released_at = Some(now);
        }
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one mapping, as a list
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn only_the_executables_code_is_released() {
        let maps = "\
55d0c0000000-55d0c0a00000 r--p 00000000 fd:01 1234 /usr/local/bin/parity-operator
55d0c0a00000-55d0c1f00000 r-xp 00a00000 fd:01 1234 /usr/local/bin/parity-operator
55d0c1f00000-55d0c2000000 rw-p 01f00000 fd:01 1234 /usr/local/bin/parity-operator
55d0c3000000-55d0c3100000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000200000 r-xp 00028000 fd:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]
";
        assert_eq!(
            code_ranges(maps, Path::new("/usr/local/bin/parity-operator")),
            vec![0x55d0c0a00000..0x55d0c1f00000]
        );
        assert!(code_ranges(maps, Path::new("/usr/local/bin/parity")).is_empty());
    }

    #[test]
    fn a_replaced_executable_or_a_path_with_spaces_is_still_found() {
        let maps = "1000-2000 r-xp 00000000 fd:01 7 /tmp/my dir/parity-operator (deleted)\n";
        assert_eq!(
            code_ranges(maps, Path::new("/tmp/my dir/parity-operator (deleted)")),
            vec![0x1000..0x2000]
        );
        assert_eq!(
            code_ranges(maps, Path::new("/tmp/my dir/parity-operator")),
            vec![0x1000..0x2000]
        );
    }

    #[test]
    fn releasing_the_test_binarys_code_keeps_it_running() {
        let advised = release_code_pages().expect("madvise");
        assert!(advised > 0, "no code mapping of /proc/self/exe was found");
        // The code whose pages were just dropped runs again, and gives the same answer.
        assert_eq!(release_code_pages().expect("madvise again"), advised);
    }

    #[tokio::test(start_paused = true)]
    async fn the_pages_go_once_per_quiet_spell() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        let activity = Arc::new(AtomicU64::new(0));
        let released = Arc::new(AtomicU64::new(0));
        let (a, r) = (activity.clone(), released.clone());
        let task = tokio::spawn(each_quiet_spell(
            move || a.load(Ordering::SeqCst),
            move || {
                r.fetch_add(1, Ordering::SeqCst);
                Ok(4096)
            },
        ));
        let count = || released.load(Ordering::SeqCst);
        let after = |d: Duration| tokio::time::sleep(d + Duration::from_millis(500));
        // Quiet from the start: released once, after QUIET, and not again while nothing
        // happens.
        after(QUIET - Duration::from_secs(1)).await;
        assert_eq!(count(), 0);
        after(Duration::from_secs(1)).await;
        assert_eq!(count(), 1);
        after(QUIET * 3).await;
        assert_eq!(count(), 1);
        // Reconciles: released again QUIET after the last one.
        activity.fetch_add(5, Ordering::SeqCst);
        after(Duration::from_secs(4)).await;
        activity.fetch_add(1, Ordering::SeqCst);
        after(QUIET - Duration::from_secs(1)).await;
        assert_eq!(count(), 1);
        after(Duration::from_secs(2)).await;
        assert_eq!(count(), 2);
        after(QUIET * 3).await;
        assert_eq!(count(), 2);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_ends_the_loop() {
        let task = tokio::spawn(each_quiet_spell(
            || 0,
            || Err(std::io::Error::from_raw_os_error(libc::EINVAL)),
        ));
        tokio::time::sleep(QUIET * 2).await;
        assert!(task.is_finished());
    }
}
