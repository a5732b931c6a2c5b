//! RFC 3339 timestamps, parsed to the UTC instant in microseconds since the Unix epoch.
//!
//! One parser for every place a user writes a time (JSON-lines and CSV event columns, `--as-of`,
//! entity tables), so they all accept and refuse the same text. It follows RFC 3339 section 5.6:
//! `YYYY-MM-DD` `T` `hh:mm:ss` [`.` fraction] then `Z` or `+hh:mm`/`-hh:mm`; `t`, `z` and a
//! space for `T` are accepted as the RFC allows. The offset is required: a time without one is
//! ambiguous, and guessing UTC shifted zone-aware data silently, which is the bug this replaces.
//! Fractions beyond microseconds are truncated toward the past (the stored resolution).

/// Parses `text` as an RFC 3339 timestamp to microseconds since 1970-01-01T00:00:00Z.
pub fn parse_rfc3339_micros(text: &str) -> Result<i64, String> {
    let refuse = |why: &str| {
        Err(format!(
            "unparsable timestamp {text:?}: {why}; expected RFC 3339 with a UTC offset, e.g. \
             2026-11-28T10:00:00Z or 2026-11-28T12:00:00.5+02:00"
        ))
    };
    let b = text.as_bytes();
    if b.len() < 19 {
        return refuse("too short");
    }
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        b.get(range.clone())?.iter().try_fold(0i64, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return refuse("the date is not YYYY-MM-DD");
    };
    if b[4] != b'-' || b[7] != b'-' {
        return refuse("the date is not YYYY-MM-DD");
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return refuse("no 'T' between date and time");
    }
    let (Some(hour), Some(minute), Some(second)) = (digits(11..13), digits(14..16), digits(17..19))
    else {
        return refuse("the time is not hh:mm:ss");
    };
    if b[13] != b':' || b[16] != b':' {
        return refuse("the time is not hh:mm:ss");
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return refuse("no such date");
    }
    // 60 is a leap second; like most systems we fold it into the next second's start.
    if hour > 23 || minute > 59 || second > 60 {
        return refuse("no such time of day");
    }
    let mut at = 19;
    let mut micros = 0i64;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while at < b.len() && b[at].is_ascii_digit() {
            if at - start < 6 {
                micros = micros * 10 + i64::from(b[at] - b'0');
            }
            at += 1;
        }
        if at == start {
            return refuse("no digits after '.'");
        }
        for _ in (at - start)..6 {
            micros *= 10;
        }
    }
    let offset_seconds = match &b[at..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |x: u8, y: u8| -> Option<i64> {
                (x.is_ascii_digit() && y.is_ascii_digit())
                    .then(|| i64::from(x - b'0') * 10 + i64::from(y - b'0'))
            };
            let (Some(h), Some(m)) = (two(*h1, *h2), two(*m1, *m2)) else {
                return refuse("the UTC offset is not +hh:mm or -hh:mm");
            };
            if h > 23 || m > 59 {
                return refuse("the UTC offset is out of range");
            }
            let seconds = h * 3600 + m * 60;
            if *sign == b'-' {
                -seconds
            } else {
                seconds
            }
        }
        [] => return refuse("no UTC offset (add Z for UTC, or +hh:mm/-hh:mm)"),
        _ => return refuse("the UTC offset is not Z, +hh:mm or -hh:mm"),
    };
    let local_seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Ok((local_seconds - offset_seconds) * 1_000_000 + micros)
}

/// How many fraction digits [`format_rfc3339`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fraction {
    /// Whole seconds (the fraction is dropped).
    None,
    /// Always six digits.
    Micros,
    /// None for a whole second, else nine digits (what `humantime::format_rfc3339` writes, and
    /// so ingest's messages and the Python client's copies of them).
    WholeOrNanos,
}

