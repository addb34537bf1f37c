// Package cluster starts and stops the real Kubernetes test cluster: etcd and the control plane
// on the host, and nodes that each run a kubelet, containerd (with runc and the CNI plugins) and
// kube-proxy in a network and mount namespace of their own. Every file lives under one state
// folder; the machine-wide names (network namespaces, the bridge, the cgroup root) all start with
// the prefixes below so that a later start can find and remove what a killed run left.
package cluster

import (
	"fmt"
	"net"
	"path/filepath"
)

const (
	// Bridge is the host side of the cluster network: the control plane listens on its address
	// and every node's veth is enslaved to it.
	Bridge = "nvk8s0"
	// NetnsPrefix names the nodes' network namespaces (ip netns).
	NetnsPrefix = "nvdra-k8s-"
	// VethPrefix names the host ends of the nodes' veth pairs.
	VethPrefix = "nvk8s-"
	// CgroupRoot is the cgroup (in every hierarchy) that holds every process the cluster starts.
	CgroupRoot = "nvdra-k8s"
	// RecordPath points at the state folder of the cluster last started on this machine, so that
	// a start with another folder still finds a killed run's mounts.
	RecordPath = "/run/nvdra-k8s.state"

	subnetPrefix  = "10.240.0."
	hostIP        = subnetPrefix + "1"
	serviceCIDR   = "10.96.0.0/16"
	kubernetesSvc = "10.96.0.1"
	clusterCIDR   = "10.244.0.0/16"
	apiserverPort = 6443
	etcdPort      = 2379
	etcdPeerPort  = 2380
	cmPort        = 10257
	schedulerPort = 10259
)

// Layout names every path of one cluster's state folder.
type Layout struct {
	State string // the state folder (absolute)
	Bin   string // the folder with the built binaries
}

func (l Layout) path(parts ...string) string {
	return filepath.Join(append([]string{l.State}, parts...)...)
}

func (l Layout) PKI() string                { return l.path("pki") }
func (l Layout) Cert(name string) string    { return l.path("pki", name+".crt") }
func (l Layout) Key(name string) string     { return l.path("pki", name+".key") }
func (l Layout) Kubeconfigs() string        { return l.path("kubeconfig") }
func (l Layout) AdminKubeconfig() string    { return l.path("kubeconfig", "admin.kubeconfig") }
func (l Layout) Kubeconfig(n string) string { return l.path("kubeconfig", n+".kubeconfig") }
func (l Layout) Logs() string               { return l.path("logs") }
func (l Layout) Log(name string) string     { return l.path("logs", name+".log") }
func (l Layout) EtcdData() string           { return l.path("etcd") }
func (l Layout) NamespaceFiles() string     { return l.path("ns") }
func (l Layout) MountNamespace(node string) string {
	return l.path("ns", node+".mnt")
}
func (l Layout) Lock() string          { return l.path("lock") }
func (l Layout) Ready() string         { return l.path("ready") }
func (l Layout) GuardedState() string  { return l.path("guarded-host-paths.json") }
func (l Layout) ControlSocket() string { return l.path("control.sock") }
func (l Layout) ResolvConf() string    { return l.path("resolv.conf") }
func (l Layout) Images() string        { return l.path("images") }

// NodeDir is a node's folder as the host sees it.
func (l Layout) NodeDir(node string) string { return l.path("nodes", node) }

func (l Layout) Binary(name string) string { return filepath.Join(l.Bin, name) }

// NodePaths names the paths of a node's folder, rooted either at the host's view (NodeDir) or at
// the node's own view (NodeMount).
type NodePaths struct{ Root string }

func (p NodePaths) join(parts ...string) string {
	return filepath.Join(append([]string{p.Root}, parts...)...)
}
func (p NodePaths) KubeletRoot() string      { return p.join("kubelet") }
func (p NodePaths) KubeletConfig() string    { return p.join("kubelet-config.yaml") }
func (p NodePaths) PodLogs() string          { return p.join("pod-logs") }
func (p NodePaths) ContainerdRoot() string   { return p.join("containerd", "root") }
func (p NodePaths) ContainerdState() string  { return p.join("containerd", "state") }
func (p NodePaths) ContainerdSocket() string { return p.join("containerd", "containerd.sock") }
func (p NodePaths) ContainerdConfig() string { return p.join("containerd", "config.toml") }
func (p NodePaths) RegistryConfig() string   { return p.join("containerd", "certs.d") }
func (p NodePaths) CNIConfDir() string       { return p.join("cni", "net.d") }
func (p NodePaths) CNITemplate() string      { return p.join("cni", "template.json") }
func (p NodePaths) CNIState() string         { return p.join("cni", "state") }
func (p NodePaths) CDIStatic() string        { return p.join("cdi", "static") }
func (p NodePaths) CDIDynamic() string       { return p.join("cdi", "dynamic") }
func (p NodePaths) Devices() string          { return p.join("dev") }
func (p NodePaths) KubeProxyConfig() string  { return p.join("kube-proxy.yaml") }
func (p NodePaths) DevicePluginDir() string  { return p.join("kubelet", "device-plugins") }
func (p NodePaths) PluginsRegistry() string  { return p.join("kubelet", "plugins_registry") }
func (p NodePaths) Plugins() string          { return p.join("kubelet", "plugins") }

// Host is a node's folder as the host sees it.
func (l Layout) Host(node string) NodePaths { return NodePaths{Root: l.NodeDir(node)} }

// Inside is a node's folder as its own processes see it (InsideNodeFolder).
func (l Layout) Inside() NodePaths { return NodePaths{Root: InsideNodeFolder} }

// Node is one worker of the test cluster.
type Node struct {
	Name  string
	Index int // 1-based
}

func (n Node) IP() net.IP        { return net.ParseIP(fmt.Sprintf("%s%d", subnetPrefix, 10+n.Index)) }
func (n Node) Netns() string     { return NetnsPrefix + n.Name }
func (n Node) HostVeth() string  { return fmt.Sprintf("%sh%d", VethPrefix, n.Index) }
func (n Node) Cgroup() string    { return CgroupRoot + "/" + n.Name }
func (n Node) SysCgroup() string { return CgroupRoot + "/" + n.Name + ".system" }

// NodeName is the name of the i-th node (1-based).
func NodeName(i int) string { return fmt.Sprintf("node-%d", i) }
