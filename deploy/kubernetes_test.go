package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// rendered is what `kubectl apply -k dir` would apply, decoded into the real API types with
// unknown fields rejected (a misspelt field fails the test instead of being dropped by the
// cluster).
type rendered struct {
	deployments     []appsv1.Deployment
	statefulSets    []appsv1.StatefulSet
	services        []corev1.Service
	serviceMonitors []monitoringv1.ServiceMonitor
	rules           []monitoringv1.PrometheusRule
}

// add appends a zero T to list and returns it, to decode into.
func add[T any](list *[]T) *T {
	*list = append(*list, *new(T))
	return &(*list)[len(*list)-1]
}

func render(t *testing.T, dir string) rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	var out rendered
	for _, r := range resources.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var into any
		switch r.GetKind() {
		case "Deployment":
			into = add(&out.deployments)
		case "StatefulSet":
			into = add(&out.statefulSets)
		case "Service":
			into = add(&out.services)
		case "ServiceMonitor":
			into = add(&out.serviceMonitors)
		case "PrometheusRule":
			into = add(&out.rules)
		default:
			t.Fatalf("%s renders an unexpected %s", dir, r.GetKind())
		}
		if err := yaml.UnmarshalStrict(b, into); err != nil {
			t.Fatalf("%s: %s %s does not decode strictly into its API type: %v", dir, r.GetKind(), r.GetName(), err)
		}
	}
	return out
}

// checkPod checks what every exporter pod needs: non-root, read-only, probes on the exporter's
// endpoints, memory bounds, and the key from a mounted secret file, never in the args.
func checkPod(t *testing.T, what string, pod corev1.PodSpec) corev1.Container {
	t.Helper()
	if len(pod.Containers) != 1 || pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Fatalf("%s: pod spec %+v", what, pod)
	}
	c := pod.Containers[0]
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/-/healthy" ||
		c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/-/ready" {
		t.Errorf("%s: probes %+v %+v", what, c.LivenessProbe, c.ReadinessProbe)
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: container securityContext %+v", what, sc)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: resources %+v", what, c.Resources)
	}
	keyFile := ""
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--activepieces.api-key-file="); ok {
			keyFile = v
		}
		if v, ok := strings.CutPrefix(a, "--activepieces.password-file="); ok {
			keyFile = v // Community Edition: the user's password, like the key
		}
		if strings.Contains(a, "sk-") {
			t.Errorf("%s: an API key in the args: %s", what, a)
		}
	}
	for _, e := range c.Env {
		if e.Name == "ACTIVEPIECES_API_KEY" && e.Value != "" {
			t.Errorf("%s: an API key in the environment", what)
		}
		if e.Name == "ACTIVEPIECES_EXPORTER_API_KEY_FILE" || e.Name == "ACTIVEPIECES_API_KEY_FILE" {
			keyFile = e.Value
		}
	}
	mounted := slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.MountPath == filepath.Dir(keyFile) && slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
			return v.Name == m.Name && v.Secret != nil && v.Secret.SecretName != ""
		})
	})
	if keyFile == "" || !mounted {
		t.Errorf("%s: the key must come from a mounted secret file: args %v mounts %+v", what, c.Args, c.VolumeMounts)
	}
	return c
}

// checkMonitoring: the ServiceMonitor selects the exporter's Service on its port, and the
// PrometheusRule holds every rule of the rules files.
func checkMonitoring(t *testing.T, what string, r rendered) {
	t.Helper()
	if len(r.serviceMonitors) != 1 || len(r.rules) != 1 {
		t.Fatalf("%s: %d ServiceMonitors and %d PrometheusRules, want 1 and 1", what, len(r.serviceMonitors), len(r.rules))
	}
	sm := r.serviceMonitors[0]
	selected := 0
	for _, svc := range r.services {
		match := len(sm.Spec.Selector.MatchLabels) > 0
		for k, v := range sm.Spec.Selector.MatchLabels {
			match = match && svc.Labels[k] == v
		}
		if !match {
			continue
		}
		selected++
		for _, ep := range sm.Spec.Endpoints {
			if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
				t.Errorf("%s: ServiceMonitor endpoint port %q is not a port of Service %s", what, ep.Port, svc.Name)
			}
		}
	}
	if selected != 1 {
		t.Errorf("%s: the ServiceMonitor selects %d Services, want exactly 1 (each target scraped once)", what, selected)
	}
	n := 0
	for _, g := range r.rules[0].Spec.Groups {
		n += len(g.Rules)
	}
	if want := len(ruleNames(t, "prometheus/alerts.yml", "alert")) + len(ruleNames(t, "prometheus/recording.yml", "record")); n != want {
		t.Errorf("%s: PrometheusRule has %d rules, the rules files %d", what, n, want)
	}
}

