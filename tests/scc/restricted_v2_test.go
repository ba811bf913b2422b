package scc

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	securityv1 "github.com/openshift/api/security/v1"
)

// restrictedV2 is OpenShift's restricted-v2 SecurityContextConstraints as the
// cluster ships it, written out here as our own test data (no Go module the
// module proxy serves carries the manifest; see README.md in this folder).
//
// It mirrors, field for field, the release manifest
// bindata/bootkube/scc-manifests/0000_20_kube-apiserver-operator_00_scc-restricted-v2.yaml
// of github.com/openshift/cluster-kube-apiserver-operator at commit
// c813e820bb94cf2af88a6343c8554624c334c04c (2026-08-21; the file last changed
// in 79795a664a689586956b2b8753be4de710c210d4, 2025-11-19, which added the
// `image` volume type). Its description annotation is left out. Access is
// granted by the ClusterRole system:openshift:scc:restricted-v2 bound to the
// group system:authenticated (the two manifests beside it), which
// authorizeRestrictedV2 below stands in for.
func restrictedV2() *securityv1.SecurityContextConstraints {
	return &securityv1.SecurityContextConstraints{
		TypeMeta:                 metav1.TypeMeta{APIVersion: "security.openshift.io/v1", Kind: "SecurityContextConstraints"},
		ObjectMeta:               metav1.ObjectMeta{Name: "restricted-v2"},
		Priority:                 nil,
		AllowPrivilegedContainer: false,
		AllowPrivilegeEscalation: ptr(false),
		DefaultAddCapabilities:   nil,
		RequiredDropCapabilities: []corev1.Capability{"ALL"},
		AllowedCapabilities:      []corev1.Capability{"NET_BIND_SERVICE"},
		AllowHostDirVolumePlugin: false,
		AllowHostNetwork:         false,
		AllowHostPorts:           false,
		AllowHostPID:             false,
		AllowHostIPC:             false,
		ReadOnlyRootFilesystem:   false,
		Volumes: []securityv1.FSType{
			securityv1.FSTypeConfigMap,
			securityv1.FSTypeCSI,
			securityv1.FSTypeDownwardAPI,
			securityv1.FSTypeEmptyDir,
			securityv1.FSTypeEphemeral,
			securityv1.FSTypeImage,
			securityv1.FSTypePersistentVolumeClaim,
			securityv1.FSProjected,
			securityv1.FSTypeSecret,
		},
		SELinuxContext:     securityv1.SELinuxContextStrategyOptions{Type: securityv1.SELinuxStrategyMustRunAs},
		RunAsUser:          securityv1.RunAsUserStrategyOptions{Type: securityv1.RunAsUserStrategyMustRunAsRange},
		SupplementalGroups: securityv1.SupplementalGroupsStrategyOptions{Type: securityv1.SupplementalGroupsStrategyRunAsAny},
		FSGroup:            securityv1.FSGroupStrategyOptions{Type: securityv1.FSGroupStrategyMustRunAs},
		SeccompProfiles:    []string{"runtime/default"},
		Users:              []string{},
		Groups:             []string{},
	}
}

func ptr[T any](v T) *T { return &v }
