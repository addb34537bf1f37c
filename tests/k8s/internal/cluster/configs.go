package cluster

import (
	"fmt"
	"os"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	componentbaseconfig "k8s.io/component-base/config/v1alpha1"
	proxyconfig "k8s.io/kube-proxy/config/v1alpha1"
	kubeletconfig "k8s.io/kubelet/config/v1beta1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// FeatureGates are the gates every component starts with: the DRA features nvdra uses that this
// release does not turn on by default (beta and GA ones are on already).
var FeatureGates = map[string]bool{
	"DRAListTypeAttributes": true,
}

func featureGateFlag() string {
	var parts []string
	for gate, on := range FeatureGates {
		parts = append(parts, fmt.Sprintf("%s=%t", gate, on))
	}
	return strings.Join(parts, ",")
}

// RuntimeConfig serves the older resource.k8s.io versions too (off by default in this release),
// so manifests written for them still apply.
const RuntimeConfig = "resource.k8s.io/v1beta1=true,resource.k8s.io/v1beta2=true,resource.k8s.io/v1alpha3=true"

// WriteKubeconfig writes a kubeconfig that authenticates with a client certificate of the
// cluster's CA.
func WriteKubeconfig(path, server, caFile, certFile, keyFile, user string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["nvdra-k8s"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: caFile}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificate: certFile, ClientKey: keyFile}
	cfg.Contexts["nvdra-k8s"] = &clientcmdapi.Context{Cluster: "nvdra-k8s", AuthInfo: user}
	cfg.CurrentContext = "nvdra-k8s"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return err
	}
	return os.Chmod(path, 0o600)
}

func writeYAML(path string, obj any) error {
	data, err := yaml.Marshal(obj)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// WriteKubeletConfig writes a node's KubeletConfiguration (paths as the node sees them).
func WriteKubeletConfig(l Layout, n Node) error {
	in := l.Inside()
	cfg := kubeletconfig.KubeletConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: "kubelet.config.k8s.io/v1beta1", Kind: "KubeletConfiguration"},
		Address:  n.IP().String(),
		Authentication: kubeletconfig.KubeletAuthentication{
			X509:      kubeletconfig.KubeletX509Authentication{ClientCAFile: l.Cert("ca")},
			Webhook:   kubeletconfig.KubeletWebhookAuthentication{Enabled: ptr.To(true)},
			Anonymous: kubeletconfig.KubeletAnonymousAuthentication{Enabled: ptr.To(false)},
		},
		Authorization:      kubeletconfig.KubeletAuthorization{Mode: kubeletconfig.KubeletAuthorizationModeWebhook},
		TLSCertFile:        l.Cert("kubelet-" + n.Name),
		TLSPrivateKeyFile:  l.Key("kubelet-" + n.Name),
		ReadOnlyPort:       0,
		HealthzBindAddress: "127.0.0.1",
		HealthzPort:        ptr.To[int32](10248),
		CgroupDriver:       "cgroupfs",
		CgroupRoot:         "/" + n.Cgroup(),
		CgroupsPerQOS:      ptr.To(true),
		// The machine may run the hybrid cgroup layout; kubelet still supports cgroup v1 there.
		FailCgroupV1:             ptr.To(false),
		FailSwapOn:               ptr.To(false),
		ContainerRuntimeEndpoint: "unix://" + in.ContainerdSocket(),
		PodLogsDir:               in.PodLogs(),
		ResolverConfig:           ptr.To(l.ResolvConf()),
		// Every node shares the machine's disk: no node evicts pods or deletes the locally built
		// images (nothing can be pulled again) because the disk is fuller than a real node's.
		EvictionHard: map[string]string{
			"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
			"nodefs.inodesFree": "1%",
		},
		MergeDefaultEvictionSettings: ptr.To(false),
		ImageGCHighThresholdPercent:  ptr.To[int32](100),
		ImageGCLowThresholdPercent:   ptr.To[int32](99),
		SerializeImagePulls:          ptr.To(false),
		// kubelet would otherwise set the machine's kernel tunables (they are not per node).
		ProtectKernelDefaults:        false,
		FeatureGates:                 FeatureGates,
		NodeStatusUpdateFrequency:    metav1.Duration{Duration: 4 * time.Second},
		NodeStatusReportFrequency:    metav1.Duration{Duration: 20 * time.Second},
		NodeLeaseDurationSeconds:     20,
		SyncFrequency:                metav1.Duration{Duration: 10 * time.Second},
		RuntimeRequestTimeout:        metav1.Duration{Duration: 2 * time.Minute},
		ShutdownGracePeriod:          metav1.Duration{Duration: 0},
		EnableControllerAttachDetach: ptr.To(true),
		StaticPodPath:                "",
	}
	return writeYAML(l.Host(n.Name).KubeletConfig(), cfg)
}

