{{/* Names, labels and the image reference shared by every template. */}}

{{- define "mcp-fleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mcp-fleet.fullname" -}}
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

{{- define "mcp-fleet.operatorName" -}}
{{- printf "%s-operator" (include "mcp-fleet.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mcp-fleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mcp-fleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mcp-fleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of every object; add app.kubernetes.io/component. */}}
{{- define "mcp-fleet.commonLabels" -}}
helm.sh/chart: {{ include "mcp-fleet.chart" . }}
app.kubernetes.io/name: {{ include "mcp-fleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mcp-fleet
{{- end }}

{{/* Labels of the operator's objects. */}}
{{- define "mcp-fleet.labels" -}}
{{ include "mcp-fleet.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "mcp-fleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mcp-fleet.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mcp-fleet.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "mcp-fleet.serverImage" -}}
{{- default (printf "mcp-fleet/mcp-fleet-server:%s" .Chart.AppVersion) .Values.serverImage }}
{{- end }}

{{/* The runbook link of one alert. */}}
{{- define "mcp-fleet.runbook" -}}
{{- printf "%s#%s" .root.Values.prometheusRule.runbookUrl (lower .alert) }}
{{- end }}

{{/* severity and the extra labels of one alert: (dict "root" $ "rule" <rule values>). */}}
{{- define "mcp-fleet.alertLabels" -}}
severity: {{ .rule.severity }}
{{- with .root.Values.prometheusRule.additionalAlertLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}