func TestKubernetesManifests(t *testing.T) {
	r := render(t, "kubernetes")
	if len(r.deployments) != 1 || len(r.statefulSets) != 0 || len(r.services) != 1 {
		t.Fatalf("kubernetes renders %d Deployments, %d StatefulSets, %d Services", len(r.deployments), len(r.statefulSets), len(r.services))
	}
	d := r.deployments[0]
	if d.Spec.Replicas != nil && *d.Spec.Replicas != 1 {
		t.Errorf("the unsharded Deployment has %d replicas: two would count every run twice in sum()", *d.Spec.Replicas)
	}
	checkPod(t, "Deployment", d.Spec.Template.Spec)
	checkMonitoring(t, "kubernetes", r)
	// Every manifest belongs to a kustomization (rendering proves the listed ones exist).
	err := filepath.WalkDir("kubernetes", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Base(path) == "kustomization.yaml" {
			return err
		}
		kust, err := os.ReadFile(filepath.Join(filepath.Dir(path), "kustomization.yaml"))
		if err != nil {
			return err
		}
		if !strings.Contains(string(kust), "- "+filepath.Base(path)) {
			t.Errorf("%s is not listed in its kustomization.yaml", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The Community overlay signs in as a user: the email in the args, the password from the
// mounted Secret as a file, and no API key.
func TestCommunityManifests(t *testing.T) {
	r := render(t, "kubernetes/community")
	if len(r.deployments) != 1 {
		t.Fatalf("kubernetes/community renders %d Deployments", len(r.deployments))
	}
	c := checkPod(t, "kubernetes/community", r.deployments[0].Spec.Template.Spec)
	args := strings.Join(c.Args, " ")
	if !strings.Contains(args, "--activepieces.email=") || !strings.Contains(args, "--activepieces.password-file=/etc/activepieces/password") ||
		strings.Contains(args, "api-key") {
		t.Errorf("kubernetes/community args %v: want an email and a password file, no API key", c.Args)
	}
	checkMonitoring(t, "kubernetes/community", r)
}

func TestShardedStatefulSet(t *testing.T) {
	r := render(t, "kubernetes/sharded")
	if len(r.statefulSets) != 1 || len(r.deployments) != 0 {
		t.Fatalf("kubernetes/sharded renders %d StatefulSets and %d Deployments", len(r.statefulSets), len(r.deployments))
	}
	ss := r.statefulSets[0]
	c := checkPod(t, "StatefulSet", ss.Spec.Template.Spec)
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if ss.Spec.Replicas == nil || env["ACTIVEPIECES_EXPORTER_SHARD_COUNT"] != fmt.Sprint(*ss.Spec.Replicas) {
		t.Errorf("shard count %q differs from replicas %v", env["ACTIVEPIECES_EXPORTER_SHARD_COUNT"], ss.Spec.Replicas)
	}
	if env["ACTIVEPIECES_EXPORTER_SHARD_INDEX"] != "metadata.labels['apps.kubernetes.io/pod-index']" {
		t.Errorf("shard index not from the pod ordinal: %q", env["ACTIVEPIECES_EXPORTER_SHARD_INDEX"])
	}
	headless := slices.IndexFunc(r.services, func(s corev1.Service) bool { return s.Name == ss.Spec.ServiceName })
	if headless < 0 || r.services[headless].Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("the StatefulSet's service %q is not a headless Service of the layout", ss.Spec.ServiceName)
	}
	checkMonitoring(t, "kubernetes/sharded", r)
}
