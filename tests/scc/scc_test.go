// Package scc checks the pods that s3-seed's injected StatefulSets make
// against OpenShift's restricted-v2 SecurityContextConstraints, with
// OpenShift's own SCC code (the sccmatching package the SCC admission plugin
// of OpenShift's kube-apiserver is built on).
//
// For each annotated StatefulSet of examples/*.yaml, written as on OpenShift
// (the examples pin runAsUser/fsGroup for other clusters, which restricted-v2
// refuses whatever s3-seed does, so those fields are taken out of the input),
// `s3-seed inject` gives the StatefulSet the webhook would store; the test
// makes the pod the
// StatefulSet controller would create from it, defaults it as the API server
// does, and runs the admission plugin's steps: find the SCCs the pod's service
// account may use, build their providers from the namespace's
// openshift.io/sa.scc.* annotations, assign and validate the security context.
// The pod must be admitted with a UID, fsGroup and SELinux level from the
// namespace's allocation; the same pod asking for a fixed runAsUser outside the
// range, or carrying a hostPath volume, must be refused.
//
// Env: S3_SEED_BIN (the s3-seed binary; default: cargo build --release).
package scc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	coreapi "k8s.io/kubernetes/pkg/apis/core"
	corev1conversion "k8s.io/kubernetes/pkg/apis/core/v1"

	securityv1listers "github.com/openshift/client-go/security/listers/security/v1"

	"github.com/openshift/apiserver-library-go/pkg/securitycontextconstraints/sccdefaults"
	"github.com/openshift/apiserver-library-go/pkg/securitycontextconstraints/sccmatching"
)

// The namespace as OpenShift's namespace controller allocates it.
const (
	uidRange           = "1000680000/10000"
	supplementalGroups = "1000680000/10000"
	mcsLevel           = "s0:c26,c15"
	uidMin, uidMax     = 1000680000, 1000689999
)

func TestInjectedExamplesAreAdmittedByRestrictedV2(t *testing.T) {
	for _, sts := range injectedExamples(t) {
		t.Run(sts.Namespace+"/"+sts.Name, func(t *testing.T) {
			for _, c := range sts.Spec.Template.Spec.InitContainers {
				if sc := c.SecurityContext; injectedContainer(c) && sc != nil && (sc.RunAsUser != nil || sc.RunAsGroup != nil) {
					t.Errorf("the injected container %s pins runAsUser %v / runAsGroup %v", c.Name, deref(sc.RunAsUser), deref(sc.RunAsGroup))
				}
			}
			pod := podOf(sts)
			admitted, errs := admit(t, pod)
			if len(errs) > 0 {
				t.Fatalf("restricted-v2 refused the pod of the injected StatefulSet:\n%v", errs.ToAggregate())
			}
			expectNamespaceAllocation(t, admitted)
		})
	}
}

func TestRestrictedV2RefusesAFixedUIDOutsideTheRange(t *testing.T) {
	for _, sts := range injectedExamples(t) {
		t.Run(sts.Namespace+"/"+sts.Name, func(t *testing.T) {
			pod := podOf(sts)
			if pod.Spec.SecurityContext == nil {
				pod.Spec.SecurityContext = &corev1.PodSecurityContext{}
			}
			pod.Spec.SecurityContext.RunAsUser = ptr[int64](1000)
			expectRefused(t, pod, "1000", fmt.Sprintf("must be in the ranges: [%d, %d]", uidMin, uidMax))

			// The same field with a UID from the range is admitted and kept:
			// the refusal above is about the value, not the field.
			pod.Spec.SecurityContext.RunAsUser = ptr[int64](uidMin + 7)
			admitted, errs := admit(t, pod)
			if len(errs) > 0 {
				t.Fatalf("restricted-v2 refused runAsUser %d from the range:\n%v", uidMin+7, errs.ToAggregate())
			}
			for _, c := range containersOf(admitted) {
				if uid := effectiveUID(admitted, c); uid == nil || *uid != uidMin+7 {
					t.Errorf("container %s runs as %v, want the pod's %d", c.Name, deref(uid), uidMin+7)
				}
			}
		})
	}
}

func TestRestrictedV2RefusesAHostPathVolume(t *testing.T) {
	for _, sts := range injectedExamples(t) {
		t.Run(sts.Namespace+"/"+sts.Name, func(t *testing.T) {
			pod := podOf(sts)
			pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{
				Name:         "host",
				VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/lib/host-data"}},
			})
			expectRefused(t, pod, "hostPath volumes are not allowed")
		})
	}
}

