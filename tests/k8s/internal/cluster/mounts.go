package cluster

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Each node has a mount namespace of its own, kept alive by a bind mount of its namespace file
// under the state folder. Inside it /var/lib, /run and /var/log are shadowed by fresh tmpfs
// mounts that carry the host's entries (bound back) plus the node's own: /var/lib/kubelet,
// /var/run/cdi and /run/nvdra-k8s/node are the node's folders, and whatever kubelet, containerd,
// runc and the CNI plugins create at their built-in paths (/var/lib/kubelet/device-plugins,
// /run/containerd, /var/lib/cni, /var/log/containers, ...) stays inside the node. The root is
// shared inside (kubelet requires that for bidirectional mount propagation); nothing mounted
// inside reaches the host.

// InsideNodeFolder is where every node sees its own folder: a DaemonSet's host paths below it
// mean the same on each node.
const InsideNodeFolder = "/run/nvdra-k8s/node"

// shadowedDirs are the host folders a node gets a private copy of.
var shadowedDirs = []string{"/var/lib", "/run", "/var/log"}

// GuardedHostPaths are the host paths that a node's programs would use by default and that the
// cluster must never create or change on the host.
var GuardedHostPaths = []string{"/var/lib/kubelet", "/var/lib/containerd", "/var/lib/cni", "/run/containerd",
	"/run/nri", "/var/run/cdi", "/etc/cdi", "/etc/cni", "/opt/cni", "/var/log/pods", "/var/log/containers"}

// mountsUnder lists the host's mount points at or below dir, deepest (latest) first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var points []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) < 5 {
			continue
		}
		point := unescapeMountPath(fields[4])
		if point == dir || strings.HasPrefix(point, dir+"/") {
			points = append(points, point)
		}
	}
	// Later mounts stack on earlier ones: unmount in reverse order, deeper paths first.
	for i, j := 0, len(points)-1; i < j; i, j = i+1, j-1 {
		points[i], points[j] = points[j], points[i]
	}
	sort.SliceStable(points, func(i, j int) bool { return strings.Count(points[i], "/") > strings.Count(points[j], "/") })
	return points, scanner.Err()
}

// PrepareNamespaceFolder makes the folder that holds the nodes' namespace files a private mount:
// a namespace file cannot be bind-mounted where mounts propagate.
func PrepareNamespaceFolder(l Layout) error {
	dir := l.NamespaceFiles()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", dir, err)
	}
	if err := syscall.Mount("", dir, "", syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", dir, err)
	}
	return nil
}

// CreateNodeMountNamespace makes node's mount namespace, pinned at its namespace file (self is
// this program, which does the mounting from inside the new namespace: see NodeMountSetup).
func CreateNodeMountNamespace(l Layout, self string, n Node) error {
	file := l.MountNamespace(n.Name)
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		return err
	}
	return run("unshare", "--mount="+file, "--propagation", "private", "--", self, "_node-mounts",
		"--node-folder", l.NodeDir(n.Name))
}

// NodeMountSetup runs inside a new node mount namespace (see above).
func NodeMountSetup(nodeFolder string) error {
	for _, dir := range shadowedDirs {
		stash := filepath.Join(nodeFolder, ".host", strings.ReplaceAll(strings.Trim(dir, "/"), "/", "-"))
		if err := shadow(dir, stash); err != nil {
			return err
		}
	}
	node := NodePaths{Root: nodeFolder}
	binds := map[string]string{
		node.KubeletRoot(): "/var/lib/kubelet",
		node.CDIDynamic():  "/run/cdi",
		nodeFolder:         InsideNodeFolder,
	}
	for from, to := range binds {
		if err := os.MkdirAll(to, 0o755); err != nil {
			return err
		}
		if err := syscall.Mount(from, to, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", from, to, err)
		}
	}
	if err := syscall.Mount("", "/", "", syscall.MS_SHARED|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("make / shared: %w", err)
	}
	return nil
}

// shadow mounts a tmpfs over dir that holds the same entries as before: the original is bound at
// stash, and each of its entries is bound (or, for a symbolic link, copied) back into the tmpfs.
func shadow(dir, stash string) error {
	if err := os.MkdirAll(stash, 0o700); err != nil {
		return err
	}
	if err := syscall.Mount(dir, stash, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", dir, stash, err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	mode := fmt.Sprintf("mode=%o", st.Mode().Perm()|st.Mode()&os.ModeSticky)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, mode); err != nil {
		return fmt.Errorf("tmpfs on %s: %w", dir, err)
	}
	entries, err := os.ReadDir(stash)
	if err != nil {
		return err
	}
	for _, e := range entries {
		from, to := filepath.Join(stash, e.Name()), filepath.Join(dir, e.Name())
		info, err := os.Lstat(from)
		if err != nil {
			continue // gone meanwhile
		}
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(from)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, to); err != nil {
				return err
			}
			continue
		case info.IsDir():
			if err := os.Mkdir(to, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			if err := os.WriteFile(to, nil, 0o600); err != nil {
				return err
			}
		}
		if err := syscall.Mount(from, to, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s back on %s: %w", from, to, err)
		}
	}
	return nil
}

// GuardedState describes which guarded host paths exist (and what they hold), to be compared
// after the cluster stops.
func GuardedState() map[string]string {
	state := map[string]string{}
	for _, p := range GuardedHostPaths {
		entries, err := os.ReadDir(p)
		switch {
		case err == nil:
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			state[p] = "folder: " + strings.Join(names, ",")
		case os.IsNotExist(err):
			state[p] = "absent"
		default:
			state[p] = "present"
		}
	}
	return state
}

// UnmountAll removes every mount at or below dir on the host: the namespace files (the node
// namespaces end with them once their processes are gone) and the folder's own bind mount.
func UnmountAll(dir string) error {
	points, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	var errs []string
	for _, p := range points {
		if err := syscall.Unmount(p, 0); err != nil && err != syscall.EINVAL {
			// Busy: detach it so it disappears once its last user goes.
			if err2 := syscall.Unmount(p, syscall.MNT_DETACH); err2 != nil && err2 != syscall.EINVAL {
				errs = append(errs, fmt.Sprintf("unmount %s: %v", p, err2))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
