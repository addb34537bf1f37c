package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// run executes a program (never a shell) and returns a clear error with its output on failure.
func run(name string, args ...string) error {
	_, err := output(name, args...)
	return err
}

func output(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err,
			strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// starter owns one locked OS thread that forks every long-running child: a child's parent-death
// signal fires when the thread that forked it ends, so that thread must live as long as we do.
type starter struct {
	once sync.Once
	reqs chan func()
}

var children starter

func (s *starter) do(f func()) {
	s.once.Do(func() {
		s.reqs = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives until the process exits
			for req := range s.reqs {
				req()
			}
		}()
	})
	done := make(chan struct{})
	s.reqs <- func() { f(); close(done) }
	<-done
}

// Process is one supervised program of the cluster (a control-plane component or a node daemon).
type Process struct {
	Name string   // for logs: "kube-apiserver", "kubelet/node-1"
	Argv []string // the whole command line, namespace and cgroup wrappers included
	Env  []string // added to the orchestrator's environment
	Log  string   // stdout and stderr go here (appended)
	// Restart: started again after it exits unless Stop asked it to, as systemd restarts a
	// node's kubelet and containerd (Restart=always), with a growing delay.
	Restart bool

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	wanted   bool // Start was called and Stop was not
	restarts int
}

// Start runs the program; it dies with the orchestrator (SIGKILL on parent death).
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wanted, p.restarts = true, 0
	return p.startLocked()
}

func (p *Process) startLocked() error {
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s is already running", p.Name)
		}
	}
	logFile, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logFile, "==== %s start %s\n", time.Now().Format(time.RFC3339), p.Name)
	cmd := exec.Command(p.Argv[0], p.Argv[1:]...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	children.do(func() { err = cmd.Start() })
	logFile.Close()
	if err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
		p.exited(cmd)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// exited restarts a program that ended on its own (a crash, a kill) when it should be running.
func (p *Process) exited(cmd *exec.Cmd) {
	p.mu.Lock()
	if !p.Restart || !p.wanted || p.cmd != cmd {
		p.mu.Unlock()
		return
	}
	p.restarts++
	delay := time.Duration(min(p.restarts, 10)) * time.Second
	p.mu.Unlock()
	time.Sleep(delay)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wanted && p.cmd == cmd { // not stopped or started meanwhile
		if err := p.startLocked(); err != nil {
			fmt.Fprintf(os.Stderr, "restarting %s: %v\n", p.Name, err)
		}
	}
}

// Running says whether the program is still alive.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Exited returns a channel closed when the current run ends (nil if never started).
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Pid is the program's process ID (0 when it is not running).
func (p *Process) Pid() int {
	if !p.Running() {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Stop sends SIGTERM, waits up to grace, then SIGKILLs the program's whole process group; it
// stays stopped until Start.
func (p *Process) Stop(grace time.Duration) {
	p.mu.Lock()
	p.wanted = false
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(grace):
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// Kill sends SIGKILL at once, as a crash would end the program (a restarting program comes back).
func (p *Process) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// ErrNotRunning is returned for control requests on a stopped component.
var ErrNotRunning = errors.New("not running")
