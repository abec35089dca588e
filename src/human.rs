//! Figures as people read them in messages.

use std::time::Duration;

/// A duration as `--timeout` takes it back: `2 s`, `1.5 s`, `250 ms`.
/// Never rounds a deadline to a figure the user did not give.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        if d.subsec_nanos().is_multiple_of(1_000_000) {
            return format!("{ms} ms");
        }
        let text = format!("{:.3}", d.as_secs_f64() * 1000.0);
        return format!("{} ms", text.trim_end_matches('0').trim_end_matches('.'));
    }
    if d.subsec_nanos() == 0 {
        return format!("{} s", d.as_secs());
    }
    let text = format!("{:.3}", d.as_secs_f64());
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} s")
}

/// `1536` → `1.5 KiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts() {
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 20), "5.0 MiB");
    }

    #[test]
    fn durations() {
        let cases = [
            (Duration::from_secs(2), "2 s"),
            (Duration::from_secs(0), "0 ms"),
            (Duration::from_secs(86_400), "86400 s"),
            (Duration::from_millis(1500), "1.5 s"),
            (Duration::from_millis(250), "250 ms"),
            (Duration::from_millis(60_010), "60.01 s"),
            (Duration::from_micros(1_500_100), "1.5 s"),
            (Duration::from_micros(400), "0.4 ms"),
            (Duration::from_micros(999_500), "999.5 ms"),
        ];
        for (d, want) in cases {
            assert_eq!(duration(d), want, "{d:?}");
        }
    }
}
