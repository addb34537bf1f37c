// Package cluster starts and stops the real Kubernetes test cluster: etcd and the control plane
// on the host, and nodes that each run a kubelet, containerd (with runc and the CNI plugins) and
// kube-proxy in a network and mount namespace of their own. Every file lives under one state
// folder; the machine-wide names (network namespaces, the bridge, the cgroup root, addresses)
// derive from the cluster's index (Names), kept in the state folder, so that several clusters
// run side by side and a later start finds and removes what a killed run left.
package cluster

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MaxClusters is how many clusters may run on one machine at a time (indices 0 to 9).
const MaxClusters = 10

// Names are the machine-wide names and addresses of the cluster with one index.
type Names struct{ Index int }

// Bridge is the host side of the cluster network: the control plane listens on its address and
// every node's veth is enslaved to it.
func (n Names) Bridge() string { return fmt.Sprintf("nvk8s%d", n.Index) }

// NetnsPrefix names the nodes' network namespaces (ip netns).
func (n Names) NetnsPrefix() string { return fmt.Sprintf("nvdra-k8s%d-", n.Index) }

// vethPrefix names the host ends of the nodes' veth pairs.
func (n Names) vethPrefix() string { return fmt.Sprintf("nvk8s%dh", n.Index) }

// CgroupRoot is the cgroup (in every hierarchy) that holds every process the cluster starts.
func (n Names) CgroupRoot() string { return fmt.Sprintf("nvdra-k8s%d", n.Index) }

// Record points at the state folder of the cluster that last used this index, so that a start
// with another folder still finds a killed run's mounts.
func (n Names) Record() string { return fmt.Sprintf("/run/nvdra-k8s%d.state", n.Index) }

func (n Names) subnetPrefix() string { return fmt.Sprintf("10.240.%d.", n.Index) }

// HostIP is the control plane's address (on the bridge).
func (n Names) HostIP() string { return n.subnetPrefix() + "1" }

// ClusterCIDR holds the nodes' pod CIDRs (routed on the host, so distinct per cluster).
func (n Names) ClusterCIDR() string { return fmt.Sprintf("10.%d.0.0/16", 200+n.Index) }

func (n Names) controlPlaneCgroup() string { return n.CgroupRoot() + "/control-plane" }

// URL is https://HostIP:port.
func (n Names) URL(port int) string {
	return "https://" + net.JoinHostPort(n.HostIP(), strconv.Itoa(port))
}

const (
	serviceCIDR   = "10.96.0.0/16"
	kubernetesSvc = "10.96.0.1"
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
	N     Names  // the cluster's machine-wide names
}

// ReadLayout is the layout of a state folder a cluster ran in, with the index it ran under
// (false when no cluster ever started there).
func ReadLayout(state string) (Layout, bool) {
	l := Layout{State: state}
	data, err := os.ReadFile(l.IndexFile())
	if err != nil {
		return l, false
	}
	i, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || i < 0 || i >= MaxClusters {
		return l, false
	}
	l.N = Names{Index: i}
	return l, true
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
func (l Layout) IndexFile() string     { return l.path("index") }
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
	N     Names
}

func (n Node) IP() net.IP        { return net.ParseIP(fmt.Sprintf("%s%d", n.N.subnetPrefix(), 10+n.Index)) }
func (n Node) Netns() string     { return n.N.NetnsPrefix() + n.Name }
func (n Node) HostVeth() string  { return fmt.Sprintf("%s%d", n.N.vethPrefix(), n.Index) }
func (n Node) Cgroup() string    { return n.N.CgroupRoot() + "/" + n.Name }
func (n Node) SysCgroup() string { return n.N.CgroupRoot() + "/" + n.Name + ".system" }

// NodeName is the name of the i-th node (1-based).
func NodeName(i int) string { return fmt.Sprintf("node-%d", i) }
