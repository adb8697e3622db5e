{{/* The port Mosic listens on inside the pod (the image's, and the Service's target). */}}
{{- define "mosic.httpPort" -}}
8000
{{- end }}

{{/* ---------------------------------------------------------------- names and labels */}}

{{- define "mosic.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mosic.fullname" -}}
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

{{- define "mosic.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "mosic.labels" -}}
helm.sh/chart: {{ include "mosic.chart" . }}
app.kubernetes.io/name: {{ include "mosic.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mosic
{{- end }}

{{/* The Mosic pods. "component" keeps the Service from also selecting the PostgreSQL pod. */}}
{{- define "mosic.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mosic.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "mosic.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "mosic.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mosic.postgresql.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mosic.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: postgresql
{{- end }}

{{- define "mosic.cnpg.clusterName" -}}
{{- printf "%s-db" (include "mosic.fullname" .) | trunc 50 | trimSuffix "-" }}
{{- end }}

{{- define "mosic.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mosic.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mosic.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{- define "mosic.claimName" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-media" (include "mosic.fullname" .)) }}
{{- end }}

{{/* ---------------------------------------------------------------- the database */}}

{{/* "postgresql" (bundled StatefulSet), "cnpg" (a CloudNativePG Cluster) or "external". */}}
{{- define "mosic.database.mode" -}}
{{- if and .Values.postgresql.enabled .Values.cnpg.enabled }}
{{- fail "postgresql.enabled and cnpg.enabled are both true: choose one database (set postgresql.enabled=false to use CloudNativePG)" }}
{{- else if .Values.postgresql.enabled }}postgresql
{{- else if .Values.cnpg.enabled }}cnpg
{{- else }}external
{{- end }}
{{- end }}

{{- define "mosic.database.host" -}}
{{- $mode := include "mosic.database.mode" . }}
{{- if eq $mode "postgresql" }}{{ include "mosic.postgresql.fullname" . }}
{{- else if eq $mode "cnpg" }}{{ include "mosic.cnpg.clusterName" . }}-rw
{{- else }}{{ .Values.externalDatabase.host }}
{{- end }}
{{- end }}

{{- define "mosic.database.port" -}}
{{- if eq (include "mosic.database.mode" .) "external" }}{{ .Values.externalDatabase.port }}{{ else }}5432{{ end }}
{{- end }}

{{- define "mosic.database.name" -}}
{{- $mode := include "mosic.database.mode" . }}
{{- if eq $mode "postgresql" }}{{ .Values.postgresql.auth.database }}
{{- else if eq $mode "cnpg" }}{{ .Values.cnpg.database }}
{{- else }}{{ .Values.externalDatabase.database }}
{{- end }}
{{- end }}

{{- define "mosic.database.user" -}}
{{- $mode := include "mosic.database.mode" . }}
{{- if eq $mode "postgresql" }}{{ .Values.postgresql.auth.username }}
{{- else if eq $mode "cnpg" }}{{ .Values.cnpg.owner }}
{{- else }}{{ .Values.externalDatabase.username }}
{{- end }}
{{- end }}

{{/* The Secret and key holding the database password. */}}
{{- define "mosic.database.secretName" -}}
{{- $mode := include "mosic.database.mode" . }}
{{- if eq $mode "postgresql" }}{{ .Values.postgresql.auth.existingSecret | default (include "mosic.fullname" .) }}
{{- else if eq $mode "cnpg" }}{{ include "mosic.cnpg.clusterName" . }}-app
{{- else }}{{ .Values.externalDatabase.existingSecret | default (include "mosic.fullname" .) }}
{{- end }}
{{- end }}

{{- define "mosic.database.secretKey" -}}
{{- $mode := include "mosic.database.mode" . }}
{{- if eq $mode "postgresql" }}{{ ternary .Values.postgresql.auth.existingSecretPasswordKey "db-password" (ne .Values.postgresql.auth.existingSecret "") }}
{{- else if eq $mode "cnpg" }}password
{{- else }}{{ ternary .Values.externalDatabase.existingSecretPasswordKey "db-password" (ne .Values.externalDatabase.existingSecret "") }}
{{- end }}
{{- end }}

{{/* True when the chart's own Secret must hold the database password. */}}
{{- define "mosic.database.passwordInChartSecret" -}}
{{- $mode := include "mosic.database.mode" . }}
{{- if and (eq $mode "postgresql") (not .Values.postgresql.auth.existingSecret) }}true
{{- else if and (eq $mode "external") (not .Values.externalDatabase.existingSecret) }}true
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- secrets */}}

{{- define "mosic.secretName" -}}
{{- .Values.auth.existingSecret | default (include "mosic.fullname" .) }}
{{- end }}

{{/*
One base64 value of the chart's Secret: the value given in values.yaml, else the value the
Secret already holds in the cluster (so upgrades keep generated secrets), else a new random one.
Arguments: (list given existingData key).
*/}}
{{- define "mosic.secretValue" -}}
{{- $given := index . 0 }}
{{- $existing := index . 1 }}
{{- $key := index . 2 }}
{{- if $given }}{{ $given | toString | b64enc }}
{{- else if hasKey $existing $key }}{{ index $existing $key }}
{{- else }}{{ randAlphaNum 43 | b64enc }}
{{- end }}
{{- end }}

{{/* A digest of the secret values given in values.yaml: changing one rolls the pods. */}}
{{- define "mosic.secretChecksum" -}}
{{- $given := dict "auth" .Values.auth "pg" .Values.postgresql.auth "ext" .Values.externalDatabase }}
{{- toJson $given | sha256sum }}
{{- end }}

{{/* ---------------------------------------------------------------- checks */}}

{{- define "mosic.validate" -}}
{{- $mode := include "mosic.database.mode" . }}
{{- if and (eq $mode "external") (not .Values.externalDatabase.host) }}
{{- fail "no database configured: keep postgresql.enabled=true (bundled PostgreSQL), set cnpg.enabled=true (CloudNativePG), or set externalDatabase.host" }}
{{- end }}
{{- if and (eq $mode "external") (not .Values.externalDatabase.existingSecret) (not .Values.externalDatabase.password) }}
{{- fail "externalDatabase: set externalDatabase.existingSecret (recommended) or externalDatabase.password" }}
{{- end }}
{{- $modes := list "ReadWriteOnce" "ReadWriteOncePod" "ReadWriteMany" }}
{{- if not (has .Values.persistence.accessMode $modes) }}
{{- fail (printf "persistence.accessMode must be one of %s, got %q" (join ", " $modes) (toString .Values.persistence.accessMode)) }}
{{- end }}
{{- $storage := .Values.storage.type }}
{{- if not (has $storage (list "local" "s3")) }}
{{- fail (printf "storage.type must be local or s3, got %q" (toString $storage)) }}
{{- end }}
{{- if and (eq $storage "s3") (not .Values.storage.s3.bucket) }}
{{- fail "storage.type=s3: set storage.s3.bucket" }}
{{- end }}
{{- if and (eq $storage "s3") (not .Values.storage.s3.existingSecret) }}
{{- fail "storage.type=s3: set storage.s3.existingSecret, a Secret with the keys access-key-id and secret-access-key (or the keys named in storage.s3.existingSecretKeys)" }}
{{- end }}
{{- if and .Values.nginx.enabled (ne $storage "local") }}
{{- fail "nginx.enabled: nginx sends files from the data volume, so it needs storage.type=local (with s3, Mosic sends or redirects players to the bucket)" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (eq $storage "local") }}
{{- if not .Values.persistence.enabled }}
{{- fail (printf "replicaCount=%d needs media storage every replica shares, but persistence.enabled=false gives each pod its own emptyDir: enable persistence with persistence.accessMode=ReadWriteMany" (int .Values.replicaCount)) }}
{{- end }}
{{- if ne .Values.persistence.accessMode "ReadWriteMany" }}
{{- fail (printf "replicaCount=%d needs media storage every replica can mount: set persistence.accessMode=ReadWriteMany (with a persistence.storageClass that provides it, e.g. NFS, CephFS, EFS, Azure Files), or point persistence.existingClaim at a ReadWriteMany claim and set persistence.accessMode=ReadWriteMany to vouch for it. %s cannot be shared between pods." (int .Values.replicaCount) .Values.persistence.accessMode) }}
{{- end }}
{{- if .Values.persistence.existingClaim }}
{{- $claim := lookup "v1" "PersistentVolumeClaim" .Release.Namespace .Values.persistence.existingClaim }}
{{- if and $claim (not (has "ReadWriteMany" ($claim.spec.accessModes | default list))) }}
{{- fail (printf "persistence.existingClaim %q is not ReadWriteMany (it has %v), so replicaCount=%d pods cannot share it" .Values.persistence.existingClaim $claim.spec.accessModes (int .Values.replicaCount)) }}
{{- end }}
{{- end }}
{{- end }}
{{- if not .Values.generateSecrets }}
{{- if and (not .Values.auth.existingSecret) (or (not .Values.auth.apiKey) (not .Values.auth.signingSecret)) }}
{{- fail "generateSecrets=false: set auth.existingSecret (recommended), or both auth.apiKey and auth.signingSecret; a secret generated while rendering without a cluster (Argo CD, Flux) would change on every sync" }}
{{- end }}
{{- if and (eq $mode "postgresql") (not .Values.postgresql.auth.existingSecret) (not .Values.postgresql.auth.password) }}
{{- fail "generateSecrets=false: set postgresql.auth.existingSecret (recommended) or postgresql.auth.password; a generated password would change on every sync while the database keeps the first one" }}
{{- end }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if $pdb.enabled }}
{{- if and (ne (toString $pdb.maxUnavailable) "") (ne (toString $pdb.minAvailable) "") }}
{{- fail "podDisruptionBudget: set maxUnavailable or minAvailable, not both (set the other to \"\")" }}
{{- end }}
{{- if and (eq (toString $pdb.maxUnavailable) "") (eq (toString $pdb.minAvailable) "") }}
{{- fail "podDisruptionBudget: set maxUnavailable (e.g. 1) or minAvailable" }}
{{- end }}
{{- if and (regexMatch "^[0-9]+$" (toString $pdb.minAvailable)) (ge (int $pdb.minAvailable) (int .Values.replicaCount)) }}
{{- fail (printf "podDisruptionBudget.minAvailable=%d with replicaCount=%d lets no pod be evicted, so no node could be drained: use maxUnavailable: 1, or raise replicaCount" (int $pdb.minAvailable) (int .Values.replicaCount)) }}
{{- end }}
{{- end }}
{{- if lt (int .Values.terminationGracePeriodSeconds) (add (int .Values.preStopSleepSeconds) 30) }}
{{- fail (printf "terminationGracePeriodSeconds=%d is shorter than preStopSleepSeconds (%d) plus Mosic's 30 s drain (MOSIC_SHUTDOWN_GRACE_S): streams would be cut" (int .Values.terminationGracePeriodSeconds) (int .Values.preStopSleepSeconds)) }}
{{- end }}
{{- if and .Values.metrics.port (eq (int .Values.metrics.port) (int (include "mosic.httpPort" .))) }}
{{- fail (printf "metrics.port must differ from the HTTP port %s (leave it empty to serve /metrics on the HTTP port)" (include "mosic.httpPort" .)) }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- the pod */}}

{{/* The environment of both the migrate init container and the server. */}}
{{- define "mosic.env" -}}
# The root filesystem is read-only: anything a library writes under $HOME goes to /tmp.
- name: HOME
  value: /tmp
- name: MOSIC_DATA_DIR
  value: /data
- name: MOSIC_WORKERS
  value: {{ .Values.workers | quote }}
- name: MOSIC_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: MOSIC_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: MOSIC_MAX_UPLOAD_MB
  value: {{ .Values.maxUploadMB | quote }}
- name: MOSIC_SIGNED_URL_TTL
  value: {{ .Values.signedUrlTTL | quote }}
- name: MOSIC_DB_POOL_SIZE
  value: {{ .Values.dbPoolSize | quote }}
{{- with .Values.musicFolders.folders }}
- name: MOSIC_LIBRARY_DIRS
  value: {{ include "mosic.musicDirs" $ | quote }}
- name: MOSIC_LIBRARY_SCAN_INTERVAL_S
  value: {{ $.Values.musicFolders.scanIntervalSeconds | quote }}
{{- end }}
{{- if .Values.backups.existingClaim }}
- name: MOSIC_BACKUP_DIR
  value: /backups
- name: MOSIC_BACKUP_INTERVAL_H
  value: {{ .Values.backups.intervalHours | quote }}
- name: MOSIC_BACKUP_KEEP
  value: {{ .Values.backups.keep | quote }}
{{- end }}
{{- if .Values.nginx.enabled }}
- name: MOSIC_NGINX_AUTH_REQUEST
  value: "true"
{{- end }}
{{- if .Values.metrics.port }}
- name: MOSIC_METRICS_PORT
  value: {{ .Values.metrics.port | quote }}
- name: MOSIC_METRICS_ON_API_PORT
  value: {{ .Values.metrics.onApiPort | toString | quote }}
{{- end }}
{{- if eq .Values.storage.type "s3" }}
{{- $s3 := .Values.storage.s3 }}
- name: MOSIC_STORAGE
  value: s3
- name: MOSIC_S3_BUCKET
  value: {{ $s3.bucket | quote }}
- name: MOSIC_S3_PREFIX
  value: {{ $s3.prefix | quote }}
{{- if $s3.endpointUrl }}
- name: MOSIC_S3_ENDPOINT_URL
  value: {{ $s3.endpointUrl | quote }}
{{- end }}
- name: MOSIC_S3_REGION
  value: {{ $s3.region | quote }}
{{- if $s3.addressing }}
- name: MOSIC_S3_ADDRESSING
  value: {{ $s3.addressing | quote }}
{{- end }}
- name: MOSIC_S3_STREAM
  value: {{ $s3.stream | quote }}
- name: MOSIC_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret }}
      key: {{ $s3.existingSecretKeys.accessKeyId }}
