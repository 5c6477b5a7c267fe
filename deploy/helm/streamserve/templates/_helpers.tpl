{{/* Names, labels and the checks every template relies on. */}}

{{- define "streamserve.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "streamserve.workerName" -}}
{{- printf "%s-worker" (include "streamserve.fullname" .) -}}
{{- end -}}

{{- define "streamserve.configName" -}}
{{- printf "%s-config" (include "streamserve.fullname" .) -}}
{{- end -}}

{{- define "streamserve.modelsName" -}}
{{- printf "%s-models" (include "streamserve.fullname" .) -}}
{{- end -}}

{{- define "streamserve.secretName" -}}
{{- .Values.secret.name | default (printf "%s-secrets" (include "streamserve.fullname" .)) -}}
{{- end -}}

{{- define "streamserve.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) | quote -}}
{{- end -}}

{{- define "streamserve.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "streamserve.labels" -}}
{{ include "streamserve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* SASL with a username and password (the mechanisms KEDA's Kafka trigger speaks too). */}}
{{- define "streamserve.saslPassword" -}}
{{- if hasPrefix "SASL" .Values.kafka.securityProtocol -}}
{{- if not (has .Values.kafka.saslMechanism (list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512")) -}}
{{- fail (printf "kafka.securityProtocol %s needs kafka.saslMechanism PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512" .Values.kafka.securityProtocol) -}}
{{- end -}}
true
{{- else if .Values.kafka.saslMechanism -}}
{{- fail "kafka.saslMechanism is set but kafka.securityProtocol is not SASL_PLAINTEXT or SASL_SSL" -}}
{{- end -}}
{{- end -}}

{{- define "streamserve.tls" -}}
{{- if hasSuffix "SSL" .Values.kafka.securityProtocol -}}true{{- end -}}
{{- end -}}

{{- define "streamserve.autoscaled" -}}
{{- if ne .Values.autoscaling.mode "none" -}}true{{- end -}}
{{- end -}}

{{/* Refuse values the workers cannot honour; rendered by the ConfigMap, which is always on. */}}
{{- define "streamserve.validate" -}}
{{- $a := .Values.autoscaling -}}
{{- if not (has $a.mode (list "keda" "keda-cost" "hpa" "none")) -}}
{{- fail (printf "autoscaling.mode %q: use keda, keda-cost, hpa or none" $a.mode) -}}
{{- end -}}
{{- if include "streamserve.autoscaled" . -}}
{{- if gt (int $a.maxReplicas) (int .Values.topics.partitions) -}}
{{- fail (printf "autoscaling.maxReplicas %d exceeds topics.partitions %d: a group uses one consumer per partition" (int $a.maxReplicas) (int .Values.topics.partitions)) -}}
{{- end -}}
{{- if gt (int $a.minReplicas) (int $a.maxReplicas) -}}
{{- fail "autoscaling.minReplicas exceeds autoscaling.maxReplicas" -}}
{{- end -}}
{{- if .Values.worker.staticMembership -}}
{{- fail "worker.staticMembership with an autoscaler: a static member does not leave the group on scale-down, its partitions would idle for the session timeout" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* One HPA behaviour for every autoscaler: grow at once; shrink after the lower value held for
the stabilization window, one pod a minute (each removal is a rebalance). */}}
{{- define "streamserve.scalingBehavior" -}}
scaleUp:
  stabilizationWindowSeconds: 0
scaleDown:
  stabilizationWindowSeconds: {{ .Values.autoscaling.scaleDownStabilizationSeconds }}
  policies:
    - type: Pods
      value: 1
      periodSeconds: 60
{{- end -}}

{{/* The worker's environment: the ConfigMap, and the Secret's keys by reference. */}}
{{- define "streamserve.workerEnv" -}}
envFrom:
  - configMapRef:
      name: {{ include "streamserve.configName" . }}
{{- $secret := include "streamserve.secretName" . }}
{{- $keys := .Values.secret.keys }}
{{- if or .Values.worker.staticMembership (include "streamserve.saslPassword" .) .Values.clickhouse.url }}
env:
  {{- if .Values.worker.staticMembership }}
  # The pod name as group.instance.id: stable across container restarts in this pod.
  - name: STREAMSERVE_WORKER_ID
    valueFrom:
      fieldRef: {fieldPath: metadata.name}
  {{- end }}
  {{- if include "streamserve.saslPassword" . }}
  - name: STREAMSERVE_KAFKA_SASL_USERNAME
    valueFrom:
      secretKeyRef: {name: {{ $secret }}, key: {{ $keys.kafkaSaslUsername }}}
  - name: STREAMSERVE_KAFKA_SASL_PASSWORD
    valueFrom:
      secretKeyRef: {name: {{ $secret }}, key: {{ $keys.kafkaSaslPassword }}}
  {{- end }}
  {{- if .Values.clickhouse.url }}
  - name: STREAMSERVE_CLICKHOUSE_PASSWORD
    valueFrom:
      secretKeyRef: {name: {{ $secret }}, key: {{ $keys.clickhousePassword }}}
  {{- end }}
{{- end }}
{{- end -}}
