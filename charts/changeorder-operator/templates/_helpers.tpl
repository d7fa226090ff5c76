{{/* Chart name, overridable. */}}
{{- define "changeorder-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name used as the prefix of every resource. A release already named after the chart is not
repeated ("changeorder-operator", not "changeorder-operator-changeorder-operator").
*/}}
{{- define "changeorder-operator.fullname" -}}
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

{{/*
The full name with a suffix ("metrics", "leader-election"), at most 63 characters like the full
name itself: the base is cut first, so the suffix that tells the objects apart survives.
Called with (list $ctx "suffix").
*/}}
{{- define "changeorder-operator.suffixedName" -}}
{{- $suffix := index . 1 }}
{{- $base := include "changeorder-operator.fullname" (index . 0) | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base $suffix }}
{{- end }}

{{/*
The namespace of every namespaced object of the release: namespaceOverride (for a release
rendered into another namespace by a parent chart or `helm template | kubectl apply`), else the
release's. RoleBindings name the ServiceAccount there too.
*/}}
{{- define "changeorder-operator.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{- define "changeorder-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the release, with the user's commonLabels. */}}
{{- define "changeorder-operator.labels" -}}
{{- include "changeorder-operator.labelsWith" (list .) }}
{{- end }}

{{/*
The release's labels merged with further label maps, later ones winning: (list $ctx map...).
Merged as one map so that a key given twice (say `grafana_dashboard` in both the chart and the
values) renders once; a YAML mapping with a duplicate key is refused by strict parsers and
kubectl apply alike. The selector labels always win: pods must keep matching their selectors.
*/}}
{{- define "changeorder-operator.labelsWith" -}}
{{- $ctx := index . 0 }}
{{- $all := dict
  "helm.sh/chart" (include "changeorder-operator.chart" $ctx)
  "app.kubernetes.io/version" ($ctx.Values.image.tag | default $ctx.Chart.AppVersion | toString)
  "app.kubernetes.io/managed-by" $ctx.Release.Service
  "app.kubernetes.io/part-of" "changeorder-operator" }}
{{- range $extra := prepend (rest .) $ctx.Values.commonLabels }}
{{- range $k, $v := $extra }}
{{- $_ := set $all $k (toString $v) }}
{{- end }}
{{- end }}
{{- range $k, $v := include "changeorder-operator.selectorLabels" $ctx | fromYaml }}
{{- $_ := set $all $k (toString $v) }}
{{- end }}
{{- toYaml $all }}
{{- end }}

{{/* Labels that select the operator pods; never change them, a Deployment's selector is immutable. */}}
{{- define "changeorder-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "changeorder-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "changeorder-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "changeorder-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "changeorder-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* "true" when the pods must elect a leader: several replicas never poll side by side. */}}
{{- define "changeorder-operator.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ else }}false{{ end }}
{{- end }}

{{- define "changeorder-operator.leaseName" -}}
{{- default (include "changeorder-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* The namespaces served, without duplicates, in the order given. */}}
{{- define "changeorder-operator.watchNamespaces" -}}
{{- join "," (uniq .Values.watchNamespaces) }}
{{- end }}

{{/*
Rules of the operator's own objects: watches to read, orders to write, Secrets and Events. Exactly
the verbs the code uses: reflectors list and watch; writes are server-side apply (patch; create
when the apply creates the object) and deletes of pruned orders; status is applied (patch);
Secrets are read with get; Events go through events.k8s.io (create, then patch for a series).
*/}}
{{- define "changeorder-operator.servedRules" -}}
- apiGroups: ["changeorder.io"]
  resources: ["changeorderwatches"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["changeorder.io"]
  resources: ["changeorderwatches/status"]
  verbs: ["patch"]
- apiGroups: ["changeorder.io"]
  resources: ["changeorders"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# A new order's status is an update at the version its create returned; later ones are patches.
- apiGroups: ["changeorder.io"]
  resources: ["changeorders/status"]
  verbs: ["update", "patch"]
# ChangeOrderActions are always read, so that with actions disabled each request is refused with a
# status saying so; the operator ties a finished one to its order (patch) and deletes it after
# actions.ttl. Its status is written with update (the claim before a cloud call must fail on a
# conflict) and patch.
- apiGroups: ["changeorder.io"]
  resources: ["changeorderactions"]
  verbs: ["get", "list", "watch", "patch", "delete"]
- apiGroups: ["changeorder.io"]
  resources: ["changeorderactions/status"]
  verbs: ["update", "patch"]
{{- if or .Values.actions.enabled .Values.receiver.enabled }}
# After acting, or on a push to a receiver, the operator asks a watch to poll at once (an
# annotation).
- apiGroups: ["changeorder.io"]
  resources: ["changeorderwatches"]
  verbs: ["patch"]
{{- end }}
{{- if .Values.watchSets.enabled }}
# ChangeOrderWatchSets: the operator creates, updates (server-side apply, or a merge patch that
# releases a watch) and deletes the watches of each set; it never updates (PUT) them.
- apiGroups: ["changeorder.io"]
  resources: ["changeorderwatchsets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["changeorder.io"]
  resources: ["changeorderwatchsets/status"]
  verbs: ["patch"]
- apiGroups: ["changeorder.io"]
  resources: ["changeorderwatches"]
  verbs: ["create", "patch", "delete"]
{{- end }}
{{- if .Values.receiver.enabled }}
# Receivers: which watches a push wakes; their status says where they are served and whether
# their token Secret is usable.
- apiGroups: ["changeorder.io"]
  resources: ["changeorderreceivers"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["changeorder.io"]
  resources: ["changeorderreceivers/status"]
  verbs: ["patch"]
{{- end }}
# Credentials referenced by watches (list and watch return metadata only to the operator, which
# caches names and versions; get reads one Secret when a watch polls with it).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/*
A Go duration (2h, 1h30m, 90s, 1.5h) in seconds, for PromQL comparisons, which take numbers.
*/}}
{{- define "changeorder-operator.seconds" -}}
{{- $d := toString . }}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$" $d) }}
{{- fail (printf "%q is not a duration like 30s, 5m or 1h30m" $d) }}
{{- end }}
{{- $units := dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9.]+(ms|s|m|h)" $d -1 }}
{{- $n := regexFind "^[0-9.]+" . }}
{{- $total = addf $total (mulf (float64 $n) (get $units (trimPrefix $n .))) }}
{{- end }}
{{- $total }}
{{- end }}