- name: MOSIC_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret }}
      key: {{ $s3.existingSecretKeys.secretAccessKey }}
{{- end }}
- name: MOSIC_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "mosic.secretName" . }}
      key: {{ ternary .Values.auth.existingSecretKeys.apiKey "api-key" (ne .Values.auth.existingSecret "") }}
- name: MOSIC_SIGNING_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "mosic.secretName" . }}
      key: {{ ternary .Values.auth.existingSecretKeys.signingSecret "signing-secret" (ne .Values.auth.existingSecret "") }}
- name: MOSIC_DB_HOST
  value: {{ include "mosic.database.host" . | quote }}
- name: MOSIC_DB_PORT
  value: {{ include "mosic.database.port" . | quote }}
- name: MOSIC_DB_NAME
  value: {{ include "mosic.database.name" . | quote }}
- name: MOSIC_DB_USER
  value: {{ include "mosic.database.user" . | quote }}
- name: MOSIC_DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "mosic.database.secretName" . }}
      key: {{ include "mosic.database.secretKey" . }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "mosic.volumeMounts" -}}
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- if .Values.backups.existingClaim }}
- name: backups
  mountPath: /backups
{{- end }}
{{- range $i, $folder := .Values.musicFolders.folders }}
- name: music-{{ $i }}
  mountPath: /music/{{ $folder.name }}
  readOnly: true
{{- end }}
{{- end }}

