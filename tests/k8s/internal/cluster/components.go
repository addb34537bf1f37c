package cluster

import (
	"fmt"
	"net"

	"nvdra/tests/k8s/internal/pki"
)

// The command lines of the cluster's programs. Control-plane programs run on the host in the
// cgroup <cgroup root>/control-plane; node programs run inside their node's mount and network
// namespaces (nsenter) in the node's system cgroup. Every program goes through this binary's
// _cgexec, which joins the cgroup and then execs the program, so nothing escapes the cleanup.

func (c *Cluster) controlPlaneArgv(program string, args ...string) []string {
	return append([]string{c.Self, "_cgexec", "--cgroup", c.L.N.controlPlaneCgroup(), "--", program}, args...)
}

func (c *Cluster) nodeArgv(n Node, program string, args ...string) []string {
	argv := []string{"nsenter", "--mount=" + c.L.MountNamespace(n.Name), "--net=/run/netns/" + n.Netns(),
		"--", c.Self, "_cgexec", "--cgroup", n.SysCgroup(), "--", program}
	return append(argv, args...)
}

// APIServerURL is where kube-apiserver listens (the bridge address, so that nodes and pods reach
// it and no other program's loopback port can collide with it).
func (c *Cluster) APIServerURL() string { return c.L.N.URL(apiserverPort) }

// writePKI issues every certificate and kubeconfig of the cluster.
func (c *Cluster) writePKI() error {
	l := c.L
	ca, err := pki.NewCA(l.PKI(), "nvdra-k8s-ca")
	if err != nil {
		return err
	}
	if err := pki.WriteServiceAccountKey(l.PKI()); err != nil {
		return err
	}
	host := net.ParseIP(c.L.N.HostIP())
	issues := map[string]pki.Identity{
		"etcd":                  {CommonName: "etcd", IPs: []net.IP{host}, Server: true, Client: true},
		"apiserver-etcd-client": {CommonName: "kube-apiserver-etcd-client", Client: true},
		"apiserver": {CommonName: "kube-apiserver", Server: true,
			IPs: []net.IP{host, net.ParseIP(kubernetesSvc), net.ParseIP("127.0.0.1")},
			DNSNames: []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc",
				"kubernetes.default.svc.cluster.local", "localhost"}},
		"apiserver-kubelet-client": {CommonName: "kube-apiserver-kubelet-client",
			Organization: []string{"system:masters"}, Client: true},
		"admin":              {CommonName: "kubernetes-admin", Organization: []string{"system:masters"}, Client: true},
		"controller-manager": {CommonName: "system:kube-controller-manager", Client: true, Server: true, IPs: []net.IP{host}},
		"scheduler":          {CommonName: "system:kube-scheduler", Client: true, Server: true, IPs: []net.IP{host}},
		"kube-proxy":         {CommonName: "system:kube-proxy", Client: true},
	}
	for _, n := range c.Nodes {
		issues["kubelet-client-"+n.Name] = pki.Identity{CommonName: "system:node:" + n.Name,
			Organization: []string{"system:nodes"}, Client: true}
		issues["kubelet-"+n.Name] = pki.Identity{CommonName: n.Name, DNSNames: []string{n.Name},
			IPs: []net.IP{n.IP()}, Server: true}
	}
	for name, id := range issues {
		if err := ca.Issue(l.PKI(), name, id); err != nil {
			return fmt.Errorf("issue %s certificate: %w", name, err)
		}
	}
	kubeconfigs := map[string]string{
		"admin": "kubernetes-admin", "controller-manager": "system:kube-controller-manager",
		"scheduler": "system:kube-scheduler", "kube-proxy": "system:kube-proxy",
	}
	for name, user := range kubeconfigs {
		if err := WriteKubeconfig(l.Kubeconfig(name), c.APIServerURL(), l.Cert("ca"), l.Cert(name), l.Key(name), user); err != nil {
			return err
		}
	}
	for _, n := range c.Nodes {
		if err := WriteKubeconfig(l.Kubeconfig("kubelet-"+n.Name), c.APIServerURL(), l.Cert("ca"),
			l.Cert("kubelet-client-"+n.Name), l.Key("kubelet-client-"+n.Name), "system:node:"+n.Name); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) etcd() *Process {
	l := c.L
	return &Process{Name: "etcd", Log: l.Log("etcd"), Argv: c.controlPlaneArgv(l.Binary("etcd"),
		"--name=nvdra-k8s", "--data-dir="+l.EtcdData(),
		"--listen-client-urls="+l.N.URL(etcdPort), "--advertise-client-urls="+l.N.URL(etcdPort),
		"--listen-peer-urls="+l.N.URL(etcdPeerPort), "--initial-advertise-peer-urls="+l.N.URL(etcdPeerPort),
		"--initial-cluster=nvdra-k8s="+l.N.URL(etcdPeerPort),
		"--cert-file="+l.Cert("etcd"), "--key-file="+l.Key("etcd"),
		"--client-cert-auth", "--trusted-ca-file="+l.Cert("ca"),
		"--peer-cert-file="+l.Cert("etcd"), "--peer-key-file="+l.Key("etcd"),
		"--peer-client-cert-auth", "--peer-trusted-ca-file="+l.Cert("ca"),
		"--quota-backend-bytes=2147483648", "--log-level=warn")}
}

