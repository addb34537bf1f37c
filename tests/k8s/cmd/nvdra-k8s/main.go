// Command nvdra-k8s runs nvdra's real Kubernetes test cluster on this machine: etcd, the control
// plane and N nodes (kubelet, containerd, runc, CNI, kube-proxy), each node in its own network and
// mount namespaces, all state in one folder.
//
//	nvdra-k8s up [--state DIR] [--bin DIR] [--nodes N] [--image ARCHIVE]... [--detach]
//	nvdra-k8s down [--state DIR]
//	nvdra-k8s leftovers [--state DIR]
//	nvdra-k8s ctl [--state DIR] NODE COMPONENT stop|kill|start|restart
//	nvdra-k8s import [--state DIR] ARCHIVE
//	nvdra-k8s exec [--state DIR] NODE -- COMMAND [ARG]...
//	nvdra-k8s image --spec FILE
//	nvdra-k8s device-plugin --socket-dir DIR --resource NAME --cdi-device NAME [--count N]
//
// up prints the admin kubeconfig path alone on the first line of its output once every node is
// Ready, and runs until SIGINT or SIGTERM, then removes everything it made. With --detach it
// returns after that first line and leaves the cluster running for 'down'.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"nvdra/tests/k8s/internal/cluster"
	"nvdra/tests/k8s/internal/deviceplugin"
	"nvdra/tests/k8s/internal/image"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "up":
		err = up(args)
	case "down":
		err = down(args)
	case "leftovers":
		err = leftovers(args)
	case "ctl":
		err = ctl(args)
	case "import":
		err = importImage(args)
	case "exec":
		err = execInNode(args)
	case "image":
		err = image.Main(args)
	case "device-plugin":
		err = deviceplugin.Main(args)
	case "_cgexec":
		err = cgexec(args)
	case "_node-mounts":
		err = nodeMounts(args)
	case "-h", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "nvdra-k8s: unknown command %q\n", cmd)
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nvdra-k8s:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  nvdra-k8s up [--state DIR] [--bin DIR] [--nodes N] [--image ARCHIVE]... [--detach]
  nvdra-k8s down [--state DIR]
  nvdra-k8s leftovers [--state DIR]
  nvdra-k8s ctl [--state DIR] NODE kubelet|containerd|kube-proxy stop|kill|start|restart
  nvdra-k8s import [--state DIR] ARCHIVE
  nvdra-k8s exec [--state DIR] NODE -- COMMAND [ARG]...
  nvdra-k8s image --spec FILE
  nvdra-k8s device-plugin --socket-dir DIR --resource NAME --cdi-device NAME [--count N]`)
	os.Exit(2)
}

// defaultState is the state folder beside the binaries: build/k8s/bin -> build/k8s/state.
func defaultState() string {
	self, err := os.Executable()
	if err != nil {
		return "state"
	}
	return filepath.Join(filepath.Dir(filepath.Dir(self)), "state")
}

func stateFlag(fs *flag.FlagSet) *string {
	return fs.String("state", defaultState(), "the cluster's state folder")
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func up(args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	state := stateFlag(fs)
	self, _ := os.Executable()
	bin := fs.String("bin", filepath.Dir(self), "the folder with the cluster's binaries")
	nodes := fs.Int("nodes", 2, "number of nodes")
	detach := fs.Bool("detach", false, "return once the cluster is Ready and leave it running")
	var images multiFlag
	fs.Var(&images, "image", "image archive to import into every node (repeatable)")
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("up: unexpected argument %q", fs.Arg(0))
	}
	if *detach {
		return upDetached(*state, args)
	}
	c, err := cluster.New(*state, *bin, self, *nodes, images, os.Stderr)
	if err != nil {
		return err
	}
	if err := c.Lock(); err != nil {
		return err // another orchestrator owns the folder: nothing of it is touched
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	_ = os.Remove(c.L.Ready())
	if err := c.Up(ctx); err != nil {
		if downErr := c.Down(); downErr != nil {
			fmt.Fprintln(os.Stderr, "nvdra-k8s: cleanup:", downErr)
		}
		_ = os.WriteFile(c.L.Ready(), []byte("failed: "+err.Error()+"\n"), 0o644)
		return err
	}
	go func() {
		if err := c.ServeControl(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "nvdra-k8s: control socket:", err)
		}
	}()
	fmt.Println(c.L.AdminKubeconfig())
	_ = os.WriteFile(c.L.Ready(), []byte(c.L.AdminKubeconfig()+"\n"), 0o644)
	<-ctx.Done()
	_ = os.Remove(c.L.Ready())
	return c.Down()
}

// upDetached starts 'up' again in the background (its own session, output to the state folder's
// log) and waits until it reports Ready or failed.
func upDetached(state string, args []string) error {
	var childArgs []string
	for _, a := range args {
		if a != "--detach" && a != "-detach" {
			childArgs = append(childArgs, a)
		}
	}
	abs, err := filepath.Abs(state)
	if err != nil {
		return err
	}
	layout := cluster.Layout{State: abs}
	if pid := cluster.RunningOrchestrator(layout); pid > 0 {
		return fmt.Errorf("a cluster is already running in %s (pid %d); stop it with 'nvdra-k8s down --state %s'",
			abs, pid, abs)
	}
	if err := os.MkdirAll(layout.Logs(), 0o755); err != nil {
		return err
	}
	_ = os.Remove(layout.Ready())
	logPath := layout.Log("nvdra-k8s")
	// Appended to: a killed run's processes may still hold the file open.
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	self, _ := os.Executable()
	cmd := exec.Command(self, append([]string{"up"}, childArgs...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	report := func() (bool, error) {
		data, err := os.ReadFile(layout.Ready())
		if err != nil || !strings.HasSuffix(string(data), "\n") {
			return false, nil
		}
		text := strings.TrimSpace(string(data))
		if strings.HasPrefix(text, "failed: ") {
			return true, fmt.Errorf("%s (log: %s)", strings.TrimPrefix(text, "failed: "), logPath)
		}
		fmt.Println(text)
		return true, nil
	}
	for {
		if done, err := report(); done {
			return err
		}
		select {
		case err := <-exited:
			if done, reportErr := report(); done {
				return reportErr
			}
			return fmt.Errorf("the cluster exited while starting (%v); log: %s", err, logPath)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// down stops the orchestrator running in the state folder (it removes what it made) or, when none
// runs, removes what a killed run left; then it reports anything still there.
func down(args []string) error {
	fs := flag.NewFlagSet("down", flag.ExitOnError)
	state := stateFlag(fs)
	fs.Parse(args)
	abs, err := filepath.Abs(*state)
	if err != nil {
		return err
	}
	layout, ran := cluster.ReadLayout(abs)
	if pid := cluster.RunningOrchestrator(layout); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(2 * time.Minute)
		for cluster.RunningOrchestrator(layout) == pid {
			if time.Now().After(deadline) {
				return fmt.Errorf("the cluster (pid %d) did not stop within 2 minutes", pid)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !ran {
		return nil // no cluster ever started in this folder
	}
	if err := cluster.CleanLeftovers(layout, os.Stderr); err != nil {
		return err
	}
	if left := cluster.Leftovers(layout); len(left) > 0 {
		return fmt.Errorf("left behind:\n  %s", strings.Join(left, "\n  "))
	}
	return nil
}

func leftovers(args []string) error {
	fs := flag.NewFlagSet("leftovers", flag.ExitOnError)
	state := stateFlag(fs)
	fs.Parse(args)
	abs, err := filepath.Abs(*state)
	if err != nil {
		return err
	}
	layout, ran := cluster.ReadLayout(abs)
	if !ran {
		return fmt.Errorf("no cluster ever started in %s", abs)
	}
	if left := cluster.Leftovers(layout); len(left) > 0 {
		return fmt.Errorf("left behind:\n  %s", strings.Join(left, "\n  "))
	}
	fmt.Println("nothing left behind")
	return nil
}

func ctl(args []string) error {
	fs := flag.NewFlagSet("ctl", flag.ExitOnError)
	state := stateFlag(fs)
	fs.Parse(args)
	if fs.NArg() != 3 {
		return errors.New("usage: nvdra-k8s ctl [--state DIR] NODE COMPONENT stop|kill|start|restart")
	}
	out, err := cluster.Control(*state, fmt.Sprintf("/nodes/%s/%s/%s", fs.Arg(0), fs.Arg(1), fs.Arg(2)))
	fmt.Print(out)
	return err
}

func importImage(args []string) error {
	fs := flag.NewFlagSet("import", flag.ExitOnError)
	state := stateFlag(fs)
	fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("usage: nvdra-k8s import [--state DIR] ARCHIVE")
	}
	archive, err := filepath.Abs(fs.Arg(0))
	if err != nil {
		return err
	}
	out, err := cluster.Control(*state, "/images?archive="+archive)
	fmt.Print(out)
	return err
}

// execInNode runs a command inside a node's mount and network namespaces, as the node's own
// processes see the machine.
func execInNode(args []string) error {
	fs := flag.NewFlagSet("exec", flag.ExitOnError)
	state := stateFlag(fs)
	fs.Parse(args)
	rest := fs.Args()
	if len(rest) < 3 || rest[1] != "--" {
		return errors.New("usage: nvdra-k8s exec [--state DIR] NODE -- COMMAND [ARG]...")
	}
	abs, err := filepath.Abs(*state)
	if err != nil {
		return err
	}
	l, ran := cluster.ReadLayout(abs)
	if !ran {
		return fmt.Errorf("no cluster ever started in %s", abs)
	}
	node := rest[0]
	argv := append([]string{"nsenter", "--mount=" + l.MountNamespace(node), "--net=/run/netns/" + l.N.NetnsPrefix() + node,
		"--"}, rest[2:]...)
	path, err := exec.LookPath("nsenter")
	if err != nil {
		return err
	}
	return syscall.Exec(path, argv, os.Environ())
}

// cgexec joins a cgroup (in every hierarchy) and execs the command: the cluster starts every
// program through it so that a stop or a later start can find and end all of them.
func cgexec(args []string) error {
	fs := flag.NewFlagSet("_cgexec", flag.ExitOnError)
	cgroup := fs.String("cgroup", "", "cgroup path")
	fs.Parse(args) // consumes the "--"
	rest := fs.Args()
	if *cgroup == "" || len(rest) < 1 {
		return errors.New("usage: nvdra-k8s _cgexec --cgroup PATH -- COMMAND [ARG]...")
	}
	if err := cluster.JoinCgroup(*cgroup); err != nil {
		return err
	}
	path, err := exec.LookPath(rest[0])
	if err != nil {
		return err
	}
	return syscall.Exec(path, rest, os.Environ())
}

func nodeMounts(args []string) error {
	fs := flag.NewFlagSet("_node-mounts", flag.ExitOnError)
	folder := fs.String("node-folder", "", "the node's folder")
	fs.Parse(args)
	return cluster.NodeMountSetup(*folder)
}