// admit runs the SCC admission plugin's steps for a pod created in its
// namespace by the namespace's default service account: the SCC matcher
// (restricted-v2 is the one SCC known, usable through the system:authenticated
// binding), providers resolved from the namespace's annotations, then
// AssignSecurityContext. It returns the pod as the SCC mutated it.
func admit(t *testing.T, v1pod *corev1.Pod) (*coreapi.Pod, field.ErrorList) {
	t.Helper()
	ctx := context.Background()
	ns := v1pod.Namespace

	scc := restrictedV2()
	sccdefaults.SetDefaults_SCC(scc) // as the API server stores it
	sccs := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	must(t, sccs.Add(scc))
	namespaces := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	must(t, namespaces.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns,
		Annotations: map[string]string{
			"openshift.io/sa.scc.uid-range":           uidRange,
			"openshift.io/sa.scc.supplemental-groups": supplementalGroups,
			"openshift.io/sa.scc.mcs":                 mcsLevel,
		},
	}}))

	sa := v1pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	requester := &user.DefaultInfo{
		Name:   serviceaccount.MakeUsername(ns, sa),
		Groups: append(serviceaccount.MakeGroupNames(ns), user.AllAuthenticated),
	}
	matcher := sccmatching.NewDefaultSCCMatcher(securityv1listers.NewSecurityContextConstraintsLister(sccs), authorizeRestrictedV2{})
	applicable, err := matcher.FindApplicableSCCs(ctx, ns, requester)
	must(t, err)
	if len(applicable) != 1 || applicable[0].Name != "restricted-v2" {
		t.Fatalf("SCCs usable by %s: %d, want restricted-v2 alone", requester.Name, len(applicable))
	}
	providers, errs := sccmatching.CreateProvidersFromConstraints(ctx, ns, applicable, corev1listers.NewNamespaceLister(namespaces))
	must(t, errors.Join(errs...))

	// The API server defaults a pod when it decodes it, then admission sees
	// the internal type.
	defaulted := v1pod.DeepCopy()
	corev1conversion.SetObjectDefaults_Pod(defaulted)
	pod := &coreapi.Pod{}
	must(t, corev1conversion.Convert_v1_Pod_To_core_Pod(defaulted, pod, nil))
	verdict := sccmatching.AssignSecurityContext(providers[0], pod, field.NewPath(fmt.Sprintf("provider %s: ", providers[0].GetSCCName())))
	return pod, verdict
}

// authorizeRestrictedV2 stands in for RBAC with OpenShift's default binding of
// the ClusterRole system:openshift:scc:restricted-v2 ("use" on that SCC) to the
// group system:authenticated; it denies everything else.
type authorizeRestrictedV2 struct{}

func (authorizeRestrictedV2) Authorize(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	if a.GetVerb() == "use" && a.GetAPIGroup() == "security.openshift.io" &&
		a.GetResource() == "securitycontextconstraints" && a.GetName() == "restricted-v2" &&
		slices.Contains(a.GetUser().GetGroups(), user.AllAuthenticated) {
		return authorizer.DecisionAllow, "system:openshift:scc:restricted-v2 is bound to system:authenticated", nil
	}
	return authorizer.DecisionDeny, "", nil
}

func expectRefused(t *testing.T, pod *corev1.Pod, wants ...string) {
	t.Helper()
	_, errs := admit(t, pod)
	if len(errs) == 0 {
		t.Fatalf("restricted-v2 admitted a pod it must refuse")
	}
	msg := errs.ToAggregate().Error()
	for _, want := range wants {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal does not mention %q:\n%s", want, msg)
		}
	}
	t.Logf("refused as expected: %s", msg)
}

// expectNamespaceAllocation checks that every container of an admitted pod
// runs with a UID from the namespace's range, and the pod with its fsGroup,
// SELinux level and the runtime/default seccomp profile.
func expectNamespaceAllocation(t *testing.T, pod *coreapi.Pod) {
	t.Helper()
	psc := pod.Spec.SecurityContext
	if psc == nil {
		t.Fatal("the admitted pod has no securityContext")
	}
	if psc.FSGroup == nil || *psc.FSGroup != uidMin {
		t.Errorf("fsGroup %v, want %d (the first of openshift.io/sa.scc.supplemental-groups)", deref(psc.FSGroup), uidMin)
	}
	if psc.SELinuxOptions == nil || psc.SELinuxOptions.Level != mcsLevel {
		t.Errorf("SELinux options %+v, want level %s", psc.SELinuxOptions, mcsLevel)
	}
	containers := containersOf(pod)
	if len(containers) < 2 {
		t.Fatalf("the pod has %d containers; the injected init container is missing", len(containers))
	}
	for _, c := range containers {
		uid := effectiveUID(pod, c)
		if uid == nil || *uid < uidMin || *uid > uidMax {
			t.Errorf("container %s runs as UID %v, outside %s", c.Name, deref(uid), uidRange)
		}
		seccomp := psc.SeccompProfile
		if c.SecurityContext != nil && c.SecurityContext.SeccompProfile != nil {
			seccomp = c.SecurityContext.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != coreapi.SeccompProfileTypeRuntimeDefault {
			t.Errorf("container %s seccomp profile %+v, want RuntimeDefault", c.Name, seccomp)
		}
		t.Logf("container %s: UID %d", c.Name, deref(uid))
	}
}

func containersOf(pod *coreapi.Pod) []*coreapi.Container {
	var all []*coreapi.Container
	for i := range pod.Spec.InitContainers {
		all = append(all, &pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		all = append(all, &pod.Spec.Containers[i])
	}
	return all
}

func effectiveUID(pod *coreapi.Pod, c *coreapi.Container) *int64 {
	if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
		return c.SecurityContext.RunAsUser
	}
	if pod.Spec.SecurityContext != nil {
		return pod.Spec.SecurityContext.RunAsUser
	}
	return nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
