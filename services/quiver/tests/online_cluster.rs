//! The online store as a real cluster: `quiver serve online-store` processes on 127.0.0.1 with
//! their own directories, a real registry, and real faults (kill -9, SIGSTOP, restarts).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should fail the test loudly

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quiver_common::leader_hint::with_leader;
use quiver_proto::online::cluster_admin_service_client::ClusterAdminServiceClient;
use quiver_proto::online::online_store_service_client::OnlineStoreServiceClient;
use quiver_proto::online::{
    AddLearnerRequest, FeatureRow, Member, PromoteRequest, RemoveRequest, WriteRequest,
};
use quiver_proto::serving::Consistency;
use quiver_proto::types::{EntityKey, FieldStatus};
use quiver_tests::cluster::{channel, int, Cluster, DEFS};
use quiver_tests::free_address;

const BIN: &str = env!("CARGO_BIN_EXE_quiver");

/// The 20 users of batch `sequence`.
fn batch(sequence: u64) -> Vec<i64> {
    (0..20).map(|k| (sequence * 20 + k) as i64).collect()
}

/// Writes batches of 20 fresh users in a loop until stopped; returns the acknowledged users.
fn spawn_writer(
    cluster: Arc<tokio::sync::RwLock<Cluster>>,
    stop: Arc<AtomicBool>,
    first_sequence: u64,
) -> tokio::task::JoinHandle<Vec<i64>> {
    tokio::spawn(async move {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let mut sequence = first_sequence;
        while !stop.load(Ordering::Relaxed) {
            let users = batch(sequence);
            // Retry the same batch (same sequence) until it is acknowledged.
            loop {
                let result = cluster.read().await.write("writer", sequence, &users).await;
                match result {
                    Ok(_) => break,
                    Err(_) if !stop.load(Ordering::Relaxed) => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    Err(_) => return acked.lock().unwrap().clone(),
                }
            }
            acked.lock().unwrap().extend(users);
            sequence += 1;
        }
        let acked = acked.lock().unwrap().clone();
        acked
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_under_write_load_loses_nothing_acknowledged() {
    let cluster = Arc::new(tokio::sync::RwLock::new(
        Cluster::start(Path::new(BIN), DEFS, 3).await,
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(cluster.clone(), stop.clone(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let old_leader = cluster
        .read()
        .await
        .wait_for_leader(Duration::from_secs(10))
        .await;
    cluster.write().await.kill(old_leader);
    let new_leader = cluster
        .read()
        .await
        .wait_for_leader(Duration::from_secs(30))
        .await;
    assert_ne!(new_leader, old_leader);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.unwrap();
    assert!(
        acked.len() >= 100,
        "the writer made too little progress: {}",
        acked.len()
    );

    let cluster = cluster.read().await;
    for id in cluster.live() {
        cluster.assert_has_all(id, &acked).await;
    }
    // A batch retried after its acknowledgement is recognised and not applied again.
    let again = cluster.write("writer", 1, &[20, 21]).await.unwrap();
    assert!(again.duplicate && again.applied == 0, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_follower_catches_up_by_log_and_by_snapshot() {
    let mut cluster = Cluster::start(Path::new(BIN), DEFS, 3).await;
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let follower = cluster.live().into_iter().find(|id| *id != leader).unwrap();
    let mut acked = Vec::new();

    // By log: down while a few batches commit, then restarted.
    cluster.kill(follower);
    for seq in 1..=10 {
        let users = batch(seq);
        cluster.write("w", seq, &users).await.unwrap();
        acked.extend(users);
    }
    cluster.restart(follower).await;
    cluster.assert_has_all(follower, &acked).await;

    // By snapshot: down while the leader compacts its log past what the follower has.
    cluster.kill(follower);
    for seq in 11..=40 {
        let users = batch(seq);
        cluster.write("w", seq, &users).await.unwrap();
        acked.extend(users);
    }
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let compacted = cluster.compact(leader).await;
    assert!(compacted.snapshot_index > 0);
    let leader_status = cluster.status(leader).await.unwrap();
    assert!(
        leader_status.purged_index >= compacted.snapshot_index,
        "{leader_status:?}"
    );
    cluster.restart(follower).await;
    cluster.assert_has_all(follower, &acked).await;
    let follower_status = cluster.status(follower).await.unwrap();
    assert!(
        follower_status.snapshot_index >= compacted.snapshot_index,
        "the follower should have installed the leader's snapshot: {follower_status:?}"
    );
}

/// Catch-up is bounded by bytes: with `max_append_bytes` far below what the follower missed,
/// the leader sends it in many partial appends and the follower ends with everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_catches_up_in_byte_bounded_appends() {
    let mut cluster = Cluster::start_with(Path::new(BIN), DEFS, 3, |_| {
        vec![(
            "QUIVER__ONLINE_STORE__MAX_APPEND_BYTES".into(),
            "4000".into(),
        )]
    })
    .await;
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let follower = cluster.live().into_iter().find(|id| *id != leader).unwrap();
    cluster.kill(follower);
    let mut acked = Vec::new();
    for seq in 1..=20 {
        let users = batch(seq);
        cluster.write("w", seq, &users).await.unwrap();
        acked.extend(users);
    }
    cluster.restart(follower).await;
    cluster.assert_has_all(follower, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_joins_serves_reads_is_promoted_and_an_old_voter_leaves() {
    let mut cluster = Cluster::start(Path::new(BIN), DEFS, 3).await;
    let mut acked = Vec::new();
    for seq in 1..=5u64 {
        let users = batch(seq);
        cluster.write("w", seq, &users).await.unwrap();
        acked.extend(users);
    }
    cluster.add_process(4).await;
    // No peer address given: the leader asks node 4 for the one it advertises.
    let learner = Member {
        node_id: 4,
        address: cluster.address(4),
        peer_address: String::new(),
        store_id: String::new(),
    };
    let leader_address = cluster.address(cluster.wait_for_leader(Duration::from_secs(10)).await);
    let added = with_leader(&leader_address, 20, |target| {
        let learner = learner.clone();
        async move {
            let mut client = ClusterAdminServiceClient::new(channel(&target).await?);
            client
                .add_learner(AddLearnerRequest {
                    member: Some(learner),
                    wait_caught_up: false,
                })
                .await
                .map(|r| r.into_inner())
        }
    })
    .await
    .unwrap();
    assert!(added.learners.iter().any(|m| m.node_id == 4));
    // While it catches up, the learner refuses reads rather than answer NOT_FOUND for rows the
    // cluster acknowledged; once caught up it serves them all.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let (mut served, mut refused) = (0, 0);
    while std::time::Instant::now() < deadline {
        match cluster.read(4, &acked, Consistency::Eventual).await {
            Ok(cells) => {
                assert!(
                    cells.iter().all(|c| c.0 == FieldStatus::Present),
                    "a lagging learner served {cells:?}"
                );
                served += 1;
            }
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                refused += 1;
            }
        }
    }
    assert!(
        served > 0,
        "the learner never served (refused {refused} reads)"
    );
    cluster.assert_has_all(4, &acked).await;
    assert_eq!(cluster.status(4).await.unwrap().state, "Learner");

    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let promoted = cluster
        .admin(leader)
        .await
        .promote(PromoteRequest { node_id: 4 })
        .await
        .unwrap()
        .into_inner();
    assert!(promoted.voters.iter().any(|m| m.node_id == 4));
    let old_voter = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    let removed = cluster
        .admin(leader)
        .await
        .remove(RemoveRequest { node_id: old_voter })
        .await
        .unwrap()
        .into_inner();
    let voters: Vec<u64> = removed.voters.iter().map(|m| m.node_id).collect();
    assert!(
        !voters.contains(&old_voter) && voters.contains(&4),
        "{voters:?}"
    );
    cluster.kill(old_voter);

    // The cluster still commits, and a removed id can never come back.
    cluster.write("w", 6, &[1_000_001]).await.unwrap();
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let reused = cluster
        .admin(leader)
        .await
        .add_learner(AddLearnerRequest {
            member: Some(Member {
                node_id: old_voter,
                address: "127.0.0.1:1".into(),
                peer_address: "127.0.0.1:2".into(),
                store_id: String::new(),
            }),
            wait_caught_up: false,
        })
        .await
        .unwrap_err();
    assert_eq!(reused.code(), tonic::Code::FailedPrecondition, "{reused:?}");
    // An allocated id is above every id ever used (a member not running yet can be added when
    // its peer address is given: it learns its id that way).
    let allocated = cluster
        .admin(leader)
        .await
        .add_learner(AddLearnerRequest {
            member: Some(Member {
                node_id: 0,
                address: "127.0.0.1:1".into(),
                peer_address: "127.0.0.1:2".into(),
                store_id: String::new(),
            }),
            wait_caught_up: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(allocated.node_id, 5, "{allocated:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_minority_cannot_commit_or_serve_strong_reads() {
    let cluster = Cluster::start(Path::new(BIN), DEFS, 3).await;
    cluster.write("w", 1, &[1, 2, 3]).await.unwrap();
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    // Freeze the two followers: the leader is alone.
    let followers: Vec<u64> = cluster
        .live()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    for id in &followers {
        cluster.process(*id).pause().unwrap();
    }
    let mut writer =
        OnlineStoreServiceClient::new(channel(&cluster.address(leader)).await.unwrap());
    let mut request = tonic::Request::new(WriteRequest {
        producer_id: "w".into(),
        sequence: 2,
        rows: vec![FeatureRow {
            project: String::new(),
            view: "stats".into(),
            view_version: 0,
            entity: Some(EntityKey {
                join_keys: vec![],
                values: vec![int(9)],
            }),
            event_time: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            values: vec![int(90)],
        }],
    });
    request.set_timeout(Duration::from_secs(4));
    assert!(
        writer.write(request).await.is_err(),
        "a minority must not commit"
    );
    let strong = cluster.read(leader, &[1], Consistency::Strong).await;
    assert!(
        strong.is_err(),
        "a STRONG read without a quorum must fail, got {strong:?}"
    );

    for id in &followers {
        cluster.process(*id).resume().unwrap();
    }
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    cluster.write("w", 3, &[4]).await.unwrap();
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let cells = cluster
        .read(leader, &[1, 2, 3, 4], Consistency::Strong)
        .await
        .unwrap();
    assert!(
        cells.iter().all(|c| c.0 == FieldStatus::Present),
        "{cells:?}"
    );
}

/// A replica cut off from the leader stops answering EVENTUAL reads after
/// `max_read_staleness` (here the default 5 s) instead of serving values of unknown age for as
/// long as the partition lasts, and answers again once it hears from a leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_replica_stops_serving_eventual_reads() {
    let cluster = Cluster::start(Path::new(BIN), DEFS, 3).await;
    cluster.write("w", 1, &[1, 2, 3]).await.unwrap();
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let replica = cluster.live().into_iter().find(|id| *id != leader).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while cluster
        .read(replica, &[1], Consistency::Eventual)
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Everyone else frozen: the replica reaches no leader.
    let others: Vec<u64> = cluster
        .live()
        .into_iter()
        .filter(|id| *id != replica)
        .collect();
    for id in &others {
        cluster.process(*id).pause().unwrap();
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    let refused = cluster
        .read(replica, &[1], Consistency::Eventual)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("not reached the leader"),
        "{refused:?}"
    );
    for id in &others {
        cluster.process(*id).resume().unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match cluster
            .read(replica, &[1, 2, 3], Consistency::Eventual)
            .await
        {
            Ok(cells) if cells.iter().all(|c| c.0 == FieldStatus::Present) => break,
            other => {
                assert!(std::time::Instant::now() < deadline, "{other:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_every_node_loses_nothing_acknowledged() {
    let mut cluster = Cluster::start(Path::new(BIN), DEFS, 3).await;
    let mut acked = Vec::new();
    for seq in 1..=10u64 {
        let users: Vec<i64> = (0..50).map(|k| (seq * 50 + k) as i64).collect();
        cluster.write("w", seq, &users).await.unwrap();
        acked.extend(users);
    }
    for id in cluster.live() {
        cluster.kill(id);
    }
    for id in [1, 2, 3] {
        cluster.restart(id).await;
    }
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    for id in [1, 2, 3] {
        cluster.assert_has_all(id, &acked).await;
    }

    // The Raft state is on /metrics for operators.
    cluster.write("w", 11, &[7]).await.unwrap();
    let metrics = cluster.metrics(leader);
    for expected in [
        "quiver_raft_is_leader 1",
        "quiver_raft_voters 3",
        "quiver_raft_learners 0",
        r#"quiver_online_write_rows_total{result="applied"} 1"#,
    ] {
        assert!(
            metrics.contains(expected),
            "{expected:?} missing from:\n{metrics}"
        );
    }
    let applied: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("quiver_raft_applied_index "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(applied >= 11, "applied index {applied}");
    let follower = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    assert!(cluster
        .metrics(follower)
        .contains("quiver_raft_is_leader 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_on_an_empty_disk_cannot_rejoin_under_its_old_id() {
    let mut cluster = Cluster::start(Path::new(BIN), DEFS, 3).await;
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let wiped = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    let mut acked = Vec::new();
    for seq in 1..=3u64 {
        let users = batch(seq);
        cluster.write("w", seq, &users).await.unwrap();
        acked.extend(users);
    }
    cluster.assert_has_all(wiped, &acked).await;

    // The disk is lost: the node comes back empty under its old id and address.
    cluster.kill(wiped);
    std::fs::remove_dir_all(cluster.data_dir(wiped)).unwrap();
    cluster.restart(wiped).await;
    for seq in 4..=6u64 {
        let users = batch(seq);
        cluster.write("w", seq, &users).await.unwrap();
        acked.extend(users);
    }
    // Well past a few heartbeats, it has taken nothing from the leader: every message for the
    // old store is refused, so it is no member, holds no vote and serves nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = cluster.status(wiped).await.unwrap();
    assert!(
        !status.initialized && status.voters.is_empty() && status.last_log_index == 0,
        "the wiped node rejoined: {status:?}"
    );
    assert!(cluster
        .read(wiped, &acked[..1], Consistency::Eventual)
        .await
        .is_err());
    // Re-adding it under its old id is refused, naming the cause.
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let again = cluster
        .admin(leader)
        .await
        .add_learner(AddLearnerRequest {
            member: Some(Member {
                node_id: wiped,
                address: cluster.address(wiped),
                peer_address: String::new(),
                store_id: String::new(),
            }),
            wait_caught_up: false,
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition, "{again:?}");
    assert!(again.message().contains("wiped"), "{again:?}");

    // The way back: remove the old member, add the machine as a new one. Added before it runs
    // (as a read replica joins), its store id is learned once it answers.
    cluster
        .admin(leader)
        .await
        .remove(RemoveRequest { node_id: wiped })
        .await
        .unwrap();
    cluster.kill(wiped);
    let (address, peer) = (free_address(), free_address());
    cluster
        .admin(leader)
        .await
        .add_learner(AddLearnerRequest {
            member: Some(Member {
                node_id: 4,
                address: address.to_string(),
                peer_address: peer.to_string(),
                store_id: String::new(),
            }),
            wait_caught_up: false,
        })
        .await
        .unwrap();
    cluster.add_process_at(4, address, peer).await;
    let recorded = async {
        loop {
            let status = cluster.status(leader).await.unwrap();
            let learner = status.learners.iter().find(|m| m.node_id == 4).cloned();
            if let Some(store) = learner.map(|m| m.store_id).filter(|s| !s.is_empty()) {
                return store;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let recorded = tokio::time::timeout(Duration::from_secs(20), recorded)
        .await
        .expect("the leader never recorded node 4's store id");
    assert_eq!(recorded, cluster.status(4).await.unwrap().store_id);
    cluster
        .admin(leader)
        .await
        .promote(PromoteRequest { node_id: 4 })
        .await
        .unwrap();
    cluster.assert_has_all(4, &acked).await;
}
