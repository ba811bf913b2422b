// Command kwok-stages prints the Stage objects that kwok's own kwokctl
// configures by default (a fake node becomes Ready and keeps its lease;
// scheduled pods, init containers included, become Running and Ready; Job
// pods complete; deleted pods go away), as one multi-document YAML stream
// for `kwok --config`. Taking them from the pinned kwok module keeps them in
// step with the kwok binary instead of a hand-kept copy.
package main

import (
	"fmt"
	"strings"

	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodeheartbeat "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
)

func main() {
	stages := []string{
		nodefast.DefaultNodeInit,
		nodeheartbeat.DefaultNodeHeartbeatWithLease,
		podfast.DefaultPodReady,
		podfast.DefaultPodComplete,
		podfast.DefaultPodDelete,
	}
	for _, s := range stages {
		fmt.Printf("---\n%s\n", strings.TrimSpace(s))
	}
}
