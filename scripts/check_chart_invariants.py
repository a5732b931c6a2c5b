#!/usr/bin/env python3
"""Invariants of Quiver's rendered Kubernetes manifests.

Schema validation (kubernetes-validate) says each object is well formed; this says the objects
fit together the way Quiver needs: the online store is a StatefulSet behind a headless Service,
every workload's liveness and startup probes are HTTP GET /healthz (the process runs) and its
readiness probe is grpc.health.v1 on its gRPC port (the role can answer), the voters' init Job is
not a Helm hook (voters are Ready only after it ran), disruption budgets and autoscalers point at
real workloads, pods run as non-root, and so on.

It also holds the manifests to what the binary really is: quiver.toml carries only sections and
keys that config/quiver.example.toml (every key the binary reads) has, since unknown keys stop the
process; default installs run exactly the roles the binary serves (the stateless ones as a
Deployment behind a Service, in the chart with an HPA and a PDB); Raft addresses are host:port.
The online store exports to the same offline store the offline role reads ([online_store]
offline_store and [offline] store); when the chart's offlineStore.url is set, both carry it and
the pods that open the store get offlineStore.env and offlineStore.credentialsSecret.

Usage (charts-check.sh renders the inputs):
  check_chart_invariants.py --default chart-default.yaml --all-on chart-all-on.yaml [--k8s-base k8s-base.yaml]
                            [--example-config config/quiver.example.toml]
                            [--values charts/quiver/values.yaml] [--all-on-values charts/quiver/ci/all-on-values.yaml]

Prints one line per check and exits non-zero if any failed. Needs PyYAML and Python >= 3.11 (tomllib).
"""
import argparse
import pathlib
import re
import sys
import tomllib

import yaml

COMPONENT = "app.kubernetes.io/component"
STATELESS = ("ingest", "compute", "offline")
# Roles `quiver serve` runs in this version: every role, all deployed by default.
BUILT_ROLES = ("registry", "online-store", "ingest", "compute", "offline")
# Roles whose pods open the offline store: the online store (voters and read replicas; the
# leader exports) and the snapshot service.
OFFLINE_STORE_USERS = ("online-store", "online-store-reader", "offline")
# [endpoints] key -> component whose client Service it names.
ENDPOINTS = {"registry": "registry", "ingest": "ingest", "compute": "compute",
             "online_store": "online-store", "offline": "offline"}
PROBE_IMAGE = "grpc-health-probe"
ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = ROOT / "config" / "quiver.example.toml"
CHART_VALUES = ROOT / "charts" / "quiver" / "values.yaml"
ALL_ON_VALUES = ROOT / "charts" / "quiver" / "ci" / "all-on-values.yaml"


class Report:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, profile, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS [{profile}] {name}")
        else:
            self.failed += 1
            print(f"FAIL [{profile}] {name}" + (f": {detail}" if detail else ""))



def emitted_metrics():
    """Metric names the Rust sources register (quoted "quiver_..." names in metrics.rs files)."""
    root = pathlib.Path(__file__).resolve().parent.parent
    names = set()
    for path in list(root.glob("services/*/src/metrics.rs")) + list(root.glob("crates/*/src/metrics.rs")):
        names.update(re.findall(r'"(quiver_[a-z0-9_]+)"', path.read_text()))
    return names

def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def of_kind(docs, kind, component=None):
    return [d for d in docs if d["kind"] == kind
            and (component is None or d["metadata"].get("labels", {}).get(COMPONENT) == component)]


def one(docs, kind, component):
    found = of_kind(docs, kind, component)
    return found[0] if len(found) == 1 else None


def pod_labels(workload):
    return workload["spec"]["template"]["metadata"].get("labels", {})


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_specs(docs):
    """(description, pod spec, pod annotations) for every object that creates pods."""
    for d in docs:
        name = f'{d["kind"]}/{d["metadata"]["name"]}'
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            tpl = d["spec"]["template"]
            yield name, tpl["spec"], tpl["metadata"].get("annotations", {})
        elif d["kind"] == "Pod":
            yield name, d["spec"], d["metadata"].get("annotations", {})


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def script_of(container):
    return " ".join(container.get("command", []) + container.get("args", []))