// WriteKubeProxyConfig writes a node's kube-proxy configuration: nftables mode, and no change to
// the machine-wide conntrack table size (the nodes share one kernel).
func WriteKubeProxyConfig(l Layout, n Node) error {
	cfg := proxyconfig.KubeProxyConfiguration{
		TypeMeta:           metav1.TypeMeta{APIVersion: "kubeproxy.config.k8s.io/v1alpha1", Kind: "KubeProxyConfiguration"},
		ClientConnection:   componentbaseconfig.ClientConnectionConfiguration{Kubeconfig: l.Kubeconfig("kube-proxy")},
		HostnameOverride:   n.Name,
		BindAddress:        n.IP().String(),
		HealthzBindAddress: "127.0.0.1:10256",
		MetricsBindAddress: "127.0.0.1:10249",
		Mode:               "nftables",
		OOMScoreAdj:        ptr.To[int32](0), // see the kubelet's configuration
		ClusterCIDR:        l.N.ClusterCIDR(),
		Conntrack: proxyconfig.KubeProxyConntrackConfiguration{
			MaxPerCore:            ptr.To[int32](0),
			Min:                   ptr.To[int32](0),
			TCPEstablishedTimeout: &metav1.Duration{},
			TCPCloseWaitTimeout:   &metav1.Duration{},
		},
		FeatureGates: FeatureGates,
	}
	return writeYAML(l.Host(n.Name).KubeProxyConfig(), cfg)
}

// WriteContainerdConfig writes a node's containerd configuration: every path inside the node's
// folder, CDI specs read from the node's CDI folders, runc and the CNI plugins from the build,
// the CNI configuration rendered from the pod CIDR kubelet passes on, and no registry reachable
// (images are imported).
func WriteContainerdConfig(l Layout, n Node) error {
	in := l.Inside()
	config := fmt.Sprintf(`version = 3
root = %q
state = %q

[grpc]
  address = %q

[ttrpc]
  address = %q

[metrics]
  address = ""

[plugins."io.containerd.cri.v1.runtime"]
  # Sandboxes and Guaranteed pods ask for negative OOM scores; without CAP_SYS_RESOURCE (withheld
  # on this machine) runc could not set them, so they are kept at containerd's own score.
  restrict_oom_score_adj = true
  cdi_spec_dirs = [%q, "/var/run/cdi"]
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = %q
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [%q]
    conf_dir = %q
    conf_template = %q

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = %q
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = %q

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, in.ContainerdRoot(), in.ContainerdState(), in.ContainerdSocket(), in.ContainerdSocket()+".ttrpc",
		in.CDIStatic(), l.Binary("runc"), l.Binary("cni"), in.CNIConfDir(),
		in.CNITemplate(), SandboxImage, in.RegistryConfig(), in.join("containerd", "opt"))
	host := l.Host(n.Name)
	if err := os.WriteFile(host.ContainerdConfig(), []byte(config), 0o644); err != nil {
		return err
	}
	// The bridge plugin gives every pod an address from the node's pod CIDR (containerd fills it
	// in from what kubelet passes on); traffic to other nodes is routed, not masqueraded, so pods
	// see each other's real addresses.
	template := `{
  "cniVersion": "1.0.0",
  "name": "nvdra-k8s",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "` + in.CNIState() + `",
        "ranges": [[{"subnet": "{{.PodCIDR}}"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`
	return os.WriteFile(host.CNITemplate(), []byte(template), 0o644)
}

// SandboxImage is the pod sandbox ("pause") image every node's containerd is configured with.
const SandboxImage = "registry.k8s.io/pause:3.10"
