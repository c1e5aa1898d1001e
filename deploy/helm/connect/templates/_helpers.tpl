{{/* The prefix of every object of a release; short enough for the suffixes below within 63 characters. */}}
{{- define "connect.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select this release's pods: Services, the PodDisruptionBudget and the Deployment use them. */}}
{{- define "connect.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "connect.labels" -}}
{{ include "connect.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{/* The Secret with the connection string and the optional cluster and bootstrap secrets. */}}
{{- define "connect.secretName" -}}
{{- if .Values.secret.existingSecret -}}
{{ .Values.secret.existingSecret }}
{{- else -}}
{{ include "connect.fullname" . }}
{{- end -}}
{{- end -}}

{{- define "connect.claimName" -}}
{{- if .Values.persistence.existingClaim -}}
{{ .Values.persistence.existingClaim }}
{{- else -}}
{{ include "connect.fullname" . }}-data
{{- end -}}
{{- end -}}