def voter_ids(script, voters):
    """Node id of each voter ordinal, as the voter start script computes it (ordinal + 1 or a case arm)."""
    overrides = {int(o): int(i) for o, i in re.findall(r"^\s*(\d+)\) node_id=(\d+) ;;", script, re.M)}
    return [overrides.get(i, i + 1) for i in range(voters)]


def is_healthz(probe, http_port):
    """Whether a probe is only an HTTP GET of /healthz on the http port (by name or number)."""
    get = probe.get("httpGet") or {}
    return (http_port is not None and get.get("path") == "/healthz" and get.get("port") in ("http", http_port)
            and not {"grpc", "exec", "tcpSocket"} & set(probe))


def helm_values(*paths):
    """Chart values as Helm merges them (later files win, maps merge)."""
    def merge(a, b):
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
        return out
    values = {}
    for p in paths:
        with open(p) as f:
            values = merge(values, yaml.safe_load(f) or {})
    return values


def container_of(docs, comp):
    """The first container of the one workload of component comp, or None."""
    wl = [w for w in of_kind(docs, "Deployment") + of_kind(docs, "StatefulSet") if pod_labels(w).get(COMPONENT) == comp]
    return wl[0]["spec"]["template"]["spec"]["containers"][0] if len(wl) == 1 else None


