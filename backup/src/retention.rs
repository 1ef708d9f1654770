//! Which backups of one subject to prune: keep the newest `keep_last`, and every backup younger
//! than `keep_within`; a backup either rule keeps survives (the union, as restic's `forget` does).
//! With neither rule nothing is pruned. The backup just made is always kept. Pure.

use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    pub keep_last: Option<u32>,
    pub keep_within: Option<Duration>,
}

impl Retention {
    pub fn is_set(&self) -> bool {
        self.keep_last.is_some() || self.keep_within.is_some()
    }
}

/// `backups` are (id, start time) of ONE subject's complete backups. Returns the ids to delete,
/// oldest first.
pub fn to_prune(
    backups: &[(String, DateTime<Utc>)],
    just_made: &str,
    now: DateTime<Utc>,
    rule: Retention,
) -> Vec<String> {
    if !rule.is_set() {
        return Vec::new();
    }
    let mut newest_first: Vec<&(String, DateTime<Utc>)> = backups.iter().collect();
    newest_first.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    let mut prune: Vec<String> = newest_first
        .iter()
        .enumerate()
        .filter(|(rank, (id, at))| {
            let by_count = rule.keep_last.is_some_and(|n| (*rank as u64) < u64::from(n));
            let by_age = rule.keep_within.is_some_and(|w| {
                chrono::Duration::from_std(w).is_ok_and(|w| now.signed_duration_since(*at) <= w)
            });
            !(by_count || by_age || id == just_made)
        })
        .map(|(_, (id, _))| id.clone())
        .collect();
    prune.reverse();
    prune
}

/// Parses `30d`, `12h`, `2w`, `90m` (and anything humantime accepts, e.g. `1day 12h`).
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let weeks = s.strip_suffix('w').and_then(|n| n.parse::<u64>().ok());
    let parsed = match weeks {
        Some(w) => Ok(Duration::from_secs(w * 7 * 86_400)),
        None => humantime::parse_duration(s).map_err(|e| e.to_string()),
    };
    match parsed {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be longer than zero".into()),
        Err(e) => Err(format!("{s:?} is not an age such as 30d, 12h or 2w ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, 3, 0, 0).unwrap()
    }

    fn backups(days: &[u32]) -> Vec<(String, DateTime<Utc>)> {
        days.iter().map(|d| (format!("b{d:02}"), day(*d))).collect()
    }

    #[test]
    fn keep_last_keeps_the_newest() {
        let b = backups(&[1, 2, 3, 4, 5]);
        let rule = Retention { keep_last: Some(2), keep_within: None };
        assert_eq!(to_prune(&b, "b05", day(5), rule), ["b01", "b02", "b03"]);
    }

    #[test]
    fn keep_within_keeps_the_young_and_the_union_wins() {
        let b = backups(&[1, 10, 20, 24, 25]);
        let within = Some(Duration::from_secs(7 * 86_400));
        assert_eq!(
            to_prune(&b, "b25", day(25), Retention { keep_last: None, keep_within: within }),
            ["b01", "b10"]
        );
        // keep-last 3 also keeps b20 (already young) and nothing older.
        assert_eq!(
            to_prune(&b, "b25", day(25), Retention { keep_last: Some(4), keep_within: within }),
            ["b01"]
        );
    }

    #[test]
    fn no_rule_prunes_nothing_and_the_new_backup_always_survives() {
        let b = backups(&[1, 2, 3]);
        assert!(to_prune(&b, "b03", day(3), Retention::default()).is_empty());
        // A clock that runs behind: the just-made backup is not among the newest by time.
        let mut b = backups(&[1, 2, 3]);
        b.push(("late".into(), day(1)));
        let rule = Retention { keep_last: Some(1), keep_within: None };
        assert_eq!(to_prune(&b, "late", day(3), rule), ["b01", "b02"]);
    }

    #[test]
    fn ages_parse_in_the_usual_units() {
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_age("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert!(parse_age("0d").is_err());
        assert!(parse_age("soon").is_err());
    }
}
