// Package dashboards holds no code: its tests check the Grafana dashboards
// in docs/grafana against the metrics the broker, the gateway and the sink
// export, so a renamed metric or a typo in a panel's query fails a test
// instead of leaving a panel empty.
package dashboards
