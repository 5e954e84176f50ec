{{/*
Named templates of the Agency chart, all under the `agency.` prefix so they cannot collide with a
parent chart's.
*/}}

{{/* The chart name, overridable with nameOverride. */}}
{{- define "agency.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources: fullnameOverride, else `<release>` when the release name
already contains the chart name, else `<release>-<chart>`. Truncated to 63 characters (DNS label).
*/}}
{{- define "agency.fullname" -}}
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

{{/* `name-version` for the helm.sh/chart label. */}}
{{- define "agency.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator Pod; they never change over upgrades. */}}
{{- define "agency.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agency.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of every resource of the chart, without the component (each resource adds its own). */}}
{{- define "agency.commonLabels" -}}
helm.sh/chart: {{ include "agency.chart" . }}
app.kubernetes.io/name: {{ include "agency.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: agency
{{- end }}

{{/* Labels of the operator's own resources (component `operator`). */}}
{{- define "agency.labels" -}}
{{ include "agency.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "agency.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "agency.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference from a {repository, tag, digest} with fallbacks: digest wins over tag. */}}
{{- define "agency.imageRef" -}}
{{- $repository := .image.repository | default .fallback.repository }}
{{- $digest := .image.digest | default (ternary .fallback.digest "" (empty .image.repository)) }}
{{- $tag := .image.tag | default (ternary .fallback.tag "" (empty .image.repository)) | default .appVersion }}
{{- if $digest }}
{{- printf "%s@%s" $repository $digest }}
{{- else }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}
{{- end }}

{{/* The operator's image. */}}
{{- define "agency.image" -}}
{{- include "agency.imageRef" (dict "image" .Values.image "fallback" .Values.image "appVersion" .Chart.AppVersion) }}
{{- end }}

{{/*
The image of run Pods: runtime.image where set; an empty repository means the operator's own image
(tag and digest included), since one image holds both.
*/}}
{{- define "agency.runtimeImage" -}}
{{- include "agency.imageRef" (dict "image" .Values.runtime.image "fallback" .Values.image "appVersion" .Chart.AppVersion) }}
{{- end }}

{{/* Whether the operator reads the API server addresses from the `kubernetes` Endpoints itself. */}}
{{- define "agency.readsApiEndpoints" -}}
{{- if empty .Values.runs.apiServerCIDRs }}true{{ end }}
{{- end }}

{{/* The signal Service's port: as set, else 443 with TLS and 80 without. */}}
{{- define "agency.signalsServicePort" -}}
{{- if .Values.signals.service.port }}{{ .Values.signals.service.port }}{{ else if .Values.signals.tls.secretName }}443{{ else }}80{{ end }}
{{- end }}

{{/* The signal endpoint's scheme. */}}
{{- define "agency.signalsScheme" -}}
{{- ternary "https" "http" (not (empty .Values.signals.tls.secretName)) }}
{{- end }}

{{/* Where the signal endpoint's TLS certificate is mounted. */}}
{{- define "agency.signalsTlsDir" -}}
/etc/agency/signals-tls
{{- end }}
