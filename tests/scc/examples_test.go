package scc

// The pods under test: the examples as on OpenShift, what `s3-seed inject`
// makes of them, and pod 0 of each injected StatefulSet.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// podOf makes pod 0 of a StatefulSet as the StatefulSet controller does
// (newStatefulSetPod in k8s.io/kubernetes/pkg/controller/statefulset): the
// template's metadata and spec, the pod's identity, and a persistentVolumeClaim
// volume per volumeClaimTemplate in place of any pod volume of that name.
func podOf(sts *appsv1.StatefulSet) *corev1.Pod {
	name := sts.Name + "-0"
	labels := map[string]string{
		"statefulset.kubernetes.io/pod-name": name,
		"apps.kubernetes.io/pod-index":       "0",
	}
	for k, v := range sts.Spec.Template.Labels {
		labels[k] = v
	}
	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   sts.Namespace,
			Labels:      labels,
			Annotations: sts.Spec.Template.Annotations,
		},
		Spec: *sts.Spec.Template.Spec.DeepCopy(),
	}
	pod.Spec.Hostname = name
	pod.Spec.Subdomain = sts.Spec.ServiceName
	for _, claim := range sts.Spec.VolumeClaimTemplates {
		volume := corev1.Volume{Name: claim.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim.Name + "-" + name},
		}}
		i := slices.IndexFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == claim.Name })
		if i >= 0 {
			pod.Spec.Volumes[i] = volume
		} else {
			pod.Spec.Volumes = append(pod.Spec.Volumes, volume)
		}
	}
	return pod
}

// injectedExamples runs `s3-seed inject` on every example and returns the
// StatefulSets it injected (at least one per example file).
func injectedExamples(t *testing.T) []*appsv1.StatefulSet {
	t.Helper()
	bin := s3SeedBinary(t)
	files, err := filepath.Glob("../../examples/*.yaml")
	must(t, err)
	if len(files) == 0 {
		t.Fatal("no examples/*.yaml")
	}
	var all []*appsv1.StatefulSet
	for _, file := range files {
		input := filepath.Join(t.TempDir(), filepath.Base(file))
		must(t, os.WriteFile(input, asOnOpenShift(t, file), 0o644))
		out, err := exec.Command(bin, "inject", "-f", input).Output()
		if err != nil {
			t.Fatalf("s3-seed inject -f %s: %v\n%s", file, err, stderrOf(err))
		}
		found := 0
		for _, sts := range statefulSets(t, out) {
			if !injected(sts) {
				continue
			}
			if sts.Namespace == "" {
				sts.Namespace = "default"
			}
			all = append(all, sts)
			found++
		}
		if found == 0 {
			t.Fatalf("s3-seed inject -f %s injected no StatefulSet", file)
		}
	}
	return all
}

// asOnOpenShift returns an example's manifests with the user and group IDs
// its StatefulSets pin (pod runAsUser, runAsGroup, fsGroup,
// supplementalGroups; container runAsUser, runAsGroup) removed, as they are
// left out on OpenShift, where restricted-v2 assigns them from the namespace.
// Other documents are kept byte for byte.
func asOnOpenShift(t *testing.T, file string) []byte {
	t.Helper()
	raw, err := os.ReadFile(file)
	must(t, err)
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	var docs [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		must(t, err)
		var obj map[string]any
		must(t, yaml.Unmarshal(doc, &obj))
		if obj == nil || obj["apiVersion"] != "apps/v1" || obj["kind"] != "StatefulSet" {
			docs = append(docs, doc)
			continue
		}
		spec := dig(obj, "spec", "template", "spec")
		removed := drop(dig(spec, "securityContext"), "runAsUser", "runAsGroup", "fsGroup", "supplementalGroups")
		for _, list := range []string{"initContainers", "containers"} {
			containers, _ := spec[list].([]any)
			for _, c := range containers {
				if c, ok := c.(map[string]any); ok {
					removed = append(removed, drop(dig(c, "securityContext"), "runAsUser", "runAsGroup")...)
				}
			}
		}
		t.Logf("%s: StatefulSet %v without its pinned IDs %v", filepath.Base(file), dig(obj, "metadata")["name"], removed)
		out, err := yaml.Marshal(obj)
		must(t, err)
		docs = append(docs, out)
	}
	return bytes.Join(docs, []byte("\n---\n"))
}

func dig(obj map[string]any, path ...string) map[string]any {
	for _, key := range path {
		next, _ := obj[key].(map[string]any)
		if next == nil {
			return map[string]any{}
		}
		obj = next
	}
	return obj
}

func drop(obj map[string]any, keys ...string) []string {
	var removed []string
	for _, key := range keys {
		if v, ok := obj[key]; ok {
			removed = append(removed, fmt.Sprintf("%s=%v", key, v))
			delete(obj, key)
		}
	}
	return removed
}

// injected tells whether an init container runs s3-seed sync (it reads its
// sources from S3_SEED_SOURCE and S3_SEED_SOURCES).
func injected(sts *appsv1.StatefulSet) bool {
	return slices.ContainsFunc(sts.Spec.Template.Spec.InitContainers, injectedContainer)
}

func injectedContainer(c corev1.Container) bool {
	return slices.ContainsFunc(c.Env, func(env corev1.EnvVar) bool {
		return env.Name == "S3_SEED_SOURCE" || env.Name == "S3_SEED_SOURCES"
	})
}

func statefulSets(t *testing.T, manifests []byte) []*appsv1.StatefulSet {
	t.Helper()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(manifests)))
	var all []*appsv1.StatefulSet
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return all
		}
		must(t, err)
		var meta metav1.TypeMeta
		must(t, yaml.Unmarshal(doc, &meta))
		if meta.APIVersion != "apps/v1" || meta.Kind != "StatefulSet" {
			continue
		}
		sts := &appsv1.StatefulSet{}
		must(t, yaml.UnmarshalStrict(doc, sts))
		all = append(all, sts)
	}
}

func s3SeedBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("S3_SEED_BIN"); bin != "" {
		return bin
	}
	root, err := filepath.Abs("../..")
	must(t, err)
	build := exec.Command("cargo", "build", "--release", "--locked", "--quiet")
	build.Dir = root
	build.Stderr = os.Stderr
	must(t, build.Run())
	return filepath.Join(root, "target", "release", "s3-seed")
}

func stderrOf(err error) string {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(exit.Stderr)
	}
	return ""
}
