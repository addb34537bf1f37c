package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Cluster is one run of the test cluster.
type Cluster struct {
	L      Layout
	Self   string // this program (namespace and cgroup helper subcommands)
	Nodes  []Node
	Images []string // image archives imported into every node's containerd
	Log    io.Writer

	mu           sync.Mutex
	controlPlane []*Process // in start order
	nodeProcs    map[string]map[string]*Process
	lockFile     *os.File
	haveIndex    bool // the machine-wide names are this cluster's (chooseIndex ran)
	client       *kubernetes.Clientset
}

// New describes a cluster of nodeCount nodes in state, with binaries from bin.
func New(state, bin, self string, nodeCount int, images []string, log io.Writer) (*Cluster, error) {
	state, err := filepath.Abs(state)
	if err != nil {
		return nil, err
	}
	bin, err = filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	if nodeCount < 1 || nodeCount > 200 {
		return nil, fmt.Errorf("--nodes must be between 1 and 200, not %d", nodeCount)
	}
	c := &Cluster{L: Layout{State: state, Bin: bin}, Self: self, Images: images, Log: log,
		nodeProcs: map[string]map[string]*Process{}}
	for i := 1; i <= nodeCount; i++ {
		c.Nodes = append(c.Nodes, Node{Name: NodeName(i), Index: i})
	}
	return c, nil
}

