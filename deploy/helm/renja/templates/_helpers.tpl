{{/* Names and labels shared by every template. */}}
{{- define "renja.labels" -}}
app.kubernetes.io/part-of: renja
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "renja.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}

{{/* The restricted-profile security context of every Renja container. */}}
{{- define "renja.containerSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities: {drop: [ALL]}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* Env of a Renja container: the ConfigMap, Postgres (CNPG owner Secret) and Kafka (Strimzi user Secret). */}}
{{- define "renja.env" -}}
- name: RENJA_SERVICE
  value: {{ .name }}
- name: RENJA_POSTGRES_HOST
  value: {{ .root.Values.postgres.name }}-rw
- name: RENJA_POSTGRES_PORT
  value: "5432"
- name: RENJA_POSTGRES_USER
  value: {{ .name }}
- name: RENJA_POSTGRES_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ .root.Values.postgres.name }}-{{ .name }}, key: password}}
- name: RENJA_KAFKA_SERVERS
  value: {{ .root.Values.kafka.name }}-kafka-bootstrap:9093
- name: RENJA_KAFKA_SASL_USERNAME
  value: renja-{{ .name }}
- name: RENJA_KAFKA_SASL_PASSWORD
  valueFrom: {secretKeyRef: {name: renja-{{ .name }}, key: password}}
{{- end -}}

{{- define "renja.volumes" -}}
- name: tmp
  emptyDir: {sizeLimit: 256Mi}
- name: kafka-ca
  secret: {secretName: {{ .Values.kafka.name }}-cluster-ca-cert, items: [{key: ca.crt, path: ca.crt}]}
- name: postgres-ca
  secret: {secretName: {{ .Values.postgres.name }}-ca, items: [{key: ca.crt, path: ca.crt}]}
{{- end -}}

{{- define "renja.volumeMounts" -}}
- {name: tmp, mountPath: /tmp}
- {name: kafka-ca, mountPath: /etc/renja/kafka-ca, readOnly: true}
- {name: postgres-ca, mountPath: /etc/renja/postgres-ca, readOnly: true}
{{- end -}}
