{{- define "parity-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "parity-operator.serviceAccountName" -}}
{{- default (include "parity-operator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* repository@digest when a digest pins the image, else repository:tag (tag: appVersion). */}}
{{- define "parity-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "parity-operator.selectorLabels" -}}
app.kubernetes.io/name: parity-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "parity-operator.labels" -}}
{{ include "parity-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: parity
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* One rule set of files/rbac-rules.yaml (generated): (list $ "operator" | "leaderElection"). */}}
{{- define "parity-operator.rules" -}}
{{- $root := index . 0 -}}
{{- $set := index . 1 -}}
{{- index ($root.Files.Get "files/rbac-rules.yaml" | fromYaml) $set | toYaml -}}
{{- end -}}
