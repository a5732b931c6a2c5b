#!/usr/bin/env python3
"""Invariants of Quiver's rendered Kubernetes manifests.

Schema validation (kubernetes-validate) says each object is well formed; this says the objects
fit together the way Quiver needs: the online store is a StatefulSet behind a headless Service,
every workload is probed over grpc.health.v1 on its gRPC port, disruption budgets and autoscalers
point at real workloads, pods run as non-root, and so on.

Usage (charts-check.sh renders the inputs):
  check_chart_invariants.py --default chart-default.yaml --all-on chart-all-on.yaml [--k8s-base k8s-base.yaml]

Prints one line per check and exits non-zero if any failed. Needs PyYAML.
"""
import argparse
import re
import sys

import yaml

COMPONENT = "app.kubernetes.io/component"
STATELESS = ("ingest", "compute", "offline")
PROBE_IMAGE = "grpc-health-probe"


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


def check_profile(r, profile, docs, voters, all_on, helm):
    workloads = of_kind(docs, "Deployment") + of_kind(docs, "StatefulSet")
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}

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
                and "$((ordinal + 1))" in " ".join(c.get("args", [])))

        # The init Job's members must be exactly the addresses the voters advertise.
        jobs = of_kind(docs, "Job", "online-store-init")
        job = jobs[0] if len(jobs) == 1 else None
        r.check(profile, "online-store init Job exists", job is not None)
        if job:
            jc = job["spec"]["template"]["spec"]["containers"][0]
            members = env_of(jc).get("MEMBERS", "").split(",")
            advertise = env_of(c).get("QUIVER__ONLINE_STORE__ADVERTISE", "")
            expected = [f"{i + 1}=" + advertise.replace("$(POD_NAME)", f'{sts["metadata"]["name"]}-{i}')
                        for i in range(voters)]
            r.check(profile, "init Job --members match the voters' advertised addresses",
                    members == expected, f"{members} != {expected}")
            r.check(profile, "init Job runs `quiver cluster init`", "quiver cluster init" in " ".join(jc.get("args", [])))
            if helm:
                r.check(profile, "init Job is a post-install hook",
                        job["metadata"].get("annotations", {}).get("helm.sh/hook") == "post-install")

    # Registry: sled is single-writer.
    reg = one(docs, "StatefulSet", "registry")
    r.check(profile, "registry is a StatefulSet with 1 replica and a volume",
            reg is not None and reg["spec"].get("replicas") == 1 and bool(reg["spec"].get("volumeClaimTemplates")))

    # Disruption budgets select the pods of the component they protect.
    pdb_components = ["online-store"] + (list(STATELESS) if helm else []) + (["online-store-reader"] if all_on else [])
    for comp in pdb_components:
        pdb, wl = one(docs, "PodDisruptionBudget", comp), [w for w in workloads if pod_labels(w).get(COMPONENT) == comp]
        r.check(profile, f"PDB for {comp} selects its pods",
                pdb is not None and pdb["apiVersion"] == "policy/v1" and len(wl) == 1
                and selects(pdb["spec"]["selector"].get("matchLabels"), pod_labels(wl[0])))

    # Autoscalers: autoscaling/v2, pointing at a real workload that leaves replicas to the HPA.
    if helm:
        for comp, kind in [(c, "Deployment") for c in STATELESS] + ([("online-store-reader", "StatefulSet")] if all_on else []):
            hpa, target = one(docs, "HorizontalPodAutoscaler", comp), one(docs, kind, comp)
            ok = (hpa is not None and target is not None and hpa["apiVersion"] == "autoscaling/v2"
                  and hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": kind, "name": target["metadata"]["name"]}
                  and "replicas" not in target["spec"])
            r.check(profile, f"autoscaling/v2 HPA for {comp} targets its {kind}", ok)
            if ok and all_on:  # ci/all-on-values.yaml adds a custom metric to every HPA
                r.check(profile, f"HPA for {comp} has a custom metric",
                        any(m["type"] != "Resource" for m in hpa["spec"]["metrics"]))
    r.check(profile, "read replicas rendered only when enabled",
            bool(of_kind(docs, "StatefulSet", "online-store-reader")) == all_on)

    # Every workload: grpc probes on the container's gRPC port; a Service routes to that port.
    for w in workloads:
        name = f'{w["kind"]}/{w["metadata"]["name"]}'
        for c in w["spec"]["template"]["spec"]["containers"]:
            grpc = [p["containerPort"] for p in c.get("ports", []) if p.get("name") == "grpc"]
            probes = [c.get(k, {}).get("grpc", {}).get("port") for k in ("readinessProbe", "livenessProbe", "startupProbe")]
            r.check(profile, f"{name} readiness/liveness/startup are grpc probes on the gRPC port",
                    len(grpc) == 1 and probes == grpc * 3, f"ports={grpc} probes={probes}")
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

    # The [endpoints] in quiver.toml name Services that exist.
    toml = "".join(next(iter(c["data"].values())) for c in of_kind(docs, "ConfigMap"))
    section = toml.split("[endpoints]", 1)[-1].split("\n[", 1)[0]
    hosts = re.findall(r'^\w+ = "http://([\w.-]+):\d+"', section, re.M)
    r.check(profile, "config [endpoints] point at rendered Services",
            len(hosts) == 5 and all(h in services for h in hosts), str(hosts))

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

    if all_on:
        rs = one(docs, "StatefulSet", "online-store-reader")
        c = rs["spec"]["template"]["spec"]["containers"][0]
        start, stop = " ".join(c.get("args", [])), " ".join(c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", []))
        r.check(profile, "read replicas join as learners with a persisted, never-reused node id",
                "quiver cluster add-learner" in start and "--node-id" in start and "learner-node-id" in start)
        r.check(profile, "read replicas leave the membership in preStop", "quiver cluster remove --online" in stop)
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--default", required=True, help="helm template output with default values")
    ap.add_argument("--all-on", required=True, help="helm template output with ci/all-on-values.yaml")
    ap.add_argument("--k8s-base", help="kubectl kustomize k8s/base output")
    args = ap.parse_args()

    r = Report()
    check_profile(r, "default", load(args.default), voters=3, all_on=False, helm=True)
    check_profile(r, "all-on", load(args.all_on), voters=5, all_on=True, helm=True)
    if args.k8s_base:
        check_profile(r, "k8s-base", load(args.k8s_base), voters=3, all_on=False, helm=False)
    print(f"{r.passed} passed, {r.failed} failed")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
