//! The lineage graph of a project: source -> transform -> feature view -> feature ->
//! feature service -> consumer, with entities feeding the sources and views that use them.
//!
//! The graph is derived on request from the live definitions and the consumer records; it is
//! small (one node per object, transform and feature), so nothing is cached.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use quiver_proto::convert::micros_to_timestamp;
use quiver_proto::registry::{
    GetLineageResponse, LineageEdge, LineageNode, LineageNodeKind, RegistryObject,
};

use crate::definition::Definition;
use crate::store::ConsumerRecord;

/// A project's lineage graph.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: BTreeMap<String, LineageNode>,
    edges: BTreeSet<(String, String)>,
}

impl Graph {
    /// Builds the graph from live head records and consumer records.
    pub fn build(heads: &[RegistryObject], consumers: &[ConsumerRecord]) -> Self {
        let mut g = Graph::default();
        for head in heads {
            let Some(meta) = head.meta.as_ref().filter(|m| !m.deleted) else {
                continue;
            };
            let Some(Ok(definition)) = head.spec.as_ref().map(Definition::from_pb) else {
                continue;
            };
            let version = meta.version;
            match &definition {
                Definition::Entity(e) => {
                    g.node(LineageNodeKind::Entity, &e.name, version);
                }
                Definition::Source(s) => {
                    let id = g.node(LineageNodeKind::Source, &s.name, version);
                    g.edge(node_id(LineageNodeKind::Entity, &s.entity), id);
                }
                Definition::FeatureView(v) => {
                    let view = g.node(LineageNodeKind::FeatureView, &v.name, version);
                    let source = node_id(LineageNodeKind::Source, &v.source);
                    g.edge(node_id(LineageNodeKind::Entity, &v.entity), view.clone());
                    g.edge(source.clone(), view.clone());
                    for t in &v.transforms {
                        let id = g.node(
                            LineageNodeKind::Transform,
                            &format!("{}.{}", v.name, t.name),
                            version,
                        );
                        let input = match v.transform(&t.input) {
                            Some(earlier) => node_id(
                                LineageNodeKind::Transform,
                                &format!("{}.{}", v.name, earlier.name),
                            ),
                            None => source.clone(),
                        };
                        g.edge(input, id.clone());
                        g.edge(id, view.clone());
                    }
                    for f in &v.features {
                        let id = g.node(
                            LineageNodeKind::Feature,
                            &format!("{}:{}", v.name, f.name),
                            version,
                        );
                        g.edge(view.clone(), id);
                    }
                }
                Definition::FeatureService(s) => {
                    let id = g.node(LineageNodeKind::FeatureService, &s.name, version);
                    for r in &s.features {
                        let feature = format!("{}:{}", r.view, r.feature);
                        g.edge(node_id(LineageNodeKind::Feature, &feature), id.clone());
                    }
                }
            }
        }
        for record in consumers {
            let Some((kind, name)) = record.target.split_once(':') else {
                continue;
            };
            let target = match kind {
                "service" => node_id(LineageNodeKind::FeatureService, name),
                "feature" => node_id(LineageNodeKind::Feature, name),
                _ => continue,
            };
            if !g.nodes.contains_key(&target) {
                continue;
            }
            let id = g.node(LineageNodeKind::Consumer, &record.consumer, 0);
            if let Some(node) = g.nodes.get_mut(&id) {
                let seen = micros_to_timestamp(record.last_seen_micros);
                if node
                    .last_seen
                    .as_ref()
                    .is_none_or(|t| t.seconds < seen.seconds)
                {
                    node.last_seen = Some(seen);
                }
            }
            g.edge(target, id);
        }
        // Edges may name nodes of deleted objects; keep only edges between live nodes.
        let nodes = &g.nodes;
        g.edges
            .retain(|(a, b)| nodes.contains_key(a) && nodes.contains_key(b));
        g
    }

