package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupHierarchies lists the mount points of every cgroup hierarchy (v1 controllers, named
// hierarchies and the unified one): a process is in one cgroup per hierarchy, and kubelet and
// runc create their cgroups in all of them, so the cluster's cgroups are made and removed in all.
func cgroupHierarchies() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		// mount ID, parent, major:minor, root, mount point, options, optional fields..., "-", type
		for i, field := range fields {
			if field == "-" && i+1 < len(fields) {
				if fields[i+1] == "cgroup" || fields[i+1] == "cgroup2" {
					mounts = append(mounts, unescapeMountPath(fields[4]))
				}
				break
			}
		}
	}
	return mounts, scanner.Err()
}

// unescapeMountPath undoes mountinfo's octal escapes of space, tab, newline and backslash.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroupV2 says whether the machine runs the unified hierarchy alone (kubelet's cgroup v2 mode).
func cgroupV2() bool {
	var st syscall.Statfs_t
	return syscall.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == 0x63677270 // CGROUP2_SUPER_MAGIC
}

// EnsureCgroup creates path (relative to each hierarchy's root) in every hierarchy. In the cpuset
// hierarchy a new cgroup starts with no CPUs or memory nodes, so each level copies its parent's.
func EnsureCgroup(path string) error {
	mounts, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	for _, mount := range mounts {
		dir := mount
		for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
			parent := dir
			dir = filepath.Join(dir, part)
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("create cgroup %s: %w", dir, err)
			}
			for _, file := range []string{"cpuset.cpus", "cpuset.mems"} {
				if err := inheritCgroupFile(parent, dir, file); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func inheritCgroupFile(parent, dir, file string) error {
	current, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil || strings.TrimSpace(string(current)) != "" {
		return nil // not a cpuset hierarchy (or unified), or already set
	}
	value, err := os.ReadFile(filepath.Join(parent, file))
	if err != nil {
		return nil
	}
	if err := os.WriteFile(filepath.Join(dir, file), value, 0o644); err != nil {
		return fmt.Errorf("set %s/%s: %w", dir, file, err)
	}
	return nil
}

// JoinCgroup moves the calling process into path in every hierarchy (creating it first).
func JoinCgroup(path string) error {
	if err := EnsureCgroup(path); err != nil {
		return err
	}
	mounts, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	for _, mount := range mounts {
		procs := filepath.Join(mount, path, "cgroup.procs")
		if err := os.WriteFile(procs, pid, 0o644); err != nil {
			// The unified hierarchy of a hybrid machine has no controllers; a process may be
			// refused there without losing anything the cluster relies on.
			if isUnifiedWithoutControllers(mount) {
				continue
			}
			return fmt.Errorf("join cgroup %s: %w", procs, err)
		}
	}
	return nil
}

func isUnifiedWithoutControllers(mount string) bool {
	data, err := os.ReadFile(filepath.Join(mount, "cgroup.controllers"))
	return err == nil && strings.TrimSpace(string(data)) == "" && !cgroupV2()
}

// cgroupTree returns path and every cgroup below it in one hierarchy, deepest first.
func cgroupTree(mount, path string) []string {
	root := filepath.Join(mount, path)
	var dirs []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	return dirs
}

// CgroupPids lists every process in path or below it, in any hierarchy.
func CgroupPids(path string) []int {
	mounts, err := cgroupHierarchies()
	if err != nil {
		return nil
	}
	seen := map[int]bool{}
	var pids []int
	for _, mount := range mounts {
		for _, dir := range cgroupTree(mount, path) {
			data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			if err != nil {
				continue
			}
			for _, field := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(field); err == nil && !seen[pid] {
					seen[pid] = true
					pids = append(pids, pid)
				}
			}
		}
	}
	return pids
}

// KillCgroup SIGKILLs every process in path or below it until none is left (processes may fork
// while being killed), then removes the cgroups in every hierarchy.
func KillCgroup(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids := CgroupPids(path)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v in cgroup %s survive SIGKILL", pids, path)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return RemoveCgroup(path, time.Until(deadline))
}

// RemoveCgroup removes path and its children in every hierarchy (they must hold no process;
// a cgroup whose last process just died can stay busy for a moment).
func RemoveCgroup(path string, timeout time.Duration) error {
	mounts, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for _, mount := range mounts {
		for _, dir := range cgroupTree(mount, path) {
			for {
				err := syscall.Rmdir(dir)
				if err == nil || errors.Is(err, syscall.ENOENT) {
					break
				}
				if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
					return fmt.Errorf("remove cgroup %s: %w", dir, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	return nil
}

// LeftoverCgroups lists root's cgroups that still exist, in any hierarchy.
func LeftoverCgroups(root string) []string {
	mounts, _ := cgroupHierarchies()
	var left []string
	for _, mount := range mounts {
		if _, err := os.Stat(filepath.Join(mount, root)); err == nil {
			left = append(left, filepath.Join(mount, root))
		}
	}
	return left
}