{{/* MOSIC_LIBRARY_DIRS: each music folder's mount, ':'-separated (a folder is named by it). */}}
{{- define "mosic.musicDirs" -}}
{{- $dirs := list }}
{{- range .Values.musicFolders.folders }}
{{- $dirs = append $dirs (printf "/music/%s" .name) }}
{{- end }}
{{- join ":" $dirs }}
{{- end }}

{{/* RollingUpdate needs a volume the old and the new pod can both mount. */}}
{{- define "mosic.strategy" -}}
{{- if .Values.updateStrategy }}
{{- toYaml .Values.updateStrategy }}
{{- else if and .Values.persistence.enabled (ne .Values.persistence.accessMode "ReadWriteMany") }}
type: Recreate
{{- else }}
type: RollingUpdate
rollingUpdate:
  maxSurge: 25%
  maxUnavailable: 0
{{- end }}
{{- end }}

{{/* An emptyDir spec from {medium, sizeLimit}, either of them empty. */}}
{{- define "mosic.emptyDir" -}}
{{- $spec := dict }}
{{- with .medium }}{{ $_ := set $spec "medium" . }}{{ end }}
{{- with .sizeLimit }}{{ $_ := set $spec "sizeLimit" . }}{{ end }}
{{- toYaml $spec }}
{{- end }}