    fn node(&mut self, kind: LineageNodeKind, name: &str, version: u32) -> String {
        let id = node_id(kind, name);
        self.nodes.entry(id.clone()).or_insert_with(|| LineageNode {
            id: id.clone(),
            kind: kind as i32,
            name: name.to_string(),
            version,
            last_seen: None,
        });
        id
    }

    fn edge(&mut self, from: String, to: String) {
        self.edges.insert((from, to));
    }

    /// The upstream and downstream closure of the node `id`, or `None` if there is no such node.
    pub fn query(&self, id: &str) -> Option<GetLineageResponse> {
        let root = self.nodes.get(id)?.clone();
        let upstream = self.reachable(id, |(from, to)| (to, from));
        let downstream = self.reachable(id, |(from, to)| (from, to));
        let in_view: BTreeSet<&str> = upstream
            .iter()
            .chain(downstream.iter())
            .map(String::as_str)
            .chain([id])
            .collect();
        let edges = self
            .edges
            .iter()
            .filter(|(a, b)| in_view.contains(a.as_str()) && in_view.contains(b.as_str()))
            .map(|(a, b)| LineageEdge {
                from: a.clone(),
                to: b.clone(),
            })
            .collect();
        let nodes = |ids: Vec<String>| {
            ids.iter()
                .filter_map(|i| self.nodes.get(i).cloned())
                .collect()
        };
        Some(GetLineageResponse {
            root: Some(root),
            upstream: nodes(upstream),
            downstream: nodes(downstream),
            edges,
        })
    }

    /// Nodes reachable from `start` following edges in the direction `orient` gives, in
    /// breadth-first order.
    fn reachable<'a>(
        &'a self,
        start: &str,
        orient: impl Fn((&'a String, &'a String)) -> (&'a String, &'a String),
    ) -> Vec<String> {
        let mut seen = BTreeSet::from([start.to_string()]);
        let mut order = Vec::new();
        let mut queue = VecDeque::from([start.to_string()]);
        while let Some(current) = queue.pop_front() {
            for (a, b) in &self.edges {
                let (from, to) = orient((a, b));
                if *from == current && seen.insert(to.clone()) {
                    order.push(to.clone());
                    queue.push_back(to.clone());
                }
            }
        }
        order
    }
}

/// The node id of a `kind` node named `name`, e.g. `feature:user_txn:amount_sum_24h`.
pub fn node_id(kind: LineageNodeKind, name: &str) -> String {
    format!("{}:{name}", kind_name(kind))
}

/// The short name of a node kind.
pub fn kind_name(kind: LineageNodeKind) -> &'static str {
    match kind {
        LineageNodeKind::Entity => "entity",
        LineageNodeKind::Source => "source",
        LineageNodeKind::Transform => "transform",
        LineageNodeKind::FeatureView => "view",
        LineageNodeKind::Feature => "feature",
        LineageNodeKind::FeatureService => "service",
        LineageNodeKind::Consumer => "consumer",
        LineageNodeKind::Unspecified => "unknown",
    }
}

/// Parses the node a user names: `view:feature`, or `<kind>/<name>` with kind one of entity,
/// source, transform, view, feature, service, consumer.
pub fn parse_node(text: &str) -> Option<String> {
    if let Some((kind, name)) = text.split_once('/') {
        let kind = [
            LineageNodeKind::Entity,
            LineageNodeKind::Source,
            LineageNodeKind::Transform,
            LineageNodeKind::FeatureView,
            LineageNodeKind::Feature,
            LineageNodeKind::FeatureService,
            LineageNodeKind::Consumer,
        ]
        .into_iter()
        .find(|k| kind_name(*k) == kind)?;
        return (!name.is_empty()).then(|| node_id(kind, name));
    }
    let reference: quiver_core::FeatureRef = text.parse().ok()?;
    Some(node_id(
        LineageNodeKind::Feature,
        &format!("{}:{}", reference.view, reference.feature),
    ))
}
