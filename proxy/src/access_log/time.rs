//! `%START_TIME(...)%`: Envoy's strftime, in UTC, with its additions for sub-second digits (`%3f`, `%E3S`, `%s`).

use std::fmt::Write as _;
use std::time::SystemTime;
use time::OffsetDateTime;

/// Envoy's default: `%Y-%m-%dT%H:%M:%E3SZ`.
const DEFAULT: &str = "%Y-%m-%dT%H:%M:%E3SZ";

pub fn format(at: SystemTime, format: Option<&str>) -> String {
    let mut out = String::new();
    write(at, format, &mut out);
    out
}

/// `n` (below 100) as two digits.
fn two_digits(n: u8, out: &mut String) {
    out.push(char::from(b'0' + n / 10 % 10));
    out.push(char::from(b'0' + n % 10));
}

thread_local! {
    /// Envoy's default format up to the seconds (`2023-11-14T22:13:20`), for the last second this thread wrote:
    /// the lines of one second share it, and only the milliseconds are written for each.
    static SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
}

/// Appends `at` in `format` (Envoy's default when `None`) to `out`.
pub fn write(at: SystemTime, format: Option<&str>, out: &mut String) {
    if format.is_none()
        && let Ok(since_epoch) = at.duration_since(SystemTime::UNIX_EPOCH)
    {
        // Every line in the default format has it: `core::fmt` with padding cost more than the rest of the line.
        SECOND.with_borrow_mut(|(second, text)| {
            if *second != since_epoch.as_secs() || text.is_empty() {
                text.clear();
                write_to_the_second(OffsetDateTime::from(at), text);
                *second = since_epoch.as_secs();
            }
            out.push_str(text);
        });
        let millis = since_epoch.subsec_millis();
        out.push('.');
        out.push(char::from(b'0' + (millis / 100) as u8));
        two_digits((millis % 100) as u8, out);
        out.push('Z');
        return;
    }
    let t = OffsetDateTime::from(at);
    let nanos = t.nanosecond();
    let mut chars = format.unwrap_or(DEFAULT).chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        // `%Nf` / `%ENS`: N digits of the fraction (`%f` alone: 9).
        let mut digits = None;
        if let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            digits = Some(d as usize);
            chars.next();
        }
        let Some(spec) = chars.next() else {
            out.push('%');
            break;
        };
        let _ = match spec {
            'E' => {
                let n = chars
                    .peek()
                    .and_then(|c| c.to_digit(10))
                    .map(|d| d as usize);
                if n.is_some() {
                    chars.next();
                }
                match chars.next() {
                    Some('S') => {
                        let _ = write!(out, "{:02}", t.second());
                        if let Some(n) = n.filter(|n| *n > 0) {
                            out.push('.');
                            fraction(nanos, n, out);
                        }
                        Ok(())
                    }
                    Some('s') => write!(out, "{}", t.unix_timestamp()),
                    Some(other) => write!(out, "%E{other}"),
                    None => Ok(()),
                }
            }
            'f' => {
                fraction(nanos, digits.unwrap_or(9), out);
                Ok(())
            }
            'Y' => write!(out, "{}", t.year()),
            'y' => write!(out, "{:02}", t.year().rem_euclid(100)),
            'm' => write!(out, "{:02}", u8::from(t.month())),
            'd' => write!(out, "{:02}", t.day()),
            'e' => write!(out, "{:2}", t.day()),
            'H' => write!(out, "{:02}", t.hour()),
            'M' => write!(out, "{:02}", t.minute()),
            'S' => write!(out, "{:02}", t.second()),
            'j' => write!(out, "{:03}", t.ordinal()),
            's' => write!(out, "{}", t.unix_timestamp()),
            'z' => write!(out, "+0000"),
            'Z' => write!(out, "UTC"),
            'F' => write!(
                out,
                "{}-{:02}-{:02}",
                t.year(),
                u8::from(t.month()),
                t.day()
            ),
            'T' => write!(out, "{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()),
            'a' => write!(out, "{}", &weekday(t)[..3]),
            'A' => write!(out, "{}", weekday(t)),
            'b' | 'h' => write!(out, "{}", &month(t)[..3]),
            'B' => write!(out, "{}", month(t)),
            '%' => write!(out, "%"),
            other => write!(out, "%{other}"),
        };
    }
}

/// `%Y-%m-%dT%H:%M:%S`, digit by digit.
fn write_to_the_second(t: OffsetDateTime, out: &mut String) {
    out.push_str(itoa::Buffer::new().format(t.year()));
    out.push('-');
    two_digits(u8::from(t.month()), out);
    out.push('-');
    two_digits(t.day(), out);
    out.push('T');
    two_digits(t.hour(), out);
    out.push(':');
    two_digits(t.minute(), out);
    out.push(':');
    two_digits(t.second(), out);
}

/// The first `digits` (1 to 9) digits of the second's fraction.
fn fraction(nanos: u32, digits: usize, out: &mut String) {
    let digits = digits.clamp(1, 9);
    let mut scaled = nanos / 10u32.pow(9 - digits as u32);
    let mut text = [b'0'; 9];
    for place in text[..digits].iter_mut().rev() {
        *place = b'0' + (scaled % 10) as u8;
        scaled /= 10;
    }
    for digit in &text[..digits] {
        out.push(char::from(*digit));
    }
}

fn weekday(t: OffsetDateTime) -> String {
    format!("{:?}", t.weekday())
}

fn month(t: OffsetDateTime) -> String {
    format!("{:?}", t.month())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn start_time_formats_like_envoy() {
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(format(at, None), "2023-11-14T22:13:20.123Z");
        assert_eq!(
            format(at, None),
            format(at, Some(DEFAULT)),
            "the default's fast path"
        );
        let early = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5_000_000);
        assert_eq!(format(early, None), "2023-11-14T22:13:20.005Z");
        // The second kept from the last line is not reused for another one, earlier or later.
        let next = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_061, 999_000_000);
        assert_eq!(format(next, None), "2023-11-14T22:14:21.999Z");
        assert_eq!(format(early, None), "2023-11-14T22:13:20.005Z");
        let before_epoch = SystemTime::UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(format(before_epoch, None), "1969-12-31T23:59:58.500Z");
        assert_eq!(format(at, Some("%s.%3f")), "1700000000.123");
        assert_eq!(
            format(at, Some("%d/%b/%Y:%H:%M:%S %z")),
            "14/Nov/2023:22:13:20 +0000"
        );
        assert_eq!(format(at, Some("%E6S|%9f|%a")), "20.123456|123456789|Tue");
    }
}