func (c *Cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.Log, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// requiredBinaries are the programs a start needs from the build folder.
var requiredBinaries = []string{"kube", "etcd", "containerd", "containerd-shim-runc-v2", "ctr", "runc",
	"cni/bridge", "cni/host-local", "cni/loopback", "cni/portmap"}

// requiredTools are the machine's programs a start needs.
var requiredTools = []string{"ip", "nsenter", "unshare", "sysctl", "nft"}

func (c *Cluster) checkPrerequisites() error {
	if os.Geteuid() != 0 {
		return errors.New("the test cluster needs root: it creates network namespaces, mounts and cgroups")
	}
	var missing []string
	for _, b := range requiredBinaries {
		if _, err := os.Stat(c.L.Binary(b)); err != nil {
			missing = append(missing, c.L.Binary(b))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing binaries (build them with 'make k8s-build'): %s", strings.Join(missing, ", "))
	}
	for _, tool := range requiredTools {
		if _, err := lookPath(tool); err != nil {
			return fmt.Errorf("missing tool %q on this machine (scripts/install-deps.sh installs it)", tool)
		}
	}
	// Unix socket paths are limited to 107 bytes; tools on the host reach the nodes' sockets
	// through the state folder (the deepest: device plugins registering with kubelet).
	deepest := filepath.Join(c.L.Host(NodeName(len(c.Nodes))).DevicePluginDir(), "nvdra-k8s-test.sock")
	if len(deepest) > 107 {
		return fmt.Errorf("state folder %s is too deep: socket paths such as %s exceed the 107-byte limit of Unix sockets",
			c.L.State, deepest)
	}
	return nil
}

func lookPath(name string) (string, error) {
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// Up starts the whole cluster and returns once every node is Ready; the caller holds the state
// folder's lock (Lock).
func (c *Cluster) Up(ctx context.Context) error {
	if err := c.checkPrerequisites(); err != nil {
		return err
	}
	if err := c.chooseIndex(); err != nil {
		return err
	}
	if err := CleanLeftovers(c.L, c.Log); err != nil {
		return fmt.Errorf("removing what an earlier run left: %w", err)
	}
	if err := os.WriteFile(c.L.N.Record(), []byte(c.L.State), 0o644); err != nil {
		return err
	}
	if err := c.wipe(); err != nil {
		return err
	}
	// What the host's own kubelet/containerd paths look like now: a stop compares (Leftovers).
	guarded, _ := json.Marshal(GuardedState())
	if err := os.WriteFile(c.L.GuardedState(), guarded, 0o644); err != nil {
		return err
	}
	if err := c.writeFiles(); err != nil {
		return err
	}
	c.logf("cluster %d: bridge %s %s/24, pod CIDRs from %s", c.L.N.Index, c.L.N.Bridge(), c.L.N.HostIP(),
		c.L.N.ClusterCIDR())
	if err := SetupBridge(c.L.N); err != nil {
		return err
	}
	if err := checkPortsFree(c.L.N); err != nil {
		return err
	}
	if err := c.startRegistry(); err != nil {
		return err
	}
	for _, image := range c.Images {
		c.logf("registry: push %s", filepath.Base(image))
		if err := pushArchive(image, c.L.N); err != nil {
			return err
		}
	}
	if err := PrepareNamespaceFolder(c.L); err != nil {
		return err
	}
	if err := EnsureCgroup(c.L.N.controlPlaneCgroup()); err != nil {
		return err
	}
	if err := c.startControlPlane(ctx); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		if err := c.startNode(ctx, n); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	return c.waitNodesReady(ctx)
}

// Lock makes sure one orchestrator owns the state folder; the file also records its PID. Nothing
// in the folder may be changed before it succeeds.
func (c *Cluster) Lock() error {
	if err := os.MkdirAll(c.L.State, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(c.L.Lock(), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid, _ := os.ReadFile(c.L.Lock())
		f.Close()
		return fmt.Errorf("a cluster is already running in %s (pid %s); stop it with 'nvdra-k8s down --state %s'",
			c.L.State, strings.TrimSpace(string(pid)), c.L.State)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	c.lockFile = f
	return nil
}

// chooseIndex picks the cluster's index: the one this state folder ran under before (a killed
// run's leftovers are then found under the same names), else the lowest index that no other
// cluster holds. An index is held when its record names another folder whose orchestrator still
// runs, or when its bridge exists and no record says whose it is.
func (c *Cluster) chooseIndex() error {
	held := func(n Names) bool {
		other := recordedState(n)
		if other == "" {
			return linkExists(n.Bridge())
		}
		return other != c.L.State && RunningOrchestrator(Layout{State: other}) > 0
	}
	if previous, ok := ReadLayout(c.L.State); ok && !held(previous.N) {
		return c.setIndex(previous.N)
	}
	var busy []string
	for i := 0; i < MaxClusters; i++ {
		n := Names{Index: i}
		if held(n) {
			busy = append(busy, recordedState(n))
			continue
		}
		// A killed run of another folder may have left this index's names behind.
		if other := recordedState(n); other != "" && other != c.L.State {
			if err := CleanLeftovers(Layout{State: other, N: n}, c.Log); err != nil {
				return fmt.Errorf("removing what the killed cluster in %s left: %w", other, err)
			}
		}
		return c.setIndex(n)
	}
	return fmt.Errorf("all %d cluster slots of this machine are in use (%s); stop one with 'nvdra-k8s down --state DIR'",
		MaxClusters, strings.Join(busy, ", "))
}

func (c *Cluster) setIndex(n Names) error {
	c.L.N, c.haveIndex = n, true
	for i := range c.Nodes {
		c.Nodes[i].N = n
	}
	return os.WriteFile(c.L.IndexFile(), []byte(strconv.Itoa(n.Index)+"\n"), 0o644)
}

// checkPortsFree refuses to start when another program holds one of the control plane's ports:
// the bridge address is new, so only a listener on all addresses can hold them.
func checkPortsFree(n Names) error {
	for _, port := range []int{apiserverPort, etcdPort, etcdPeerPort, cmPort, schedulerPort, registryPort} {
		listener, err := net.Listen("tcp", net.JoinHostPort(n.HostIP(), strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("port %d is in use by another program: %w", port, err)
		}
		listener.Close()
	}
	return nil
}

// wipe removes an earlier run's state (every start makes a new cluster, as kind does); only the
// folders this program writes are removed, and the orchestrator's own log of this run is kept.
func (c *Cluster) wipe() error {
	l := c.L
	for _, dir := range []string{l.PKI(), l.Kubeconfigs(), l.EtcdData(), l.path("nodes"), l.NamespaceFiles(),
		l.ResolvConf(), l.ControlSocket(), l.GuardedState()} {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("removing the earlier run's %s: %w", dir, err)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(l.Logs(), "*.log"))
	for _, log := range logs {
		if log != l.Log("nvdra-k8s") {
			_ = os.Remove(log)
		}
	}
	return nil
}

func (c *Cluster) writeFiles() error {
	l := c.L
	for _, d := range []string{l.PKI(), l.Kubeconfigs(), l.Logs(), l.EtcdData()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	if err := c.writePKI(); err != nil {
		return err
	}
	// Pods get no cluster DNS; a resolver that answers nothing fails name lookups fast.
	if err := os.WriteFile(l.ResolvConf(), []byte("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"), 0o644); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		host := l.Host(n.Name)
		for _, d := range []string{host.KubeletRoot(), host.PodLogs(), host.ContainerdRoot(), host.ContainerdState(),
			host.RegistryConfig(), host.CNIConfDir(), host.CNIState(), host.CDIStatic(), host.CDIDynamic(), host.Devices()} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		if err := WriteKubeletConfig(l, n); err != nil {
			return err
		}
		if err := WriteKubeProxyConfig(l, n); err != nil {
			return err
		}
		if err := WriteContainerdConfig(l, n); err != nil {
			return err
		}
		if err := writeRegistryHosts(host.RegistryConfig(), l.N); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) startControlPlane(ctx context.Context) error {
	tlsClient, err := c.tlsClient("admin")
	if err != nil {
		return err
	}
	steps := []struct {
		proc  *Process
		ready string // HTTPS URL answering 200 once the component serves
	}{
		{c.etcd(), c.L.N.URL(etcdPort) + "/health"},
		{c.apiserver(), c.L.N.URL(apiserverPort) + "/readyz"},
		{c.controllerManager(), c.L.N.URL(cmPort) + "/healthz"},
		{c.scheduler(), c.L.N.URL(schedulerPort) + "/healthz"},
	}
	for _, step := range steps {
		c.logf("start %s", step.proc.Name)
		if err := step.proc.Start(); err != nil {
			return err
		}
		c.mu.Lock()
		c.controlPlane = append(c.controlPlane, step.proc)
		c.mu.Unlock()
		client := tlsClient
		if step.proc.Name == "etcd" {
			if client, err = c.tlsClient("apiserver-etcd-client"); err != nil {
				return err
			}
		}
		if err := waitHTTP(ctx, client, step.ready, step.proc, 90*time.Second); err != nil {
			return err
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.L.AdminKubeconfig())
	if err != nil {
		return err
	}
	c.client, err = kubernetes.NewForConfig(cfg)
	return err
}

func (c *Cluster) tlsClient(user string) (*http.Client, error) {
	caPEM, err := os.ReadFile(c.L.Cert("ca"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(c.L.Cert(user), c.L.Key(user))
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}, nil
}

// waitHTTP polls url until it answers 200, the process dies, or the timeout passes.
func waitHTTP(ctx context.Context, client *http.Client, url string, p *Process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		if !p.Running() {
			return fmt.Errorf("%s exited while starting (see %s)", p.Name, p.Log)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %s (see %s)", p.Name, timeout, last, p.Log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (c *Cluster) startNode(ctx context.Context, n Node) error {
	c.logf("node %s: network %s, mount namespace, cgroup /%s", n.Name, n.IP(), n.Cgroup())
	if err := SetupNodeNetwork(n); err != nil {
		return err
	}
	if err := CreateNodeMountNamespace(c.L, c.Self, n); err != nil {
		return err
	}
	// kubelet requires its cgroup root to exist before it starts.
	if err := EnsureCgroup(n.Cgroup()); err != nil {
		return err
	}
	procs := map[string]*Process{
		"containerd": c.containerd(n),
		"kubelet":    c.kubelet(n),
		"kube-proxy": c.kubeProxy(n),
	}
	c.mu.Lock()
	c.nodeProcs[n.Name] = procs
	c.mu.Unlock()
	if err := c.startContainerd(ctx, n); err != nil {
		return err
	}
	for _, image := range c.Images {
		if err := c.importImage(n, image); err != nil {
			return err
		}
	}
	for _, name := range []string{"kubelet", "kube-proxy"} {
		if err := procs[name].Start(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) startContainerd(ctx context.Context, n Node) error {
	p := c.nodeProcs[n.Name]["containerd"]
	if err := p.Start(); err != nil {
		return err
	}
	socket := c.L.Host(n.Name).ContainerdSocket()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if conn, err := net.Dial("unix", socket); err == nil {
			conn.Close()
			return nil
		}
		if !p.Running() {
			return fmt.Errorf("containerd exited while starting (see %s)", p.Log)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not open %s within 60s (see %s)", socket, p.Log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// importImage loads an image archive into a node's containerd, in the namespace kubelet uses.
func (c *Cluster) importImage(n Node, archive string) error {
	c.logf("node %s: import %s", n.Name, filepath.Base(archive))
	return run(c.L.Binary("ctr"), "--address", c.L.Host(n.Name).ContainerdSocket(), "--namespace", "k8s.io",
		"images", "import", archive)
}

// ImportImage pushes an archive's images into the registry and loads them into every node (for
// images built after the cluster started).
func (c *Cluster) ImportImage(archive string) error {
	if err := pushArchive(archive, c.L.N); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		if err := c.importImage(n, archive); err != nil {
			return err
		}
	}
	return nil
}

// waitNodesReady waits until every node is registered, has a pod CIDR (then routes it) and is Ready.
func (c *Cluster) waitNodesReady(ctx context.Context) error {
	routed := map[string]bool{}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		list, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		ready := 0
		if err == nil {
			for i := range list.Items {
				node := &list.Items[i]
				n, ok := c.node(node.Name)
				if !ok {
					continue
				}
				if node.Spec.PodCIDR != "" && !routed[node.Name] {
					if err := RoutePodCIDR(n, node.Spec.PodCIDR, c.Nodes); err != nil {
						return err
					}
					routed[node.Name] = true
					c.logf("node %s: pod CIDR %s routed", node.Name, node.Spec.PodCIDR)
				}
				if nodeReady(node) {
					ready++
				}
			}
		}
		if ready == len(c.Nodes) {
			c.logf("all %d nodes Ready", ready)
			return nil
		}
		for _, n := range c.Nodes {
			for name, p := range c.nodeProcs[n.Name] {
				if !p.Running() {
					return fmt.Errorf("node %s: %s exited while starting (see %s)", n.Name, name, p.Log)
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d nodes Ready after 3 minutes (kubelet logs in %s)", ready, len(c.Nodes), c.L.Logs())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func nodeReady(node *corev1.Node) bool {
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (c *Cluster) node(name string) (Node, bool) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Down stops everything in reverse order and removes every trace of the run.
func (c *Cluster) Down() error {
	defer func() {
		if c.lockFile != nil {
			c.lockFile.Close()
		}
	}()
	if !c.haveIndex {
		return nil // it stopped before it had names of its own: another cluster's are not touched
	}
	c.logf("stopping")
	c.mu.Lock()
	nodes := c.nodeProcs
	cp := append([]*Process(nil), c.controlPlane...)
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, procs := range nodes {
		for _, name := range []string{"kubelet", "kube-proxy"} {
			if p := procs[name]; p != nil {
				wg.Add(1)
				go func() { defer wg.Done(); p.Stop(10 * time.Second) }()
			}
		}
	}
	wg.Wait()
	// Containers and their shims outlive containerd: they go with their cgroups.
	for _, n := range c.Nodes {
		_ = KillCgroup(n.Cgroup(), 20*time.Second)
	}
	for _, procs := range nodes {
		if p := procs["containerd"]; p != nil {
			p.Stop(10 * time.Second)
		}
	}
	for i := len(cp) - 1; i >= 0; i-- {
		cp[i].Stop(15 * time.Second)
	}
	return CleanLeftovers(c.L, c.Log)
}

// CleanLeftovers removes whatever a run of the cluster left on this machine: processes in its
// cgroups, mounts under its state folder (and under the folder its index was recorded for), its
// network namespaces and links, and its cgroups. It is safe when nothing is left.
func CleanLeftovers(l Layout, log io.Writer) error {
	var errs []string
	if err := KillCgroup(l.N.CgroupRoot(), 30*time.Second); err != nil {
		errs = append(errs, err.Error())
	}
	folders := []string{l.State}
	if recorded := recordedState(l.N); recorded != "" && recorded != l.State {
		folders = append(folders, recorded)
	}
	for _, folder := range folders {
		if err := UnmountAll(folder); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if err := TeardownNetwork(l.N); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	if recordedState(l.N) == l.State {
		_ = os.Remove(l.N.Record())
	}
	return nil
}

// Leftovers lists what of the cluster still exists on this machine (nothing after a clean stop).
func Leftovers(l Layout) []string {
	state := l.State
	var left []string
	for _, pid := range CgroupPids(l.N.CgroupRoot()) {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		left = append(left, fmt.Sprintf("process %d (%s)", pid, strings.ReplaceAll(string(cmd), "\x00", " ")))
	}
	for _, cg := range LeftoverCgroups(l.N.CgroupRoot()) {
		left = append(left, "cgroup "+cg)
	}
	if points, err := mountsUnder(state); err == nil {
		for _, p := range points {
			left = append(left, "mount "+p)
		}
	}
	for _, ns := range clusterNetns(l.N) {
		left = append(left, "network namespace "+ns)
	}
	for _, link := range clusterLinks(l.N) {
		left = append(left, "network link "+link)
	}
	if data, err := os.ReadFile(l.GuardedState()); err == nil {
		var before map[string]string
		if json.Unmarshal(data, &before) == nil {
			for path, now := range GuardedState() {
				if was, ok := before[path]; ok && was != now {
					left = append(left, fmt.Sprintf("host path %s changed (was %s, now %s)", path, was, now))
				}
			}
		}
	}
	for _, pid := range processesUnder(state) {
		left = append(left, fmt.Sprintf("process %d running from %s", pid, state))
	}
	sort.Strings(left)
	return left
}

// processesUnder finds processes whose executable or command line names the state folder (a
// process that left the cluster's cgroups would still show up here).
func processesUnder(state string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	ancestors := ancestorPids()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || ancestors[pid] {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmd), state+"/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ancestorPids are this process and its parents (a test that stops the cluster may name the state
// folder on its own command line).
func ancestorPids() map[int]bool {
	pids := map[int]bool{}
	for pid := os.Getpid(); pid > 1 && !pids[pid]; {
		pids[pid] = true
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			break
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) < 2 {
			break
		}
		pid, _ = strconv.Atoi(fields[1])
	}
	return pids
}

// recordedState is the state folder of the cluster that last used n's index ("" if none).
func recordedState(n Names) string {
	data, err := os.ReadFile(n.Record())
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// RunningOrchestrator returns the PID of the orchestrator holding the state folder's lock, or 0.
func RunningOrchestrator(l Layout) int {
	f, err := os.OpenFile(l.Lock(), os.O_RDWR, 0)
	if err != nil {
		return 0
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return 0
	}
	data, _ := os.ReadFile(l.Lock())
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}
