package cluster

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// The cluster network: a host bridge with the control plane's address; each node a network
// namespace whose eth0 is a veth enslaved to the bridge; routes to every node's pod CIDR through
// that node's address, on the host and in the other nodes. Nothing else of the host's network is
// changed, and all of it goes away with the bridge and the namespaces.

func linkExists(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/class/net", name))
	return err == nil
}

// checkSubnetFree refuses to start when the cluster's subnet is reachable through a link that is
// not ours: traffic to the nodes would go elsewhere.
func checkSubnetFree(n Names) error {
	for _, probe := range []string{n.HostIP(), strings.TrimSuffix(n.ClusterCIDR(), "0.0/16") + "0.1"} {
		out, err := output("ip", "-o", "-4", "route", "show", "to", "match", probe)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			fields := strings.Fields(line)
			for i := 0; i+1 < len(fields); i++ {
				if fields[i] == "dev" && fields[i+1] != n.Bridge() && fields[0] != "default" {
					return fmt.Errorf("the cluster's address %s is already routed through %s (%s)", probe,
						fields[i+1], line)
				}
			}
		}
	}
	return nil
}

// SetupBridge creates the host bridge with the control plane's address.
func SetupBridge(n Names) error {
	if err := checkSubnetFree(n); err != nil {
		return err
	}
	steps := [][]string{
		{"link", "add", n.Bridge(), "type", "bridge"},
		{"addr", "add", n.HostIP() + "/24", "dev", n.Bridge()},
		{"link", "set", n.Bridge(), "up"},
	}
	for _, step := range steps {
		if err := run("ip", step...); err != nil {
			return err
		}
	}
	return nil
}

// SetupNodeNetwork creates a node's network namespace, its veth to the bridge, its address and
// default route, and turns on forwarding inside it (pods reach other nodes through it).
func SetupNodeNetwork(n Node) error {
	if err := run("ip", "netns", "add", n.Netns()); err != nil {
		return err
	}
	inNode := func(args ...string) []string { return append([]string{"-n", n.Netns()}, args...) }
	steps := [][]string{
		{"link", "add", n.HostVeth(), "type", "veth", "peer", "name", "eth0", "netns", n.Netns()},
		{"link", "set", n.HostVeth(), "master", n.N.Bridge()},
		{"link", "set", n.HostVeth(), "up"},
		inNode("link", "set", "lo", "up"),
		inNode("addr", "add", n.IP().String()+"/24", "dev", "eth0"),
		inNode("link", "set", "eth0", "up"),
		inNode("route", "add", "default", "via", n.N.HostIP()),
	}
	for _, step := range steps {
		if err := run("ip", step...); err != nil {
			return err
		}
	}
	return run("ip", "netns", "exec", n.Netns(), "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
}

// RoutePodCIDR makes a node's pod CIDR reachable from the host and from the other nodes.
func RoutePodCIDR(owner Node, podCIDR string, nodes []Node) error {
	if _, _, err := net.ParseCIDR(podCIDR); err != nil {
		return fmt.Errorf("node %s has pod CIDR %q: %w", owner.Name, podCIDR, err)
	}
	via := owner.IP().String()
	if err := run("ip", "route", "replace", podCIDR, "via", via, "dev", owner.N.Bridge()); err != nil {
		return err
	}
	for _, n := range nodes {
		if n.Name == owner.Name {
			continue
		}
		if err := run("ip", "-n", n.Netns(), "route", "replace", podCIDR, "via", via, "dev", "eth0"); err != nil {
			return err
		}
	}
	return nil
}

// clusterNetns lists the network namespaces this cluster's naming owns.
func clusterNetns(n Names) []string {
	entries, _ := os.ReadDir("/run/netns")
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), n.NetnsPrefix()) {
			names = append(names, e.Name())
		}
	}
	return names
}

func clusterLinks(n Names) []string {
	entries, _ := os.ReadDir("/sys/class/net")
	var names []string
	for _, e := range entries {
		if e.Name() == n.Bridge() || strings.HasPrefix(e.Name(), n.vethPrefix()) {
			names = append(names, e.Name())
		}
	}
	return names
}

// TeardownNetwork deletes the nodes' namespaces (their veths and routes go with them) and the
// bridge (the host routes through it go with it).
func TeardownNetwork(n Names) error {
	var errs []string
	for _, ns := range clusterNetns(n) {
		if err := run("ip", "netns", "delete", ns); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for _, link := range clusterLinks(n) {
		if linkExists(link) {
			if err := run("ip", "link", "delete", link); err != nil && linkExists(link) {
				errs = append(errs, err.Error())
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("network teardown: %s", strings.Join(errs, "; "))
	}
	return nil
}