func (c *Cluster) apiserver() *Process {
	l := c.L
	return &Process{Name: "kube-apiserver", Log: l.Log("kube-apiserver"), Argv: c.controlPlaneArgv(l.Binary("kube"),
		"kube-apiserver",
		"--etcd-servers="+l.N.URL(etcdPort), "--etcd-cafile="+l.Cert("ca"),
		"--etcd-certfile="+l.Cert("apiserver-etcd-client"), "--etcd-keyfile="+l.Key("apiserver-etcd-client"),
		"--bind-address="+l.N.HostIP(), "--advertise-address="+l.N.HostIP(), fmt.Sprintf("--secure-port=%d", apiserverPort),
		"--tls-cert-file="+l.Cert("apiserver"), "--tls-private-key-file="+l.Key("apiserver"),
		"--client-ca-file="+l.Cert("ca"),
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction,OwnerReferencesPermissionEnforcement",
		"--allow-privileged=true",
		"--service-cluster-ip-range="+serviceCIDR,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+l.PKI()+"/sa.pub",
		"--service-account-signing-key-file="+l.PKI()+"/sa.key",
		"--kubelet-client-certificate="+l.Cert("apiserver-kubelet-client"),
		"--kubelet-client-key="+l.Key("apiserver-kubelet-client"),
		"--kubelet-certificate-authority="+l.Cert("ca"),
		"--kubelet-preferred-address-types=InternalIP",
		"--runtime-config="+RuntimeConfig,
		"--feature-gates="+featureGateFlag(),
		"--profiling=false", "--v=1")}
}

func (c *Cluster) controllerManager() *Process {
	l := c.L
	kc := l.Kubeconfig("controller-manager")
	return &Process{Name: "kube-controller-manager", Log: l.Log("kube-controller-manager"),
		Argv: c.controlPlaneArgv(l.Binary("kube"), "kube-controller-manager",
			"--kubeconfig="+kc, "--authentication-kubeconfig="+kc, "--authorization-kubeconfig="+kc,
			"--bind-address="+l.N.HostIP(), fmt.Sprintf("--secure-port=%d", cmPort),
			"--tls-cert-file="+l.Cert("controller-manager"), "--tls-private-key-file="+l.Key("controller-manager"),
			"--client-ca-file="+l.Cert("ca"),
			"--use-service-account-credentials=true",
			"--service-account-private-key-file="+l.PKI()+"/sa.key",
			"--root-ca-file="+l.Cert("ca"),
			"--cluster-signing-cert-file="+l.Cert("ca"), "--cluster-signing-key-file="+l.Key("ca"),
			"--allocate-node-cidrs=true", "--cluster-cidr="+l.N.ClusterCIDR(), "--node-cidr-mask-size=24",
			"--service-cluster-ip-range="+serviceCIDR,
			// A node whose kubelet stopped turns NotReady after this long (a real cluster's
			// default is 50 s; tests should not wait that long).
			"--node-monitor-grace-period=25s", "--node-monitor-period=2s",
			"--feature-gates="+featureGateFlag(),
			"--profiling=false", "--v=1")}
}

func (c *Cluster) scheduler() *Process {
	l := c.L
	kc := l.Kubeconfig("scheduler")
	return &Process{Name: "kube-scheduler", Log: l.Log("kube-scheduler"),
		Argv: c.controlPlaneArgv(l.Binary("kube"), "kube-scheduler",
			"--kubeconfig="+kc, "--authentication-kubeconfig="+kc, "--authorization-kubeconfig="+kc,
			"--bind-address="+l.N.HostIP(), fmt.Sprintf("--secure-port=%d", schedulerPort),
			"--tls-cert-file="+l.Cert("scheduler"), "--tls-private-key-file="+l.Key("scheduler"),
			"--client-ca-file="+l.Cert("ca"),
			"--feature-gates="+featureGateFlag(),
			"--profiling=false", "--v=1")}
}

// pathEnv puts the build's binaries first on PATH: containerd looks its shim and runc up there.
func (c *Cluster) pathEnv() []string {
	return []string{"PATH=" + c.L.Bin + ":/usr/sbin:/usr/bin:/sbin:/bin"}
}

func (c *Cluster) containerd(n Node) *Process {
	l := c.L
	return &Process{Name: "containerd/" + n.Name, Log: l.Log(n.Name + "-containerd"), Env: c.pathEnv(), Restart: true,
		Argv: c.nodeArgv(n, l.Binary("containerd"), "--config", l.Inside().ContainerdConfig(), "--log-level", "warn")}
}

func (c *Cluster) kubelet(n Node) *Process {
	l := c.L
	return &Process{Name: "kubelet/" + n.Name, Log: l.Log(n.Name + "-kubelet"), Env: c.pathEnv(), Restart: true,
		Argv: c.nodeArgv(n, l.Binary("kube"), "kubelet",
			"--config="+l.Inside().KubeletConfig(),
			"--kubeconfig="+l.Kubeconfig("kubelet-"+n.Name),
			"--hostname-override="+n.Name, "--node-ip="+n.IP().String(),
			"--node-labels="+c.nodeLabels(n),
			"--v=1")}
}

func (c *Cluster) kubeProxy(n Node) *Process {
	l := c.L
	return &Process{Name: "kube-proxy/" + n.Name, Log: l.Log(n.Name + "-kube-proxy"), Env: c.pathEnv(), Restart: true,
		Argv: c.nodeArgv(n, l.Binary("kube"), "kube-proxy", "--config="+l.Inside().KubeProxyConfig(), "--v=1")}
}

// nodeLabels are the labels kubelet registers its node with; kubelet may only set its own
// labels outside the node-restriction prefixes, which these are.
func (c *Cluster) nodeLabels(n Node) string {
	return "nvdra.dev/test-node=true"
}