/// `micros` since the epoch as RFC 3339 UTC (`2026-11-28T10:00:00Z`), for any i64: a year
/// before 0 or after 9999, which RFC 3339 cannot write, gets a sign (`+12000-01-01T...`), where
/// `humantime` would panic (and a message about a wild event time must not).
pub fn format_rfc3339(micros: i64, fraction: Fraction) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let sub = micros.rem_euclid(1_000_000);
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400);
    let year = match year {
        0..=9999 => format!("{year:04}"),
        y if y > 9999 => format!("+{y}"),
        y => format!("-{:04}", -y),
    };
    let fraction = match fraction {
        Fraction::None => String::new(),
        Fraction::Micros => format!(".{sub:06}"),
        Fraction::WholeOrNanos if sub == 0 => String::new(),
        Fraction::WholeOrNanos => format!(".{:09}", sub * 1_000),
    };
    format!(
        "{year}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01; Howard Hinnant's
/// algorithm, the inverse of `days_from_civil`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let of_era = z.rem_euclid(146_097);
    let year_of_era = (of_era - of_era / 1_460 + of_era / 36_524 - of_era / 146_096) / 365;
    let of_year = of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * of_year + 2) / 153;
    let day = of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339_micros as parse;
    use super::{format_rfc3339, Fraction};

    #[test]
    fn formatting_reads_back_and_never_panics() {
        // Brute force: what the parser reads back is the instant formatted, across the years
        // RFC 3339 can write (micros kept with `Micros`, seconds with `None`).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // 0000-01-01 .. 9999-12-31
            let micros = (x % 315_537_897_600_000_000) as i64 - 62_167_219_200_000_000;
            assert_eq!(parse(&format_rfc3339(micros, Fraction::Micros)), Ok(micros));
            assert_eq!(
                parse(&format_rfc3339(micros, Fraction::None)),
                Ok(micros - micros.rem_euclid(1_000_000))
            );
            assert_eq!(
                parse(&format_rfc3339(micros, Fraction::WholeOrNanos)),
                Ok(micros)
            );
        }
        assert_eq!(
            format_rfc3339(0, Fraction::WholeOrNanos),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            format_rfc3339(1_500_000, Fraction::WholeOrNanos),
            "1970-01-01T00:00:01.500000000Z"
        );
        assert_eq!(
            format_rfc3339(-1, Fraction::Micros),
            "1969-12-31T23:59:59.999999Z"
        );
        assert_eq!(format_rfc3339(BASE, Fraction::None), "2026-11-25T21:00:00Z");
        assert_eq!(
            format_rfc3339(253_402_300_800_000_000, Fraction::None),
            "+10000-01-01T00:00:00Z"
        );
        assert_eq!(
            format_rfc3339(i64::MAX, Fraction::None),
            "+294247-01-10T04:00:54Z"
        );
        assert_eq!(
            format_rfc3339(i64::MIN, Fraction::None),
            "-290308-12-21T19:59:05Z"
        );
    }

    const BASE: i64 = 1_795_640_400_000_000; // 2026-11-25T21:00:00Z

    #[test]
    fn utc_forms() {
        assert_eq!(parse("2026-11-25T21:00:00Z"), Ok(BASE));
        assert_eq!(parse("2026-11-25t21:00:00z"), Ok(BASE));
        assert_eq!(parse("2026-11-25 21:00:00Z"), Ok(BASE));
        assert_eq!(parse("2026-11-25T21:00:00+00:00"), Ok(BASE));
        assert_eq!(parse("2026-11-25T21:00:00-00:00"), Ok(BASE));
        assert_eq!(parse("1970-01-01T00:00:00Z"), Ok(0));
    }

    #[test]
    fn offsets_give_the_utc_instant() {
        // 23:00 at +02:00 is 21:00 UTC; 16:00 at -05:00 is 21:00 UTC.
        assert_eq!(parse("2026-11-25T23:00:00+02:00"), Ok(BASE));
        assert_eq!(parse("2026-11-25T16:00:00-05:00"), Ok(BASE));
        assert_eq!(parse("2026-11-26T02:30:00+05:30"), Ok(BASE));
        // The offset crosses a day and a year boundary.
        assert_eq!(
            parse("2027-01-01T01:00:00+02:00"),
            parse("2026-12-31T23:00:00Z")
        );
        // The example: Python's isoformat() of a zone-aware time.
        assert_eq!(
            parse("2026-12-06T01:39:14.96+02:00"),
            parse("2026-12-05T23:39:14.960Z")
        );
    }

    #[test]
    fn fractions() {
        assert_eq!(parse("2026-11-25T21:00:00.5Z"), Ok(BASE + 500_000));
        assert_eq!(parse("2026-11-25T21:00:00.000001Z"), Ok(BASE + 1));
        assert_eq!(parse("2026-11-25T21:00:00.123456789Z"), Ok(BASE + 123_456));
        assert_eq!(parse("1969-12-31T23:59:59.5Z"), Ok(-500_000));
    }

    #[test]
    fn calendar() {
        assert_eq!(parse("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000_000));
        assert_eq!(parse("2000-03-01T00:00:00Z"), Ok(951_868_800_000_000));
        assert!(parse("2026-02-29T00:00:00Z")
            .unwrap_err()
            .contains("no such date"));
        assert!(parse("2026-13-01T00:00:00Z")
            .unwrap_err()
            .contains("no such date"));
        assert!(parse("2026-04-31T00:00:00Z")
            .unwrap_err()
            .contains("no such date"));
    }

    #[test]
    fn refusals_say_why() {
        for (text, why) in [
            ("2026-11-25T21:00:00", "no UTC offset"),
            ("2026-11-25T21:00:00.5", "no UTC offset"),
            ("2026-11-25", "too short"),
            ("2026/11/25T21:00:00Z", "YYYY-MM-DD"),
            ("2026-11-25X21:00:00Z", "no 'T'"),
            ("2026-11-25T21-00-00Z", "hh:mm:ss"),
            ("2026-11-25T24:00:00Z", "no such time"),
            ("2026-11-25T21:00:00.Z", "no digits after"),
            ("2026-11-25T21:00:00+0200", "not Z, +hh:mm"),
            ("2026-11-25T21:00:00+02", "not Z, +hh:mm"),
            ("2026-11-25T21:00:00+25:00", "out of range"),
            ("2026-11-25T21:00:00Z junk", "not Z, +hh:mm"),
            ("yesterday at noon, roughly", "YYYY-MM-DD"),
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.contains(why), "{text}: {error}");
            assert!(error.contains("expected RFC 3339"), "{error}");
        }
    }
}
