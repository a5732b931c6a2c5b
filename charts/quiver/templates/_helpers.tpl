{{/*
Helpers shared by every component. Component-level helpers take a dict:
  root: the top-level context ($)
  name: the component name used in resource names and labels (e.g. "online-store")
  c:    the component's values block (e.g. .Values.onlineStore)
*/}}

{{- define "quiver.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "quiver.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "quiver.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <fullname>-<component>; truncated so StatefulSet pod names (+ "-NN" and the revision hash label) stay valid. */}}
{{- define "quiver.componentName" -}}
{{- printf "%s-%s" (include "quiver.fullname" .root) .name | trunc 52 | trimSuffix "-" }}
{{- end }}

{{- define "quiver.labels" -}}
helm.sh/chart: {{ include "quiver.chart" . }}
app.kubernetes.io/name: {{ include "quiver.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: quiver
{{- end }}

{{- define "quiver.selectorLabels" -}}
app.kubernetes.io/name: {{ include "quiver.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "quiver.componentLabels" -}}
{{ include "quiver.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "quiver.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "quiver.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "quiver.image" -}}
{{- $img := .c.image | default dict }}
{{- $repo := $img.repository | default .root.Values.image.repository }}
{{- $tag := $img.tag | default .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}

{{/* In-cluster address (host:port) of a component's client Service, as written into [endpoints]. */}}
{{- define "quiver.endpoint" -}}
{{- printf "%s:%d" (include "quiver.componentName" .) (int .root.Values.ports.grpc) }}
{{- end }}

{{/* Headless-service DNS suffix of the online-store voters: pods are <sts>-<ordinal>.<suffix>. */}}
{{- define "quiver.onlineStore.peerSuffix" -}}
{{- printf "%s-online-store-headless.%s.svc.%s" (include "quiver.fullname" .) .Release.Namespace .Values.clusterDomain }}
{{- end }}

{{/*
Raft node id of voter ordinal .i: onlineStore.nodeIdOverrides["<i>"] if set, else i + 1.
Takes a dict: root, i.
*/}}
{{- define "quiver.onlineStore.voterId" -}}
{{- $override := index (.root.Values.onlineStore.nodeIdOverrides | default dict) (toString .i) }}
{{- if $override }}{{ int64 $override }}{{ else }}{{ add1 .i }}{{ end }}
{{- end }}

{{/* Fails on nodeIdOverrides that are not "<ordinal>": <id >= 1>, or that give two voters one id. */}}
{{- define "quiver.onlineStore.validateVoterIds" -}}
{{- range $k, $v := (.Values.onlineStore.nodeIdOverrides | default dict) }}
{{- if not (regexMatch "^[0-9]+$" (toString $k)) }}
{{- fail (printf "onlineStore.nodeIdOverrides: key %q is not a pod ordinal" (toString $k)) }}
{{- end }}
{{- if lt (int64 $v) 1 }}
{{- fail (printf "onlineStore.nodeIdOverrides[%s]: node ids are 1 or more" (toString $k)) }}
{{- end }}
{{- end }}
{{- $ids := dict }}
{{- range $i := until (int .Values.onlineStore.replicas) }}
{{- $id := include "quiver.onlineStore.voterId" (dict "root" $ "i" $i) }}
{{- if hasKey $ids $id }}
{{- fail (printf "onlineStore: voter ordinals %s and %d would both use node id %s" (get $ids $id) $i $id) }}
{{- end }}
{{- $_ := set $ids $id (toString $i) }}
{{- end }}
{{- end }}

{{/* Address (host:port) voter ordinal .i advertises: <sts>-<i>.<headless suffix>:<grpc>. Takes a dict: root, i. */}}
{{- define "quiver.onlineStore.voterAddress" -}}
{{- printf "%s-%d.%s:%d" (include "quiver.componentName" (dict "root" .root "name" "online-store")) (int .i) (include "quiver.onlineStore.peerSuffix" .root) (int .root.Values.ports.grpc) }}
{{- end }}

{{/* Peer address (host:port) voter ordinal .i advertises: <sts>-<i>.<headless suffix>:<peer>. Takes a dict: root, i. */}}
{{- define "quiver.onlineStore.voterPeerAddress" -}}
{{- printf "%s-%d.%s:%d" (include "quiver.componentName" (dict "root" .root "name" "online-store")) (int .i) (include "quiver.onlineStore.peerSuffix" .root) (int .root.Values.ports.peer) }}
{{- end }}

{{/* --members value for `quiver cluster init`: 1=<pod 0>:7070@<pod 0>:7076,... (client@peer). */}}
{{- define "quiver.onlineStore.members" -}}
{{- $members := list }}
{{- range $i := until (int .Values.onlineStore.replicas) }}
{{- $members = append $members (printf "%s=%s@%s" (include "quiver.onlineStore.voterId" (dict "root" $ "i" $i)) (include "quiver.onlineStore.voterAddress" (dict "root" $ "i" $i)) (include "quiver.onlineStore.voterPeerAddress" (dict "root" $ "i" $i))) }}
{{- end }}
{{- join "," $members }}
{{- end }}

{{/* Fails unless onlineStore.config.dataDir is a subdirectory of mount path .mountPath (.what names it). */}}
{{- define "quiver.onlineStore.checkDataDir" -}}
{{- $dir := clean .root.Values.onlineStore.config.dataDir }}
{{- $mount := clean .mountPath }}
{{- if not (hasPrefix (printf "%s/" (trimSuffix "/" $mount)) $dir) }}
{{- fail (printf "onlineStore.config.dataDir (%s) must be a subdirectory of %s (%s): the Raft state must live on the volume" $dir .what $mount) }}
{{- end }}
{{- end }}

{{/* Pod template annotations: config checksum (rolls pods when quiver.toml changes) + user annotations. */}}
{{- define "quiver.podAnnotations" -}}
checksum/config: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
{{- with .c.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "quiver.podSecurityContext" -}}
{{- toYaml (merge (deepCopy (.c.podSecurityContext | default dict)) .root.Values.podSecurityContext) }}
{{- end }}

{{- define "quiver.securityContext" -}}
{{- toYaml (merge (deepCopy (.c.securityContext | default dict)) .root.Values.securityContext) }}
{{- end }}

{{/* Pod-level fields shared by every Quiver workload. */}}
{{- define "quiver.podSpecCommon" -}}
serviceAccountName: {{ include "quiver.serviceAccountName" .root }}
automountServiceAccountToken: false
# No <SERVICE>_PORT/_HOST variables: nothing reads them, and with a release named "quiver" they
# would crowd the QUIVER_* namespace the CLI reads (QUIVER_ONLINE, QUIVER_REGISTRY, ...).
enableServiceLinks: false
terminationGracePeriodSeconds: {{ .c.terminationGracePeriodSeconds }}
securityContext:
  {{- include "quiver.podSecurityContext" . | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Container-level fields shared by every Quiver container (image, ports, probes, security, resources).
Probes: liveness and startup are HTTP GET /healthz on the http port (the process runs and is not
draining; never depends on other roles, so a node waiting for `quiver cluster init` or for the
registry is not restarted); readiness is the native gRPC probe of grpc.health.v1 (service
probes.service, "" = the server as a whole), SERVING only while the role can answer its clients.
*/}}
{{- define "quiver.containerCommon" -}}
image: {{ include "quiver.image" . }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
ports:
  - name: grpc
    containerPort: {{ .root.Values.ports.grpc }}
    protocol: TCP
  - name: http
    containerPort: {{ .root.Values.ports.http }}
    protocol: TCP
  {{- if .peer }}
  - name: peer
    containerPort: {{ .root.Values.ports.peer }}
    protocol: TCP
  {{- end }}
{{- $probes := .root.Values.probes }}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  {{- toYaml $probes.startup | nindent 2 }}
readinessProbe:
  {{- if .root.Values.tls.enabled }}
  # The kubelet's gRPC probe speaks no TLS: /readyz reports the same readiness over HTTP.
  httpGet:
    path: /readyz
    port: http
  {{- else }}
  grpc:
    port: {{ .root.Values.ports.grpc }}
    service: {{ $probes.service | quote }}
  {{- end }}
  {{- toYaml $probes.readiness | nindent 2 }}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  {{- toYaml $probes.liveness | nindent 2 }}
securityContext:
  {{- include "quiver.securityContext" . | nindent 2 }}
{{- with .c.resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Env shared by every Quiver container. Templates add their own env, then quiver.extraEnv last. */}}
{{- define "quiver.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- include "quiver.trustEnv" .root }}
{{- end }}

{{/*
Env of every container that runs quiver (servers, the init Job, `quiver cluster` in scripts):
the cluster-internal credential as the server's [auth] internal_token and as the CLI's
QUIVER_TOKEN, and the CA for the CLI. Takes the root context.
*/}}
{{- define "quiver.trustEnv" -}}
{{- if .Values.auth.enabled }}
{{- if not .Values.auth.internalTokenSecret.name }}
{{- fail "auth.enabled needs auth.internalTokenSecret.name (a Secret with the cluster-internal credential)" }}
{{- end }}
- name: QUIVER__AUTH__INTERNAL_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.auth.internalTokenSecret.name }}
      key: {{ .Values.auth.internalTokenSecret.key }}
- name: QUIVER_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.auth.internalTokenSecret.name }}
      key: {{ .Values.auth.internalTokenSecret.key }}
{{- end }}
{{- if .Values.tls.enabled }}
- name: QUIVER_CA_CERT
  value: /etc/quiver-tls/ca.crt
{{- end }}
{{- end }}

{{/* The TLS Secret's mount (tls.enabled): tls.crt, tls.key, ca.crt under /etc/quiver-tls. */}}
{{- define "quiver.tlsVolumeMount" -}}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: /etc/quiver-tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "quiver.tlsVolume" -}}
{{- if .Values.tls.enabled }}
{{- if not .Values.tls.secretName }}
{{- fail "tls.enabled needs tls.secretName (a Secret with tls.crt, tls.key and ca.crt)" }}
{{- end }}
- name: tls
  secret:
    secretName: {{ .Values.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{/* Env of pods that open the offline store (online store, offline): offlineStore.env. */}}
{{- define "quiver.offlineStore.env" -}}
{{- with .Values.offlineStore.env }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/* envFrom of the same pods: every key of the Secret offlineStore.credentialsSecret (AWS_*). */}}
{{- define "quiver.offlineStore.envFrom" -}}
{{- with .Values.offlineStore.credentialsSecret }}
envFrom:
  - secretRef:
      name: {{ . }}
{{- end }}
{{- end }}

{{/* envFrom of the offline (snapshot) pods, which only read: offlineStore.readOnlyCredentialsSecret
when set, else offlineStore.credentialsSecret. */}}
{{- define "quiver.offlineStore.readerEnvFrom" -}}
{{- with (.Values.offlineStore.readOnlyCredentialsSecret | default .Values.offlineStore.credentialsSecret) }}
envFrom:
  - secretRef:
      name: {{ . }}
{{- end }}
{{- end }}

{{- define "quiver.extraEnv" -}}
{{- with .c.extraEnv }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/* Config file and writable scratch space (the root filesystem is read-only). */}}
{{- define "quiver.volumeMounts" -}}
- name: config
  mountPath: /etc/quiver
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- include "quiver.tlsVolumeMount" .root }}
{{- end }}

{{- define "quiver.volumes" -}}
- name: config
  configMap:
    name: {{ include "quiver.fullname" . }}-config
- name: tmp
  emptyDir: {}
{{- include "quiver.tlsVolume" . }}
{{- end }}

{{/* ---- generic per-component resources ---- */}}

{{/* Client Service. Extra dict keys: headless (bool). */}}
{{- define "quiver.service" -}}
apiVersion: v1
kind: Service
metadata:
  {{- if .headless }}
  name: {{ include "quiver.componentName" . }}-headless
  {{- else }}
  name: {{ include "quiver.componentName" . }}
  {{- end }}
  labels:
    {{- include "quiver.componentLabels" . | nindent 4 }}
    {{- if .headless }}
    quiver/headless: "true"
    {{- end }}
  {{- with .c.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- if .headless }}
  clusterIP: None
  # Raft peers must resolve each other before they are Ready (they become Ready only once running).
  publishNotReadyAddresses: true
  {{- else }}
  type: {{ .c.service.type }}
  {{- end }}
  selector:
    {{- include "quiver.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ .root.Values.ports.grpc }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    - name: http
      port: {{ .root.Values.ports.http }}
      targetPort: http
      protocol: TCP
    {{- if and .headless .peer }}
    # Raft between nodes: on the headless Service only, never on the client Service.
    - name: peer
      port: {{ .root.Values.ports.peer }}
      targetPort: peer
      protocol: TCP
      appProtocol: grpc
    {{- end }}
{{- end }}

{{/* autoscaling/v2 HPA. Extra dict key: kind (Deployment or StatefulSet); uses .c.autoscaling. */}}
{{- define "quiver.hpa" -}}
{{- $as := .c.autoscaling }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "quiver.componentName" . }}
  labels:
    {{- include "quiver.componentLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: {{ .kind }}
    name: {{ include "quiver.componentName" . }}
  minReplicas: {{ $as.minReplicas }}
  maxReplicas: {{ $as.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $as.targetCPUUtilizationPercentage }}
    {{- with $as.customMetrics }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $as.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* policy/v1 PodDisruptionBudget from .c.pdb. */}}
{{- define "quiver.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "quiver.componentName" . }}
  labels:
    {{- include "quiver.componentLabels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .c.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "quiver.selectorLabels" . | nindent 6 }}
{{- end }}

{{/* Deployment of a stateless role (ingest, compute, offline). Extra dict key: offlineStore
(bool), to give the pods the offline store's env (offlineStore.env, offlineStore.credentialsSecret). */}}
{{- define "quiver.deployment" -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "quiver.componentName" . }}
  labels:
    {{- include "quiver.componentLabels" . | nindent 4 }}
spec:
  {{- /* Under an HPA the replica count belongs to the HPA; setting it here would fight it on every upgrade. */}}
  {{- if not .c.autoscaling.enabled }}
  replicas: {{ .c.replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "quiver.selectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  template:
    metadata:
      labels:
        {{- include "quiver.componentLabels" . | nindent 8 }}
        {{- with .c.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- include "quiver.podAnnotations" . | nindent 8 }}
    spec:
      {{- include "quiver.podSpecCommon" . | nindent 6 }}
      containers:
        - name: {{ .name }}
          {{- include "quiver.containerCommon" . | nindent 10 }}
          args: ["serve", {{ .name | quote }}, "--config", "/etc/quiver/quiver.toml"]
          env:
            {{- include "quiver.env" . | nindent 12 }}
            {{- if .offlineStore }}
            {{- include "quiver.offlineStore.env" .root | nindent 12 }}
            {{- end }}
            {{- include "quiver.extraEnv" . | nindent 12 }}
          {{- if .offlineStore }}
          {{- include "quiver.offlineStore.readerEnvFrom" .root | nindent 10 }}
          {{- end }}
          volumeMounts:
            {{- include "quiver.volumeMounts" . | nindent 12 }}
            # Writable local scratch (the root filesystem is read-only).
            - name: data
              mountPath: /var/lib/quiver
      volumes:
        {{- include "quiver.volumes" .root | nindent 8 }}
        - name: data
          emptyDir: {}
{{- end }}
