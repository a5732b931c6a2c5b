//! Which admission rules the leader writes into event entries (`EventWrite.admission_rules`):
//! the newest every member of the group runs. Apply follows the rules an entry carries, so a
//! rule change (`raft::source_clock::HORIZON_RULES`) takes effect only once no replica would
//! apply it the old way: during a rolling upgrade, replicas on the old and the new binary decide
//! every entry alike. Every node asks every member for its rules (`Status.admission_rules`)
//! every two seconds (every 250 ms until they are the newest), so a node that becomes leader
//! already knows them.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use crate::member_address::MemberAddress;
use crate::node::Node;
use crate::raft::source_clock;

/// The rules of entries proposed before anything is known, and by binaries older than the
/// field (which report 0).
pub const OLDEST: u32 = 1;

/// The rules every member runs, from each member's report (`None`: it did not answer): the
/// oldest reported, or `previous` while a member is silent (it may come back on any binary; a
/// silent member neither raises nor lowers them).
pub fn agreed(previous: u32, reports: impl IntoIterator<Item = Option<u32>>) -> u32 {
    let mut oldest = source_clock::RULES;
    for report in reports {
        match report {
            Some(rules) => oldest = oldest.min(rules.max(OLDEST)),
            None => return previous,
        }
    }
    oldest
}

/// Keeps `node`'s view of the group's rules current, until the node is dropped.
pub fn spawn(node: Weak<Node>) {
    tokio::spawn(async move {
        loop {
            let Some(this) = node.upgrade() else { return };
            let (voters, learners) = this.members();
            let mut reports = Vec::new();
            for (id, member) in voters.iter().chain(&learners) {
                if *id == this.config.node_id {
                    reports.push(Some(source_clock::RULES));
                    continue;
                }
                let address = MemberAddress::of(member);
                let status = crate::admin::ask_member(&address.client).await;
                reports.push(status.ok().map(|s| s.admission_rules));
            }
            let previous = this.admission_rules.load(Ordering::Relaxed);
            let now = if reports.is_empty() {
                previous
            } else {
                agreed(previous, reports)
            };
            if now != previous {
                tracing::info!(previous, now, "every member runs these admission rules");
                this.admission_rules.store(now, Ordering::Relaxed);
            }
            drop(this);
            // Quickly until the group runs the newest (a new cluster's first entries), then
            // at an easy pace.
            let pause = if now < source_clock::RULES {
                250
            } else {
                2_000
            };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_runs_the_oldest_rules_any_member_reports() {
        let newest = source_clock::RULES;
        assert_eq!(agreed(OLDEST, [Some(newest), Some(newest)]), newest);
        // A member on a binary older than the field reports 0: the oldest rules.
        assert_eq!(agreed(newest, [Some(newest), Some(0)]), OLDEST);
        // A silent member changes nothing, either way.
        assert_eq!(agreed(OLDEST, [Some(newest), None]), OLDEST);
        assert_eq!(agreed(newest, [None, Some(0)]), newest);
        // A member newer than this binary: this binary's rules.
        assert_eq!(agreed(OLDEST, [Some(newest + 5)]), newest);
    }
}