def check_profile(r, profile, docs, voters, all_on, helm, example, values=None):
    workloads = of_kind(docs, "Deployment") + of_kind(docs, "StatefulSet")
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    rendered = {pod_labels(w).get(COMPONENT) for w in workloads}

    # Exactly the roles the binary serves, unless a profile turns the others on to cover their templates.
    roles = sorted({m for w in workloads for c in w["spec"]["template"]["spec"]["containers"]
                    for m in re.findall(r"\bserve[\s\"',]+([\w-]+)", script_of(c))})
    if not all_on:
        r.check(profile, f"workloads run exactly the roles the binary serves {BUILT_ROLES}",
                set(roles) == set(BUILT_ROLES), str(roles))

    # Stateless roles: a Deployment running `serve <role>` behind its client Service; in the chart
    # also an HPA and a PDB (targets, selectors and probes are checked below).
    for comp in [c for c in STATELESS if c in BUILT_ROLES or all_on]:
        dep = one(docs, "Deployment", comp)
        svc = [s for s in of_kind(docs, "Service", comp) if s["spec"].get("clusterIP") != "None"]
        found = {
            "Deployment": dep is not None and any(re.search(rf"\bserve[\s\"',]+{comp}\b", script_of(c))
                                                  for c in dep["spec"]["template"]["spec"]["containers"]),
            "Service": dep is not None and len(svc) == 1 and selects(svc[0]["spec"].get("selector"), pod_labels(dep)),
        }
        if helm:
            found["HPA"] = one(docs, "HorizontalPodAutoscaler", comp) is not None
            found["PDB"] = one(docs, "PodDisruptionBudget", comp) is not None
        r.check(profile, f"{comp} is deployed: {', '.join(found)}", all(found.values()),
                "missing " + ", ".join(k for k, ok in found.items() if not ok))

    # Online store: StatefulSet of voters + headless Service + volumes, started in parallel.
    sts = one(docs, "StatefulSet", "online-store")
    r.check(profile, "online-store is one StatefulSet", sts is not None)
    if sts:
        spec = sts["spec"]
        headless = services.get(spec.get("serviceName"), {}).get("spec", {})
        r.check(profile, "online-store serviceName is a headless Service publishing not-ready pods",
                headless.get("clusterIP") == "None" and headless.get("publishNotReadyAddresses") is True
                and selects(headless.get("selector"), pod_labels(sts)), spec.get("serviceName"))
        r.check(profile, "online-store has volumeClaimTemplates", bool(spec.get("volumeClaimTemplates")))
        r.check(profile, f"online-store has {voters} voters, parallel pod management",
                spec.get("replicas") == voters and spec.get("podManagementPolicy") == "Parallel")
        c = spec["template"]["spec"]["containers"][0]
        index_ref = [e for e in c.get("env", []) if e["name"] == "POD_INDEX"]
        r.check(profile, "online-store node id comes from the pod-index label (ordinal + 1)",
                index_ref and "apps.kubernetes.io/pod-index" in index_ref[0]["valueFrom"]["fieldRef"]["fieldPath"]
                and "$((ordinal + 1))" in script_of(c) and "exec quiver serve online-store" in script_of(c))
        ids = voter_ids(script_of(c), voters)
        r.check(profile, "online-store voter node ids are distinct", len(set(ids)) == len(ids), str(ids))

        # The init Job's members must be exactly the addresses the voters advertise.
        jobs = of_kind(docs, "Job", "online-store-init")
        job = jobs[0] if len(jobs) == 1 else None
        r.check(profile, "online-store init Job exists", job is not None)
        if job:
            jc = job["spec"]["template"]["spec"]["containers"][0]
            members = env_of(jc).get("MEMBERS", "").split(",")
            advertise = env_of(c).get("QUIVER__ONLINE_STORE__ADVERTISE", "")
            peer_advertise = env_of(c).get("QUIVER__ONLINE_STORE__PEER_ADVERTISE", "")
            pod = lambda i: f'{sts["metadata"]["name"]}-{i}'
            expected = [f"{ids[i]}=" + advertise.replace("$(POD_NAME)", pod(i))
                        + "@" + peer_advertise.replace("$(POD_NAME)", pod(i))
                        for i in range(voters)]
            r.check(profile, "init Job --members match the voters' ids and advertised client@peer addresses",
                    members == expected, f"{members} != {expected}")
            r.check(profile, "voter addresses are host:port (no scheme)",
                    "://" not in advertise and re.fullmatch(r"[\w.$()-]+:\d+", advertise) is not None, advertise)
            job_script = script_of(jc)
            r.check(profile, "init Job runs `quiver cluster init --online <pod 0> --members`",
                    'quiver cluster init --online "$ONLINE" --members "$MEMBERS"' in job_script
                    and env_of(jc).get("ONLINE") == expected[0].split("=", 1)[1].split("@")[0])
            if helm:
                # `helm install --wait` waits for Readiness before running hooks, and voters are
                # Ready only once initialised: as a hook, init would never run.
                r.check(profile, "init Job is a plain Job, not a Helm hook",
                        not any(k.startswith("helm.sh/hook") for k in job["metadata"].get("annotations", {})),
                        str(job["metadata"].get("annotations")))

    # The peer port (Raft): declared by every online-store pod, listened on as [online_store]
    # peer_listen says, advertised on it, published by the headless Services and by no client
    # Service (clients must never reach Raft).
    check_peer_port(r, profile, docs, services, config_of(docs))

    # Registry: sled is single-writer.
    reg = one(docs, "StatefulSet", "registry")
    r.check(profile, "registry is a StatefulSet with 1 replica and a volume",
            reg is not None and reg["spec"].get("replicas") == 1 and bool(reg["spec"].get("volumeClaimTemplates")))

    # Disruption budgets select the pods of the component they protect.
    stateless = [comp for comp in STATELESS if comp in rendered]
    pdb_components = ["online-store"] + (stateless if helm else []) + (["online-store-reader"] if all_on else [])
    for comp in pdb_components:
        pdb, wl = one(docs, "PodDisruptionBudget", comp), [w for w in workloads if pod_labels(w).get(COMPONENT) == comp]
        r.check(profile, f"PDB for {comp} selects its pods",
                pdb is not None and pdb["apiVersion"] == "policy/v1" and len(wl) == 1
                and selects(pdb["spec"]["selector"].get("matchLabels"), pod_labels(wl[0])))

    # Autoscalers: autoscaling/v2, pointing at a real workload that leaves replicas to the HPA.
    if helm:
        for comp, kind in [(c, "Deployment") for c in stateless] + ([("online-store-reader", "StatefulSet")] if all_on else []):
            hpa, target = one(docs, "HorizontalPodAutoscaler", comp), one(docs, kind, comp)
            ok = (hpa is not None and target is not None and hpa["apiVersion"] == "autoscaling/v2"
                  and hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": kind, "name": target["metadata"]["name"]}
                  and "replicas" not in target["spec"])
            r.check(profile, f"autoscaling/v2 HPA for {comp} targets its {kind}", ok)
            if ok and all_on:  # ci/all-on-values.yaml adds a custom metric to every HPA
                r.check(profile, f"HPA for {comp} has a custom metric",
                        any(m["type"] != "Resource" for m in hpa["spec"]["metrics"]))
    # External metrics (a Kafka backlog) must be ones Quiver emits: an HPA on a metric nothing
    # exports never scales.
    if helm:
        emitted = emitted_metrics()
        for hpa in of_kind(docs, "HorizontalPodAutoscaler"):
            for m in hpa["spec"].get("metrics", []):
                if m["type"] == "External":
                    name = m["external"]["metric"]["name"]
                    r.check(profile, f"{hpa['metadata']['name']}: external metric {name} is one Quiver emits",
                            name in emitted)
    r.check(profile, "read replicas rendered only when enabled",
            bool(of_kind(docs, "StatefulSet", "online-store-reader")) == all_on)

    config = config_of(docs)
    tls_on = config.get("tls", {}).get("enabled", False) is True
    check_trust(r, profile, docs, config)
    check_network_policies(r, profile, docs, all_on)
    if all_on:
        offline = one(docs, "Deployment", "offline")
        c = offline["spec"]["template"]["spec"]["containers"][0]
        secrets = [e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e]
        r.check(profile, "offline pods get the read-only object-store credentials",
                secrets == ["quiver-offline-s3-read-only"], str(secrets))

    # Every workload, read replicas too: liveness and startup are HTTP GET /healthz on the http
    # port, which answers as long as the process runs (a voter waiting for `quiver cluster init`,
    # or a role waiting for the registry, must not be restarted); readiness is the native gRPC
    # probe of grpc.health.v1 (service "") on the gRPC port, SERVING only while the role can
    # answer. A Service routes to the gRPC port.
    for w in workloads:
        name = f'{w["kind"]}/{w["metadata"]["name"]}'
        for c in w["spec"]["template"]["spec"]["containers"]:
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            grpc, http = ports.get("grpc"), ports.get("http")
            alive = {k: c.get(k, {}) for k in ("livenessProbe", "startupProbe")}
            r.check(profile, f"{name} liveness and startup probes are HTTP GET /healthz on the http port",
                    all(is_healthz(p, http) for p in alive.values()), str(alive))
            ready = c.get("readinessProbe", {})
            if tls_on:
                # The kubelet's gRPC probe speaks no TLS; /readyz carries the same readiness.
                r.check(profile, f"{name} readiness probe is HTTP GET /readyz on the http port (TLS on)",
                        (ready.get("httpGet") or {}).get("path") == "/readyz"
                        and (ready.get("httpGet") or {}).get("port") in ("http", http)
                        and not {"grpc", "exec", "tcpSocket"} & set(ready), str(ready))
            else:
                r.check(profile, f'{name} readiness probe is gRPC health (service "") on the gRPC port',
                        grpc is not None and (ready.get("grpc") or {}).get("port") == grpc
                        and (ready.get("grpc") or {}).get("service", "") == ""
                        and not {"httpGet", "exec", "tcpSocket"} & set(ready), str(ready))
        routed = [s for s in services.values() if selects(s["spec"].get("selector"), pod_labels(w))
                  and any(p["name"] == "grpc" and p.get("targetPort") == "grpc" for p in s["spec"]["ports"])]
        r.check(profile, f"{name} is behind a Service on its grpc port", bool(routed))

    # Config changes must roll pods: checksum annotation (Helm) or hashed ConfigMap name (kustomize).
    configmaps = {c["metadata"]["name"] for c in of_kind(docs, "ConfigMap")}
    sums = set()
    for w in workloads:
        tpl = w["spec"]["template"]
        name = f'{w["kind"]}/{w["metadata"]["name"]}'
        if helm:
            s = tpl["metadata"].get("annotations", {}).get("checksum/config", "")
            sums.add(s)
            r.check(profile, f"{name} pod template has checksum/config", bool(re.fullmatch(r"[0-9a-f]{64}", s)), s)
        else:
            cms = [v["configMap"]["name"] for v in tpl["spec"].get("volumes", []) if "configMap" in v]
            r.check(profile, f"{name} mounts the hash-suffixed ConfigMap",
                    bool(cms) and all(n in configmaps and n != "quiver-config" for n in cms), str(cms))
    if helm:
        r.check(profile, "all pod templates carry the same config checksum", len(sums) == 1)

    # quiver.toml: only sections and keys the binary knows (unknown ones stop it at start).
    cms = [c for c in of_kind(docs, "ConfigMap") if "quiver.toml" in c.get("data", {})]
    r.check(profile, "one ConfigMap carries quiver.toml", len(cms) == 1)
    config = tomllib.loads(cms[0]["data"]["quiver.toml"]) if cms else {}
    unknown = [f"[{sec}]" if sec not in example else f"[{sec}] {key}"
               for sec, body in config.items() for key in (body if sec in example else [None])
               if sec not in example or key not in example[sec]]
    r.check(profile, "quiver.toml has only sections and keys the binary reads (config/quiver.example.toml)",
            bool(config) and not unknown, str(unknown))
    r.check(profile, "quiver.toml leaves node_id and advertise to each pod",
            not {"node_id", "advertise"} & set(config.get("online_store", {})))

    # Offline store: the online store's leader exports where the snapshot service reads.
    os_cfg, off_cfg = config.get("online_store", {}), config.get("offline", {})
    exported = os_cfg.get("offline_store") or (os_cfg.get("data_dir", "").rstrip("/") + "/offline")
    r.check(profile, "the online store exports to the offline store ([online_store] export)",
            os_cfg.get("export", True) is True, str(os_cfg.get("export")))
    r.check(profile, "[offline] store is the store [online_store] offline_store exports to",
            "store" in off_cfg and off_cfg["store"] == exported, f'{off_cfg.get("store")!r} != {exported!r}')
    store = off_cfg.get("store", "")
    off_c = container_of(docs, "offline")
    if "://" in store and not store.startswith("file://"):
        writable = True
    else:  # a local directory: the offline pod creates it, so it must be on a writable volume
        path = store.removeprefix("file://")
        mounts = [m["mountPath"].rstrip("/") + "/" for m in (off_c or {}).get("volumeMounts", [])
                  if not m.get("readOnly")]
        writable = path.startswith("/") and any(path.startswith(m) for m in mounts)
    r.check(profile, "[offline] store is an object-store URL or a directory on a writable volume of the offline pod",
            off_c is not None and writable, store)
    if values is not None:
        ost = values.get("offlineStore") or {}
        url = (ost.get("url") or "").strip()
        if url:
            r.check(profile, f"offlineStore.url ({url}) is both [online_store] offline_store and [offline] store",
                    os_cfg.get("offline_store") == url and off_cfg.get("store") == url,
                    f'{os_cfg.get("offline_store")!r}, {off_cfg.get("store")!r}')
        else:
            r.check(profile, "offlineStore.url empty: [online_store] offline_store is empty (<data_dir>/offline)",
                    not os_cfg.get("offline_store"), str(os_cfg.get("offline_store")))
        # offlineStore.env and credentialsSecret reach every pod that opens the store, and only those.
        want_env = [e["name"] for e in ost.get("env") or []]
        secret = ost.get("credentialsSecret") or ""
        for comp in sorted(rendered):
            c = container_of(docs, comp)
            if c is None:
                continue
            names = [e["name"] for e in c.get("env", [])]
            secrets = [e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e]
            if comp in OFFLINE_STORE_USERS:
                # The snapshot service only reads: its read-only Secret when one is named.
                own = ((ost.get("readOnlyCredentialsSecret") if comp == "offline" else "")
                       or secret)
                r.check(profile, f"{comp} gets the offline store's env {want_env} and secret {own!r}",
                        all(n in names for n in want_env) and secrets == ([own] if own else []),
                        f"env={names} envFrom={secrets}")
            elif want_env or secret:
                r.check(profile, f"{comp} does not get the offline store's credentials",
                        not (set(want_env) & set(names)) and secret not in secrets, f"env={names} envFrom={secrets}")

    # The [endpoints] are host:port of client Services; those of deployed components exist.
    endpoints = config.get("endpoints", {})
    bad = {k: v for k, v in endpoints.items()
           if not re.fullmatch(r"[\w.-]+:\d+", v)
           or (ENDPOINTS.get(k) in rendered and v.rsplit(":", 1)[0] not in services)}
    r.check(profile, "config [endpoints] are host:port, naming the Services of deployed components",
            set(endpoints) == set(ENDPOINTS) and not bad and set(BUILT_ROLES) <= rendered, str(bad or endpoints))

    # Non-root everywhere; Quiver containers also get a read-only root filesystem.
    for name, spec, _ in pod_specs(docs):
        pod_sc = spec.get("securityContext", {})
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = {**pod_sc, **c.get("securityContext", {})}
            ok = (sc.get("runAsNonRoot") is True and sc.get("runAsUser", 1) != 0
                  and sc.get("allowPrivilegeEscalation") is False and "ALL" in sc.get("capabilities", {}).get("drop", []))
            if PROBE_IMAGE not in c["image"]:
                ok = ok and sc.get("readOnlyRootFilesystem") is True
            r.check(profile, f"{name}/{c['name']} runs non-root, no privilege escalation, read-only root", ok, str(sc))

    for name, spec, _ in pod_specs(docs):
        if not any(PROBE_IMAGE in c["image"] for c in spec["containers"]):
            r.check(profile, f"{name} gets no service-link env (QUIVER_* is the CLI's namespace)",
                    spec.get("enableServiceLinks") is False)

    if all_on:
        rs = one(docs, "StatefulSet", "online-store-reader")
        c = rs["spec"]["template"]["spec"]["containers"][0]
        start, stop = script_of(c), " ".join(c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", []))
        data_dir = config.get("online_store", {}).get("data_dir", "")
        mount = [m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] == "data"]
        r.check(profile, "read replicas' data dir is a subdirectory of their volume",
                len(mount) == 1 and data_dir.startswith(mount[0].rstrip("/") + "/"), f"{data_dir} {mount}")
        joined = re.sub(r"\\\n\s*", "", start)  # undo shell line continuations
        r.check(profile, "read replicas join as learners with their peer address: persisted id, else a fresh one from --node-id auto",
                'quiver cluster add-learner --online "$VOTERS" --node-id "$node_id" --address "$self" --peer-address "$peer"' in joined
                and 'quiver cluster add-learner --online "$VOTERS" --node-id auto --address "$self" --peer-address "$peer" --output json' in joined
                and 'peer="$QUIVER__ONLINE_STORE__PEER_ADVERTISE"' in start)
        r.check(profile, "read replicas drop data dir and id together when the id is refused as reused",
                "never reused" in start and f'rm -rf "$data_dir"' in start and f"data_dir={data_dir}\n" in start
                and "learner-node-id" in start)
        r.check(profile, "read replicas settle the node id before starting the server, without --wait",
                not re.search(r"add-learner[^\n]*--wait", joined) and start.rstrip().endswith("exec quiver serve online-store --config /etc/quiver/quiver.toml")
                and "export QUIVER__ONLINE_STORE__NODE_ID" in start)
        r.check(profile, "read replicas leave the membership in preStop and then forget the id",
                'quiver cluster remove --online "$VOTERS" --node-id "$id"' in stop and "rm -f" in stop and "learner-node-id" in stop)
        r.check(profile, "read replicas delete their volume on scale-down and join one at a time",
                rs["spec"].get("persistentVolumeClaimRetentionPolicy", {}).get("whenScaled") == "Delete"
                and rs["spec"].get("podManagementPolicy") == "OrderedReady")
        headless = services.get(rs["spec"]["serviceName"], {}).get("spec", {})
        r.check(profile, "read replicas have a headless Service publishing not-ready pods",
                headless.get("clusterIP") == "None" and headless.get("publishNotReadyAddresses") is True)

    if helm:
        # helm test: one grpc_health_probe container per client (non-headless) Service.
        tests = [p for p in of_kind(docs, "Pod") if p["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
        clients = sorted(n for n, s in services.items() if s["spec"].get("clusterIP") != "None")
        probed = sorted(a.split("=", 1)[1].split(":")[0] for p in tests for c in p["spec"]["containers"]
                        for a in c.get("args", []) if a.startswith("-addr="))
        r.check(profile, "helm test checks gRPC health of every client Service", probed == clients, f"{probed} != {clients}")
        monitors = of_kind(docs, "ServiceMonitor")
        r.check(profile, f"ServiceMonitor {'rendered' if all_on else 'absent'}", bool(monitors) == all_on)


def config_of(docs):
    """The rendered quiver.toml (the ConfigMap's), parsed; {} if absent."""
    for cm in of_kind(docs, "ConfigMap"):
        text = cm.get("data", {}).get("quiver.toml")
        if text:
            return tomllib.loads(text)
    return {}


def check_trust(r, profile, docs, config):
    """With [auth] on, every container that runs quiver (servers, the init Job) gets the
    cluster-internal credential from a Secret, never a literal; with [tls] on, each mounts the
    TLS Secret where [tls] points and the helm test probes speak TLS."""
    auth_on = config.get("auth", {}).get("enabled", False) is True
    tls = config.get("tls", {})
    tls_on = tls.get("enabled", False) is True
    pods = [(f'{w["kind"]}/{w["metadata"]["name"]}', w["spec"]["template"]["spec"])
            for w in of_kind(docs, "Deployment") + of_kind(docs, "StatefulSet") + of_kind(docs, "Job")]
    for name, spec in pods:
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            env = {e["name"]: e for e in c.get("env", [])}
            if auth_on:
                token = env.get("QUIVER__AUTH__INTERNAL_TOKEN", {})
                r.check(profile, f"{name}/{c['name']} gets the internal credential from a Secret",
                        "secretKeyRef" in (token.get("valueFrom") or {}) and "value" not in token, str(token))
            if tls_on:
                mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
                wanted = {str(pathlib.PurePosixPath(tls.get(k, "")).parent) for k in ("cert", "key", "ca")}
                ok = len(wanted) == 1 and all(
                    w in mounts and "secret" in volumes.get(mounts[w]["name"], {}) for w in wanted)
                r.check(profile, f"{name}/{c['name']} mounts the TLS Secret where [tls] points", ok,
                        f"{wanted} {list(mounts)}")
    if tls_on:
        tests = [p for p in of_kind(docs, "Pod") if p["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
        r.check(profile, "helm test probes speak TLS",
                bool(tests) and all("-tls" in c.get("args", []) for p in tests for c in p["spec"]["containers"]))


def check_network_policies(r, profile, docs, enabled):
    """With networkPolicy.enabled: every pod of the release is under a default-deny ingress
    policy; the peer port admits online-store pods alone, compute admits ingest alone, and every
    pod of each role is selected by its role's policies."""
    policies = of_kind(docs, "NetworkPolicy")
    r.check(profile, "NetworkPolicies rendered only when enabled", bool(policies) == enabled)
    if not enabled:
        return
    workloads = of_kind(docs, "Deployment") + of_kind(docs, "StatefulSet")

    def component_of(labels):
        return labels.get("app.kubernetes.io/component")

    deny = [p for p in policies if not p["spec"].get("ingress") and p["spec"].get("policyTypes") == ["Ingress"]]
    for w in workloads:
        labels = pod_labels(w)
        r.check(profile, f"{w['metadata']['name']} is under the default-deny policy",
                any(selects(p["spec"]["podSelector"].get("matchLabels", {}), labels) for p in deny))
    for p in policies:
        for rule in p["spec"].get("ingress", []):
            ports = [port.get("port") for port in rule.get("ports", [])]
            sources = [component_of(f.get("podSelector", {}).get("matchLabels", {})) for f in rule.get("from", [])]
            if "peer" in ports:
                r.check(profile, f"{p['metadata']['name']}: the peer port admits online-store pods alone",
                        bool(sources) and set(sources) <= {"online-store", "online-store-reader"}, str(rule["from"]))
            if component_of(p["spec"]["podSelector"].get("matchLabels", {})) == "compute":
                r.check(profile, f"{p['metadata']['name']}: compute admits ingest alone",
                        sources == ["ingest"] and ports == ["grpc"], str(rule))
    for w in workloads:
        comp = component_of(pod_labels(w))
        wanted = {"peer"} if comp in ("online-store", "online-store-reader") else set()
        wanted |= {"grpc", "http"}
        allowed = {port.get("port") for p in policies
                   if selects(p["spec"]["podSelector"].get("matchLabels", {}), pod_labels(w))
                   for rule in p["spec"].get("ingress", []) for port in rule.get("ports", [])}
        r.check(profile, f"{w['metadata']['name']}: its ports are admitted from somewhere",
                wanted <= allowed, f"{wanted} vs {allowed}")


def check_peer_port(r, profile, docs, services, config):
    peer_listen = config.get("online_store", {}).get("peer_listen", "")
    listen_port = int(peer_listen.rsplit(":", 1)[1]) if ":" in peer_listen else None
    r.check(profile, "[online_store] peer_listen is set (host:port)", listen_port is not None, peer_listen)
    for comp in ("online-store", "online-store-reader"):
        for w in of_kind(docs, "StatefulSet", comp):
            c = w["spec"]["template"]["spec"]["containers"][0]
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            r.check(profile, f"{comp} pods declare the peer port peer_listen names",
                    ports.get("peer") == listen_port and ports.get("peer") != ports.get("grpc"), str(ports))
            advertise = env_of(c).get("QUIVER__ONLINE_STORE__PEER_ADVERTISE", "")
            r.check(profile, f"{comp} advertises its peer port (host:port)",
                    advertise.endswith(f":{listen_port}") and "://" not in advertise, advertise)
            headless = services.get(w["spec"].get("serviceName"), {})
            r.check(profile, f"{comp} headless Service publishes the peer port",
                    any(p.get("targetPort") == "peer" and p.get("port") == listen_port
                        for p in headless.get("spec", {}).get("ports", [])), str(headless.get("spec", {}).get("ports")))
    for name, svc in services.items():
        if svc["spec"].get("clusterIP") == "None":
            continue
        exposed = [p for p in svc["spec"].get("ports", [])
                   if p.get("targetPort") in ("peer", listen_port) or p.get("name") == "peer"]
        r.check(profile, f"client Service {name} does not expose the peer port", not exposed, str(exposed))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--default", required=True, help="helm template output with default values")
    ap.add_argument("--all-on", required=True, help="helm template output with ci/all-on-values.yaml")
    ap.add_argument("--k8s-base", help="kubectl kustomize k8s/base output")
    ap.add_argument("--example-config", default=str(EXAMPLE_CONFIG),
                    help="config/quiver.example.toml: every section and key the binary reads")
    ap.add_argument("--values", default=str(CHART_VALUES), help="the chart's values.yaml (the --default render)")
    ap.add_argument("--all-on-values", default=str(ALL_ON_VALUES),
                    help="values file layered over --values for the --all-on render")
    args = ap.parse_args()

    with open(args.example_config, "rb") as f:
        example = tomllib.load(f)
    r = Report()
    schema = {sec: set(body) for sec, body in example.items()}
    check_profile(r, "default", load(args.default), voters=3, all_on=False, helm=True, example=schema,
                  values=helm_values(args.values))
    check_profile(r, "all-on", load(args.all_on), voters=5, all_on=True, helm=True, example=schema,
                  values=helm_values(args.values, args.all_on_values))
    if args.k8s_base:
        check_profile(r, "k8s-base", load(args.k8s_base), voters=3, all_on=False, helm=False, example=schema)
    print(f"{r.passed} passed, {r.failed} failed")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
